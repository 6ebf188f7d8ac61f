"""The secret values this process knows (cloud API keys, object-store secrets, the gateway's own
keys, a Hugging Face token), and `scrub`, which takes them out of any text before it is stored,
printed, exported or sent.

An upstream may echo a key back ("Incorrect API key provided: sk-..."), and that text travels
into errors, spans, eval results and the gateway's replies. Pattern-based redaction
(workbench.core.redaction) guesses at what looks like a key; this module knows the values, so it
catches any key, whatever it looks like. The values are read from the environment variables the
config names when the config is loaded, and registered by whoever reads a secret elsewhere.
"""

from __future__ import annotations

import logging
import os
import threading
import traceback
from collections.abc import Iterable
from typing import Any

__all__ = [
    "register",
    "register_env",
    "any_known",
    "scrub",
    "scrub_value",
    "ScrubLogs",
    "private",
    "MASK",
    "ALWAYS",
]

MASK = "[REDACTED:secret]"
# Variables that hold secrets whatever the config says: the Hub token of `models pull`.
ALWAYS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
# Shorter values would mask ordinary words; no real key is this short.
_MIN_LENGTH = 8

_lock = threading.Lock()
_known: tuple[str, ...] = ()  # longest first, so that a key holding another is masked whole


def register(values: Iterable[str | None]) -> None:
    """Remember ``values`` as secrets (empty and very short ones are ignored)."""
    global _known
    fresh = {value.strip() for value in values if value and len(value.strip()) >= _MIN_LENGTH}
    with _lock:
        if fresh - set(_known):
            _known = tuple(sorted(fresh | set(_known), key=len, reverse=True))


def register_env(names: Iterable[str | None]) -> None:
    """Remember the values of the environment variables ``names`` (and of ALWAYS) that are set."""
    register(os.environ.get(name) for name in [*names, *ALWAYS] if name)


def any_known() -> bool:
    return bool(_known)


def scrub(text: str) -> str:
    """``text`` with every known secret value replaced by MASK."""
    known = _known
    if not known or not text:
        return text
    for value in known:
        if value in text:
            text = text.replace(value, MASK)
    return text


def scrub_value(value: Any) -> Any:
    """`scrub` over every string inside a JSON-like value (keys included)."""
    if not _known:
        return value
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {scrub_value(key): scrub_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub_value(item) for item in value]
    return value


class ScrubLogs(logging.Filter):
    """A log handler's filter that scrubs each record, its traceback included (formatted here,
    since a formatter would otherwise print the exception's text as it is)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _known:
            record.msg, record.args = scrub(record.getMessage()), None
            if record.exc_info:
                record.exc_text = scrub("".join(traceback.format_exception(*record.exc_info)).rstrip())
                record.exc_info = None
        return True


def private(*paths: os.PathLike | str) -> None:
    """Make the files ``paths`` that exist readable by their owner only (0600): the trace store,
    the run checkpoints and the gateway's state and log hold prompts, answers and the secrets an
    error may quote, and other users of the machine have no business reading them."""
    for path in paths:
        try:
            if os.stat(path).st_mode & 0o077:
                os.chmod(path, 0o600)
        except FileNotFoundError:
            continue
