"""Guardrail checks: a prompt-injection screen for retrieved text and an output filter. The PII
redaction itself is the runtime's (the workbench's redaction module)."""

from __future__ import annotations

import re

__all__ = ["looks_like_injection", "filter_output"]

# Phrases that address the model rather than inform the reader. Retrieved text that matches is
# dropped from the context, and the drop is recorded, rather than trusted as instructions.
_INJECTION = re.compile(
    r"ignore (all |any )?(the |your )?(previous|prior|above|earlier) (instructions|prompts?|rules)"
    r"|disregard (all |any )?(the |your )?(previous|prior|above|earlier|system)"
    r"|forget (all |everything )?(you were|your|the) (told|instructions|rules)"
    r"|you are now (a|an|in) "
    r"|new instructions\s*:"
    r"|(reveal|print|show|repeat) (me )?(the |your )?(system prompt|hidden instructions|api key)"
    r"|<\s*/?\s*(system|assistant)\s*>"
    r"|\bcall the (\w+ )?tool\b"
    r"|\bexfiltrate\b",
    re.IGNORECASE,
)


def looks_like_injection(text: str) -> str | None:
    """The phrase that makes ``text`` look like a prompt injection, or None."""
    match = _INJECTION.search(text)
    return match.group(0) if match else None


def filter_output(text: str, block: list[str]) -> str | None:
    """The first blocked pattern ``text`` matches, or None."""
    for pattern in block:
        if re.search(pattern, text, re.IGNORECASE):
            return pattern
    return None
