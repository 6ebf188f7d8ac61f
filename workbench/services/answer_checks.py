"""Does an answer look unreliable, and what can the user do about it?

Cheap signs, read off the answer and its figures, that small local models show most: cut off at
the token limit, looping (a word or phrase over and over, as Gemma 3 270M repeats "mendatang"),
an answer from a collection that cites none of the passages it was given, and a low mean
log-probability where one was measured. With each, the ways forward this workspace has: the
router (`auto`), a configured cloud model, a bigger local model from the Hub.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["doubts", "ways_forward"]

_LOW_LOGPROB = -2.5  # mean log-probability per token below which a model is guessing


def _loops(text: str) -> str | None:
    words = re.findall(r"\w+", text.lower())
    for size in (1, 2, 3, 4):
        grams = [" ".join(words[i : i + size]) for i in range(len(words) - size + 1)]
        run, longest, best = 1, 1, ""
        for i in range(size, len(grams), size):
            run = run + 1 if grams[i] == grams[i - size] else 1
            if run > longest:
                longest, best = run, grams[i]
        if longest >= (6 if size == 1 else 4):
            return best
    return None


def doubts(
    text: str, finish_reason: str | None, extra: dict[str, Any], mean_logprob: float | None = None
) -> list[str]:
    """Why this answer may not be worth trusting; empty when nothing stands out."""
    found = []
    if finish_reason == "length":
        found.append("cut off at the token limit")
    looping = _loops(text)
    if looping:
        found.append(f"repeats '{looping}'")
    sources = extra.get("sources")
    if sources and not any(s.get("cited") for s in sources):
        found.append("cites none of the passages it was given")
    if mean_logprob is not None and mean_logprob < _LOW_LOGPROB:
        found.append(f"the model was unsure (mean log-probability {mean_logprob:.2f})")
    return found


def ways_forward(model: str, choices: list[str]) -> list[str]:
    """What else this workspace could answer with, best first."""
    ways = []
    if "auto" in choices and model != "auto":
        ways.append("`auto` (the local model, escalated when it falls short)")
    cloud = [c for c in choices if "/" in c and c != model]
    if cloud:
        ways.append(f"a cloud model ({', '.join(cloud[:3])})")
    ways.append("a bigger local model: 8 Models, search the Hub, p to pull the quant that fits")
    return ways
