"""Judges: a model asked for a verdict as JSON constrained by a schema (a llama.cpp grammar
locally, structured output on cloud endpoints). A judge that gives no usable verdict is a judge
failure, kept with its raw output; it never becomes a NaN or a silent zero."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from agents.nodes import GRADE_SCHEMA

__all__ = ["Judge", "CORRECTNESS_SCHEMA", "GROUNDEDNESS_SCHEMA"]

Chat = Callable[[str, list[dict[str, str]], dict[str, Any]], str]  # model, messages, params -> text

CORRECTNESS_SCHEMA = {
    "type": "object",
    "properties": {
        "verdict": {"enum": ["correct", "partially_correct", "incorrect"]},
        "reason": {"type": "string", "maxLength": 160},
    },
    "required": ["verdict", "reason"],
}
# The same 1-5 score and reason as a workflow's grade node, so the two read alike.
GROUNDEDNESS_SCHEMA = GRADE_SCHEMA
_VERDICT_SCORE = {"correct": 1.0, "partially_correct": 0.5, "incorrect": 0.0}


class Judge:
    def __init__(self, model: str, chat: Chat, max_tokens: int = 96) -> None:
        self.model, self.chat, self.max_tokens = model, chat, max_tokens

    def _ask(self, system: str, user: str, schema: dict) -> tuple[dict | None, str]:
        params = {"temperature": 0.0, "max_tokens": self.max_tokens, "seed": 0, "json_schema": schema}
        raw = self.chat(
            self.model, [{"role": "system", "content": system}, {"role": "user", "content": user}], params
        )
        try:
            verdict = json.loads(raw)
        except ValueError:
            return None, raw
        return (verdict if isinstance(verdict, dict) else None), raw

    def correctness(self, question: str, expected: tuple[str, ...], answer: str) -> dict[str, Any]:
        verdict, raw = self._ask(
            "You grade answers against a reference answer. Reply with JSON only.",
            f"Question: {question}\nReference answer: {' / '.join(expected)}\nAnswer to grade: {answer}\n\n"
            'Is the answer correct? {"verdict": "correct" | "partially_correct" | "incorrect", "reason": "..."}',
            CORRECTNESS_SCHEMA,
        )
        if verdict is None or verdict.get("verdict") not in _VERDICT_SCORE:
            return {"criterion": "correctness", "failed": True, "raw": raw}
        return {
            "criterion": "correctness",
            "failed": False,
            "score": _VERDICT_SCORE[verdict["verdict"]],
            "verdict": verdict["verdict"],
            "reason": str(verdict.get("reason", "")),
        }

    def groundedness(self, answer: str, passages: list[str]) -> dict[str, Any]:
        from agents.guardrails import fence

        # quoted data: a passage that addresses the judge is judged, not obeyed
        sources = fence("\n\n".join(f"[{i}] {p}" for i, p in enumerate(passages, 1)))
        verdict, raw = self._ask(
            "You check answers against their sources. Reply with JSON only.",
            f"Sources:\n{sources}\n\nAnswer:\n{answer}\n\nIs every claim of the answer supported by the sources? "
            'Score 1 (not supported) to 5 (fully supported): {"score": N, "reason": "..."}',
            GROUNDEDNESS_SCHEMA,
        )
        if verdict is None or verdict.get("score") not in (1, 2, 3, 4, 5):
            return {"criterion": "groundedness", "failed": True, "raw": raw}
        return {
            "criterion": "groundedness",
            "failed": False,
            "score": (verdict["score"] - 1) / 4,
            "reason": str(verdict.get("reason", "")),
        }
