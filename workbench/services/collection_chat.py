"""Chat with a collection: the question retrieves passages, passages that read as a prompt
injection are dropped (the check the rag workflow's guardrail runs), the rest go into the prompt
numbered, and the answer cites them as [1], [2]. One trace per turn: the root span holds the
question and the answer, with the retrieval and the model call under it.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import Any

from workbench.core.errors import UsageError

__all__ = ["chat_with_collection", "SYSTEM"]

SYSTEM = (
    "Answer the question using only the numbered sources below, and cite the sources you use "
    "as [1], [2] right after what they support. If the sources do not hold the answer, say so."
)
_CITATION = re.compile(r"\[(\d{1,2})\]")


def _heading(hit: dict[str, Any]) -> str:
    headings = hit.get("headings")
    if isinstance(headings, list | tuple):
        return " > ".join(str(h) for h in headings if h)
    return str(headings or hit.get("title") or "")


def _numbered(hits: list[dict[str, Any]]) -> str:
    parts = []
    for number, hit in enumerate(hits, start=1):
        where = hit["path"] + (f" > {_heading(hit)}" if _heading(hit) else "")
        parts.append(f"[{number}] ({where})\n{hit['text'].strip()}")
    from agents.guardrails import fence

    return fence("\n\n".join(parts))  # quoted data: a passage's words are no instructions


def chat_with_collection(
    service,
    model: str,
    messages: list[dict[str, str]],
    collection: str,
    k: int = 4,
    mode: str = "hybrid",
    params: Any = None,
    on_text: Callable[[str], None] | None = None,
    options: Any = None,
    cancel: threading.Event | None = None,
):
    """Answer the last user turn of ``messages`` from ``collection``; returns the
    GenerationResult with extra["sources"] (the numbered passages: number, path, heading, id,
    score, cited) and extra["dropped"] (passages screened out as prompt injection)."""
    from agents.guardrails import looks_like_injection

    question = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")
    if not question.strip():
        raise UsageError("the question is empty", "type a question")
    with service.tracer.span(
        "chat.collection",
        "chat",
        {"workbench.collection": collection, "workbench.k": k, "workbench.retrieval.mode": mode},
    ) as root:
        root.set_payload(input=question)
        hits = service.search(collection, question, mode=mode, k=k)
        kept, dropped = [], []
        for hit in hits:
            phrase = looks_like_injection(hit["text"])
            if phrase:
                dropped.append({"id": hit["id"], "path": hit["path"], "phrase": phrase})
            else:
                kept.append(hit)
        root.set("workbench.guardrail.dropped", len(dropped))
        context = _numbered(kept) if kept else "(no source was found)"
        turns = [m for m in messages if m.get("role") != "system"]
        system = next((m["content"] for m in messages if m.get("role") == "system"), None)
        prompt = [
            {"role": "system", "content": (system + "\n\n" if system else "") + SYSTEM},
            *turns[:-1],
            {"role": "user", "content": f"Sources:\n{context}\n\nQuestion: {question}"},
        ]
        result = service.generation.chat(model, prompt, params, on_text, options, cancel)
        cited = {int(n) for n in _CITATION.findall(result.text)}
        sources = [
            {
                "number": number,
                "path": hit["path"],
                "heading": _heading(hit),
                "id": hit["id"],
                "score": round(float(hit["score"]), 4),
                "cited": number in cited,
                "text": hit["text"],
            }
            for number, hit in enumerate(kept, start=1)
        ]
        root.update(
            {
                "workbench.retrieval.paths": [h["path"] for h in kept],
                "workbench.citations": sorted(n for n in cited if 1 <= n <= len(kept)),
            }
        )
        root.set_payload(answer=result.text)
        result.extra.update(sources=sources, dropped=dropped, collection=collection)
        result.trace_id = root.trace_id
    return result
