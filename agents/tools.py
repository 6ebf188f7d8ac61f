"""The tools a `tool` node may call. Each takes the model's text input and returns text; a tool
that fails raises ToolFailed with a message the model (and the trace) can read.

A workflow names its allow-list in the spec; the runtime refuses anything else. The file reader
never leaves the folder it is given and the SQL tool only reads (a read-only connection, and
one statement that must be a SELECT), whatever a prompt-injected document asks for.
"""

from __future__ import annotations

import ast
import math
import operator
import re
from collections.abc import Callable
from pathlib import Path

__all__ = ["TOOLS", "ToolFailed", "calculator", "read_file", "check_select"]

MAX_OUTPUT = 2000
SQL_ROWS = 20  # rows of a query's answer the model reads
SQL_TIMEOUT_S = 5.0  # a query running longer is interrupted (a cross join can run for hours)


class ToolFailed(Exception):
    pass


_OPS: dict[type, Callable] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}


MAX_EXPRESSION = 500  # characters: deeper nesting would only reach Python's recursion limit
MAX_BITS = 2048  # integers past ~600 digits are not arithmetic a workflow needs


def calculator(expression: str) -> str:
    """Arithmetic on real numbers: + - * / // % ** and parentheses. No names, no calls. Every
    way the arithmetic can fail (too deep, too large, no real result) is a ToolFailed the model
    reads, never an exception that ends the run."""
    text = expression.strip().rstrip("=").replace("^", "**").replace("×", "*").replace("÷", "/")
    if len(text) > MAX_EXPRESSION:
        raise ToolFailed(f"the expression is longer than {MAX_EXPRESSION} characters")
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise ToolFailed(f"not an arithmetic expression: {expression[:80]!r}") from None

    def value(node: ast.AST) -> float | int:
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            return _checked(node.value)
        if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
            return _checked(_OPS[type(node.op)](value(node.operand)))
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            left, right = value(node.left), value(node.right)
            if isinstance(node.op, ast.Pow) and (abs(right) > 100 or abs(left) > 1e6):
                raise ToolFailed("exponent too large")  # 9**9**9 would hang the run
            return _checked(_OPS[type(node.op)](left, right))
        raise ToolFailed(f"only numbers and + - * / // % ** are allowed, not {type(node).__name__}")

    try:
        result = value(tree.body)
    except ZeroDivisionError:
        raise ToolFailed("division by zero") from None
    except (OverflowError, RecursionError, MemoryError):
        raise ToolFailed("the numbers are too large (or nested too deeply) to compute") from None
    if isinstance(result, float) and result.is_integer() and abs(result) < 1e15:
        result = int(result)
    return str(result)


def _checked(result: object) -> float | int:
    if isinstance(result, complex):  # (-8) ** 0.5
        raise ToolFailed("no real result (a fractional power of a negative number)")
    if isinstance(result, float) and not math.isfinite(result):
        raise ToolFailed("the result is not a finite number")
    if isinstance(result, int) and result.bit_length() > MAX_BITS:
        raise ToolFailed("the result is too large")
    return result  # type: ignore[return-value]


# The workspace's own files: never readable by read_file, whatever folders a workflow names.
PRIVATE = ("workbench.toml", "server.json", "server.log", "traces.duckdb", "checkpoints.sqlite", ".secrets")


def read_file(
    roots: Path | list[Path], relative: str, max_chars: int = 20_000, private: list[Path] = ()
) -> str:
    """A text file under one of ``roots`` (the folders a workflow names); anything that resolves
    outside them (``..``, an absolute path, a symlink out) or into ``private`` is refused."""
    roots = [roots] if isinstance(roots, Path) else roots
    if not roots:
        raise ToolFailed("this tool node names no folder read_file may read (add `files: [FOLDER]` to it)")
    name = relative.strip().strip("'\"")
    hidden = [p.resolve() for p in private]
    for base in (root.resolve() for root in roots):
        target = (base / name).resolve()
        if not target.is_relative_to(base) or any(target == h or target.is_relative_to(h) for h in hidden):
            continue
        if not target.is_file():
            continue
        try:
            return target.read_text(encoding="utf-8", errors="replace")[:max_chars]
        except OSError as exc:
            raise ToolFailed(f"cannot read {relative!r}: {exc.strerror}") from None
    inside = any((root.resolve() / name).resolve().is_relative_to(root.resolve()) for root in roots)
    if not inside:
        raise ToolFailed(f"{relative!r} is outside the folders this tool may read")
    raise ToolFailed(f"no file {relative!r} in the folders this tool may read")


_WRITE_WORDS = re.compile(
    r"\b(insert|update|delete|drop|create|alter|attach|detach|copy|export|import|install|load|pragma|"
    r"set|call|checkpoint|vacuum)\b",
    re.IGNORECASE,
)


def check_select(query: str) -> str:
    """One read-only statement or a ToolFailed saying why not. The connection is read-only as
    well; this check gives the model a clear refusal instead of a database error."""
    text = query.strip().rstrip(";").strip()
    if ";" in text:
        raise ToolFailed("one statement only")
    if not re.match(r"^(select|with)\b", text, re.IGNORECASE):
        raise ToolFailed("only SELECT queries over the traces are allowed")
    if _WRITE_WORDS.search(re.sub(r"'[^']*'", "''", text)):
        raise ToolFailed("only SELECT queries over the traces are allowed")
    return text


TOOLS = {
    "calculator": "arithmetic, e.g. `17 * 23 + 4`",
    "read_file": "a text file of the folders the tool node names (`files:`), by relative path",
    "sql": "a read-only SQL SELECT over the traces table `spans`",
}
