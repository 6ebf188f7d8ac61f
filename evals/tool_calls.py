"""The `tool_call` metric: did the answer call the expected functions with acceptable arguments?

Checked the way an AST-based function-call checker does it (the Berkeley Function Calling
Leaderboard's "AST" category): no execution, the call's structure is compared with what the
case allows. A case writes, per expected call, each argument's allowed values:

    {"expected_calls": [{"name": "get_weather",
                         "arguments": {"city": ["Paris", "Paris, France"], "unit": ["celsius", ""]}}]}

- a list holds the values any of which is right; a bare value is shorthand for a list of one
  (an array argument is therefore written inside a list: `"days": [[1, 2]]`);
- `""` among the allowed values makes the argument optional: it may be left out;
- an argument the expected call does not name is wrong, as is a missing one not marked optional;
- strings compare after standardising (lowercase; spaces and `,./-_*^` dropped; `'` as `"`), as
  BFCL's checker does; numbers compare by value (an int is accepted for a float, never a string
  for a number); lists element by element, objects key by key, recursively.

Several expected calls (parallel calls) are matched to the answer's calls in any order, one to
one; their counts must agree. The score is 1.0 when every call matches, else 0.0, with the first
reason it did not.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["check_calls", "parse_expected_calls"]

_DROPPED = re.compile(r"[ ,./\-_*^]")


def _standard(text: str) -> str:
    return _DROPPED.sub("", text.lower()).replace("'", '"')


def _same(expected: Any, actual: Any) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(expected) is type(actual) and expected == actual
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        return float(expected) == float(actual)
    if isinstance(expected, str) and isinstance(actual, str):
        return _standard(expected) == _standard(actual)
    if isinstance(expected, list) and isinstance(actual, list):
        return len(expected) == len(actual) and all(_same(e, a) for e, a in zip(expected, actual))
    if isinstance(expected, dict) and isinstance(actual, dict):
        return expected.keys() == actual.keys() and all(_same(expected[k], actual[k]) for k in expected)
    return expected is None and actual is None


def _allowed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _why_not(expected: dict[str, Any], actual: dict[str, Any]) -> str | None:
    """Why ``actual`` (name, arguments) is not the ``expected`` call, or None when it is."""
    if actual.get("name") != expected["name"]:
        return f"called {actual.get('name')!r}, expected {expected['name']!r}"
    arguments = actual.get("arguments")
    if not isinstance(arguments, dict):
        return f"{expected['name']}: the arguments are not an object"
    wanted = expected.get("arguments") or {}
    for name in arguments:
        if name not in wanted:
            return f"{expected['name']}: unexpected argument {name!r}"
    for name, allowed in wanted.items():
        options = _allowed(allowed)
        if name not in arguments:
            if "" not in options:
                return f"{expected['name']}: argument {name!r} is missing"
            continue
        if not any(
            _same(option, arguments[name]) for option in options if option != "" or arguments[name] == ""
        ):
            return (
                f"{expected['name']}: {name}={json.dumps(arguments[name])} is not among {json.dumps(options)}"
            )
    return None


def check_calls(expected: list[dict[str, Any]], actual: list[dict[str, Any]]) -> tuple[float, str]:
    """(1.0 or 0.0, the reason) for the answer's calls ``actual`` ([{"name", "arguments"}], the
    arguments as an object or its JSON text) against a case's ``expected`` calls."""
    calls = []
    for call in actual:
        arguments = call.get("arguments")
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments)
            except ValueError:
                return 0.0, f"{call.get('name')}: the arguments are not JSON"
        calls.append({"name": call.get("name"), "arguments": arguments})
    if len(calls) != len(expected):
        return 0.0, f"{len(calls)} call{'s' * (len(calls) != 1)}, expected {len(expected)}"
    unused = list(range(len(calls)))
    for want in expected:
        reasons = []
        for index in unused:
            reason = _why_not(want, calls[index])
            if reason is None:
                unused.remove(index)
                break
            reasons.append(reason)
        else:
            return 0.0, reasons[0] if reasons else f"no call left for {want['name']}"
    return 1.0, "every call matches"


def parse_expected_calls(value: Any) -> tuple[dict[str, Any], ...]:
    """A case's `expected_calls`, checked: [{"name": str, "arguments": {...}}]."""
    if not isinstance(value, list) or not value:
        raise ValueError("`expected_calls` must be a non-empty list of {name, arguments}")
    calls = []
    for index, call in enumerate(value):
        if not isinstance(call, dict) or not isinstance(call.get("name"), str) or not call["name"]:
            raise ValueError(f"`expected_calls[{index}]` needs a `name`")
        arguments = call.get("arguments", {})
        if not isinstance(arguments, dict):
            raise ValueError(f"`expected_calls[{index}].arguments` must be an object")
        extra = set(call) - {"name", "arguments"}
        if extra:
            raise ValueError(f"`expected_calls[{index}]` has unknown field(s) {', '.join(sorted(extra))}")
        calls.append({"name": call["name"], "arguments": arguments})
    return tuple(calls)
