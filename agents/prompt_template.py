"""Prompt templates over a run's state: `{key}`, `{key.field}`, `{key[field]}`, `{key[0]}` and a
format spec (`{score:.2f}`), and nothing else.

A template used to be `str.format` over the state, which follows attributes: `{action.__class__.
__getattr__.__globals__[json]...}` reached any module and read the environment into a prompt.
Here a field is parsed before anything is read: a state key, then dict keys or list indexes,
each looked up in plain data (never `getattr`), no name starting with an underscore. A template
that breaks these rules is a spec problem at validate time, with its file and line.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Iterator, Mapping
from typing import Any

__all__ = ["template_keys", "fill_template"]

_NAME = r"[A-Za-z][A-Za-z0-9_-]*"
_FIELD = re.compile(rf"({_NAME})((?:\.{_NAME}|\[[^\[\]{{}}]+\])*)")
_PART = re.compile(rf"\.({_NAME})|\[([^\[\]{{}}]+)\]")
_RULE = "a field is a state key, then .key, [key] or [number] of it"


def _fields(template: str) -> Iterator[tuple[str, str, list[str] | None, str, str | None]]:
    """(literal text, field, its parts: [state key, key or index...], format spec, conversion)."""
    for literal, field, spec, conversion in string.Formatter().parse(template):
        if field is None:
            yield literal, "", None, "", None
            continue
        match = _FIELD.fullmatch(field)
        if match is None or any(part.startswith("_") for part in re.split(r"[.\[\]]", field) if part):
            shown = field if len(field) <= 60 else field[:57] + "..."
            if not field or field.isdigit():
                raise ValueError(f"{{{field}}} names no state key ({_RULE})")
            raise ValueError(f"{{{shown}}} is not allowed: {_RULE}, with no name starting with _")
        if "{" in (spec or ""):
            raise ValueError(f"{{{field}:{spec}}}: a format spec may not hold another field")
        if conversion not in (None, "s", "r"):
            raise ValueError(f"{{{field}!{conversion}}}: only !s and !r are conversions")
        parts = [match.group(1)] + [key or index for key, index in _PART.findall(match.group(2))]
        yield literal, field, parts, spec or "", conversion


def template_keys(template: str) -> set[str]:
    """The state keys ``template`` reads; ValueError when it is not a valid, safe template."""
    return {parts[0] for _, _, parts, _, _ in _fields(template) if parts}


def _step(value: Any, key: str) -> Any:
    if isinstance(value, Mapping):
        return value.get(key, "")
    if isinstance(value, (list, tuple)) and re.fullmatch(r"-?\d+", key.strip()):
        index = int(key)
        return value[index] if -len(value) <= index < len(value) else ""
    return ""  # a key of a string, a number or a missing value: nothing to show


def fill_template(template: str, state: Mapping[str, Any], text: Callable[[Any], str]) -> str:
    """``template`` with each field's value from ``state``, shown as ``text`` shows it (a key no
    node on the branch taken has set is empty)."""
    out = []
    for literal, _, parts, spec, conversion in _fields(template):
        out.append(literal)
        if parts is None:
            continue
        value: Any = state.get(parts[0], "")
        for key in parts[1:]:
            value = _step(value, key)
        if spec and isinstance(value, (int, float)) and not isinstance(value, bool) and conversion is None:
            out.append(format(value, spec))
            continue
        shown = text(value)
        if conversion == "r":
            shown = repr(shown)
        out.append(format(shown, spec) if spec else shown)
    return "".join(out)
