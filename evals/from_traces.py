"""Traces to eval cases: what a user asked, what they were answered, what was retrieved, and
what they thought of it, read from the spans of one trace (plain rows from the trace store).

A liked answer becomes a regression case (the answer is expected again); a disliked one becomes a
case to fix (no expected answer: the user writes the right one); an unrated one keeps the answer
as expected and says so in its tags.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["case_from_trace", "same_input"]


def _document(value: Any) -> dict[str, Any]:
    """A span's attributes or payload as a dict (rows from the store hold them as JSON text)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return value if isinstance(value, dict) else {}


def _payload(span: dict[str, Any]) -> dict[str, Any]:
    return _document(span.get("payload"))


def _attributes(span: dict[str, Any]) -> dict[str, Any]:
    return _document(span.get("attributes"))


def _last_user_message(messages: Any) -> str | None:
    if not isinstance(messages, list):
        return None
    for message in reversed(messages):
        if (
            isinstance(message, dict)
            and message.get("role") == "user"
            and isinstance(message.get("content"), str)
        ):
            return message["content"]
    return None


def _input(spans: list[dict[str, Any]]) -> str | None:
    """The question as the user sent it: the run's input, else the last user turn of the first
    model call (a rag prompt wraps the question in context; the root keeps it bare)."""
    for span in spans:
        if span.get("parent_id") is None:
            text = _payload(span).get("input")
            if isinstance(text, str) and text.strip():
                return text
    for span in spans:
        if span["name"] == "llm.chat":
            text = _last_user_message(_payload(span).get("messages"))
            if text and text.strip():
                return text
    return None


def _answer(spans: list[dict[str, Any]]) -> str | None:
    """The answer the user saw: the run's answer, else the last model call that ended well."""
    for span in spans:
        if span.get("parent_id") is None:
            answer = _payload(span).get("answer")
            if isinstance(answer, str) and answer.strip():
                return answer
    calls = [s for s in spans if s["name"] == "llm.chat" and s.get("status") == "ok"]
    for span in sorted(calls, key=lambda s: s["end_ns"], reverse=True):
        output = _payload(span).get("output")
        if isinstance(output, str) and output.strip():
            return output
    return None


def _sources(spans: list[dict[str, Any]]) -> list[str]:
    """The files retrieved for the answer, in the order they were found, each once."""
    paths: list[str] = []
    for span in spans:
        found = _attributes(span).get("workbench.retrieval.paths")
        if not isinstance(found, list):
            context = _payload(span).get("update", {})
            context = context.get("context") if isinstance(context, dict) else None
            found = (
                [c.get("path") for c in context if isinstance(c, dict)] if isinstance(context, list) else []
            )
        for path in found:
            if isinstance(path, str) and path not in paths:
                paths.append(path)
    return paths


def case_from_trace(spans: list[dict[str, Any]], feedback: dict[str, Any]) -> dict[str, Any]:
    """An eval case (a dict in the dataset's JSONL form) from one trace's spans and feedback.

    Raises ValueError, saying why, when the trace holds no question to ask again (spans recorded
    without payloads, say with [tracing] payload_sample_rate below 1)."""
    trace_id = spans[0]["trace_id"]
    question = _input(spans)
    if question is None:
        raise ValueError(f"trace {trace_id[:16]} holds no input to ask again (its payload was not kept)")
    answer = _answer(spans)
    up, down = feedback.get("up", 0), feedback.get("down", 0)
    tags = ["from-trace"]
    case: dict[str, Any] = {"id": f"trace-{trace_id[:16]}", "input": question}
    if down > up:
        tags.append("to-fix")  # the answer was wrong: expect what the user writes instead
    else:
        tags.append("regression" if up > down else "unrated")
        if answer:
            case["expected"] = [answer.strip()]
    sources = _sources(spans)
    if sources:
        case["sources"] = sources
    case["tags"] = tags
    return case


def same_input(a: str, b: str) -> bool:
    """Whether two inputs ask the same thing (case and runs of whitespace aside)."""
    return " ".join(a.split()).casefold() == " ".join(b.split()).casefold()
