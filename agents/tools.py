"""The tools a `tool` node may call. Each takes the model's text input and returns text; a tool
that fails raises ToolFailed with a message the model (and the trace) can read.

A workflow names its allow-list in the spec; the runtime refuses anything else. The file reader
never leaves the folder it is given and the SQL tool only reads (a read-only connection, and
one statement that must be a SELECT), whatever a prompt-injected document asks for.
"""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Callable
from pathlib import Path

__all__ = ["TOOLS", "ToolFailed", "calculator", "read_file", "check_select"]

MAX_OUTPUT = 2000


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


def calculator(expression: str) -> str:
    """Arithmetic on numbers: + - * / // % ** and parentheses. No names, no calls."""
    text = expression.strip().rstrip("=").replace("^", "**").replace("×", "*").replace("÷", "/")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        raise ToolFailed(f"not an arithmetic expression: {expression!r}") from None

    def value(node: ast.AST) -> float | int:
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            return node.value
        if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](value(node.operand))
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            left, right = value(node.left), value(node.right)
            if isinstance(node.op, ast.Pow) and (abs(right) > 100 or abs(left) > 1e6):
                raise ToolFailed("exponent too large")  # 9**9**9 would hang the run
            return _OPS[type(node.op)](left, right)
        raise ToolFailed(f"only numbers and + - * / // % ** are allowed, not {type(node).__name__}")

    try:
        result = value(tree.body)
    except ZeroDivisionError:
        raise ToolFailed("division by zero") from None
    if isinstance(result, float) and result.is_integer() and abs(result) < 1e15:
        result = int(result)
    return str(result)


def read_file(root: Path, relative: str, max_chars: int = 20_000) -> str:
    """A text file under ``root``; anything that resolves outside it (``..``, an absolute path,
    a symlink out) is refused."""
    base = root.resolve()
    target = (base / relative.strip().strip("'\"")).resolve()
    if not target.is_relative_to(base):
        raise ToolFailed(f"{relative!r} is outside the folder this tool may read")
    if not target.is_file():
        raise ToolFailed(f"no file {relative!r} in the folder this tool may read")
    try:
        return target.read_text(encoding="utf-8", errors="replace")[:max_chars]
    except OSError as exc:
        raise ToolFailed(f"cannot read {relative!r}: {exc.strerror}") from None


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
    "read_file": "a text file of the workspace by relative path, e.g. `docs/notes.md`",
    "sql": "a read-only SQL SELECT over the traces table `spans`",
}
