"""Eval datasets: JSONL in <workspace>/evals/, one case per line; CSV can be imported.

    {"id": "q01", "input": "How do I ...?", "expected": ["answer", "or another"],
     "sources": ["docs/documents.md"], "tags": ["search"], "schema": {...}}

Only `input` is required (and `id`, unless line numbers will do). A bad line is reported with its
file and line number, and nothing of the dataset is used until every line is good.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from evals.metrics import normalize
from evals.tool_calls import parse_expected_calls
from workbench.core.errors import EvalError

__all__ = ["Case", "Dataset", "load_dataset", "parse_jsonl", "csv_to_cases", "NAME"]

NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
_FIELDS = {"id", "input", "expected", "sources", "tags", "schema", "tools", "expected_calls"}


@dataclass(frozen=True)
class Case:
    id: str
    input: str
    expected: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    schema: dict[str, Any] | None = field(default=None, hash=False, compare=False)
    tools: tuple[dict[str, Any], ...] = field(default=(), hash=False, compare=False)
    """Functions the subject may call (OpenAI's `tools`); its calls are the case's output."""
    expected_calls: tuple[dict[str, Any], ...] = field(default=(), hash=False, compare=False)
    """The calls the answer should make, scored by the `tool_call` metric (evals/tool_calls.py)."""

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in data.items() if v not in ((), None)}


@dataclass
class Dataset:
    name: str
    path: Path
    cases: list[Case]
    sha256: str

    @property
    def tags(self) -> list[str]:
        return sorted({tag for case in self.cases for tag in case.tags})


def _strings(value: Any, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ValueError(f"`{what}` must be a string or a list of strings")


def _case(data: Any, default_id: str) -> Case:
    if not isinstance(data, dict):
        raise ValueError("each line must be a JSON object")
    unknown = set(data) - _FIELDS
    if unknown:
        raise ValueError(
            f"unknown field(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(_FIELDS))}"
        )
    text = data.get("input")
    if not isinstance(text, str) or not text.strip():
        raise ValueError("`input` is required and must be a non-empty string")
    case_id = data.get("id", default_id)
    if not isinstance(case_id, str | int) or not str(case_id).strip():
        raise ValueError("`id` must be a non-empty string")
    schema = data.get("schema")
    if schema is not None and not isinstance(schema, dict):
        raise ValueError("`schema` must be a JSON schema object")
    expected = _strings(data.get("expected"), "expected")
    for answer in expected:
        if not normalize(answer):
            raise ValueError(
                f"expected answer {answer!r} has no words once normalised (lowercase, no punctuation, "
                "no articles): it would match every output; write the answer, or leave `expected` out"
            )
    tools = data.get("tools") or []
    if not isinstance(tools, list) or not all(
        isinstance(t, dict) and isinstance(t.get("function"), dict) and t["function"].get("name")
        for t in tools
    ):
        raise ValueError('`tools` must be a list of {"type": "function", "function": {"name", "parameters"}}')
    expected_calls = parse_expected_calls(data["expected_calls"]) if "expected_calls" in data else ()
    if expected_calls and not tools:
        raise ValueError("`expected_calls` needs the `tools` the subject may call")
    return Case(
        str(case_id),
        text,
        expected,
        _strings(data.get("sources"), "sources"),
        _strings(data.get("tags"), "tags"),
        schema,
        tuple(tools),
        expected_calls,
    )


def _keep(
    case: Case, number: int, file: str, seen: dict[str, int], cases: list[Case], problems: list[str]
) -> None:
    """Add ``case`` (from line ``number``) unless its id was used before, which is a problem."""
    if case.id in seen:
        problems.append(f"{file}:{number}: id {case.id!r} is already used on line {seen[case.id]}")
        return
    seen[case.id] = number
    cases.append(case)


def parse_jsonl(text: str, file: str) -> list[Case]:
    cases, problems, seen = [], [], {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            case = _case(json.loads(line), f"line{number}")
        except json.JSONDecodeError as exc:
            problems.append(f"{file}:{number}: not JSON: {exc.msg} (column {exc.colno})")
            continue
        except ValueError as exc:
            problems.append(f"{file}:{number}: {exc}")
            continue
        _keep(case, number, file, seen, cases, problems)
    if problems:
        shown = problems[:20] + ([f"... and {len(problems) - 20} more"] if len(problems) > 20 else [])
        raise EvalError(
            f"{file} has {len(problems)} bad line{'s' * (len(problems) != 1)}:\n  " + "\n  ".join(shown),
            "fix those lines; each is a JSON object with at least an `input`",
        )
    if not cases:
        raise EvalError(
            f"{file} has no cases", 'add lines such as {"id": "q1", "input": "...", "expected": "..."}'
        )
    return cases


def load_dataset(path: Path) -> Dataset:
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise EvalError(f"no dataset {path}", "see `workbench eval datasets`") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalError(f"cannot read {path}: {exc}", "datasets are UTF-8 JSONL files") from None
    name = path.name.removesuffix(".jsonl")
    return Dataset(name, path, parse_jsonl(text, str(path)), hashlib.sha256(raw).hexdigest())


def _split(cell: str | None) -> list[str]:
    return [part.strip() for part in re.split(r"[|;]", cell or "") if part.strip()]


def csv_to_cases(text: str, file: str) -> list[Case]:
    """Cases from CSV with a header: input (required), id, expected, sources, tags; several
    expected answers, sources or tags are separated by `|` or `;`."""
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        columns = set(reader.fieldnames or [])
        rows = list(reader)
    except csv.Error as exc:
        raise EvalError(
            f"{file}:{reader.line_num}: not valid CSV: {exc}", "check quoting on that line"
        ) from None
    if "input" not in columns:
        raise EvalError(
            f"{file}: the CSV needs a header with an `input` column (found: {', '.join(sorted(columns)) or 'none'})",
            "columns: id, input, expected, sources, tags",
        )
    unknown = columns - _FIELDS
    if unknown:
        raise EvalError(
            f"{file}: unknown column(s) {', '.join(sorted(unknown))}",
            "columns: id, input, expected, sources, tags",
        )
    cases, problems, seen = [], [], {}
    for number, row in enumerate(rows, start=2):  # line 1 is the header (rows with newlines inside
        # quotes span several lines, so a number is the row's, which is the line in most files)
        if None in row:
            problems.append(f"{file}:{number}: more cells than columns (quote cells that contain commas)")
            continue
        data: dict[str, Any] = {
            "id": (row.get("id") or "").strip() or f"row{number}",
            "input": row.get("input") or "",
        }
        for key in ("expected", "sources", "tags"):
            if row.get(key):
                data[key] = _split(row[key])
        try:
            case = _case(data, data["id"])
        except ValueError as exc:
            problems.append(f"{file}:{number}: {exc}")
            continue
        _keep(case, number, file, seen, cases, problems)
    if problems or not cases:
        raise EvalError(
            f"{file}: " + ("\n  ".join(problems[:20]) if problems else "no rows"),
            "fix those rows; `input` is required",
        )
    return cases
