"""Every tool a workflow may call, from one registry: the built-ins (calculator, read_file, sql),
the user's own, Python functions in ``<workspace>/tools/*.py``, and the tools of the MCP servers
of workbench.toml (agents/mcp_client.py).

A user tool is a public function of such a file with a docstring (the description the model
reads) and annotated parameters; the signature becomes its JSON schema (pydantic), a parameter
with a default is optional. Loading the files runs them: they are the user's own code, in the
user's own workspace, as LangGraph's `@tool` functions are. A file that does not load, or a
function that cannot become a tool, is reported with the file and the reason, never skipped
in silence.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.tools import TOOLS, ToolFailed

__all__ = [
    "ToolDef",
    "builtin_tools",
    "load_user_tools",
    "mcp_tools",
    "run_user_tool",
    "check_arguments",
    "MAX_RESULT_CHARS",
    "TIMEOUT_S",
]

MAX_RESULT_CHARS = 100_000  # a tool that returns 10 MB is cut here (the model reads less still)
TIMEOUT_S = 30.0  # a user tool running longer is abandoned with a tool error

# The one argument each built-in takes, as the model names it.
_BUILTIN_ARGUMENT = {"calculator": "expression", "read_file": "path", "sql": "query"}


@dataclass(frozen=True)
class ToolDef:
    name: str
    description: str
    parameters: dict[str, Any]
    source: str  # "built-in", the file it comes from, or "mcp:SERVER"
    function: Callable[..., Any] | None = field(default=None, compare=False, repr=False)
    mcp_tool: str | None = None
    """An MCP server's tool: its name on the server (the server is in ``source``)."""

    def spec(self) -> dict[str, Any]:
        """As OpenAI's function tools give it."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }

    def builtin_text(self, arguments: dict[str, Any]) -> str:
        """A built-in's one text input from the model's arguments."""
        key = _BUILTIN_ARGUMENT[self.name]
        value = arguments.get(key)
        if not isinstance(value, str):
            raise ToolFailed(f"{self.name} needs `{key}` (a string)")
        return value


def builtin_tools() -> dict[str, ToolDef]:
    return {
        name: ToolDef(
            name,
            description,
            {
                "type": "object",
                "properties": {_BUILTIN_ARGUMENT[name]: {"type": "string"}},
                "required": [_BUILTIN_ARGUMENT[name]],
            },
            "built-in",
        )
        for name, description in TOOLS.items()
    }


def _schema(function: Callable[..., Any]) -> dict[str, Any]:
    from pydantic import TypeAdapter

    properties: dict[str, Any] = {}
    required = []
    for name, parameter in inspect.signature(function).parameters.items():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise ValueError(f"*{name} cannot be a tool parameter: name each one")
        if parameter.annotation is inspect.Parameter.empty:
            raise ValueError(f"parameter {name!r} has no type annotation (the model needs its type)")
        schema = TypeAdapter(parameter.annotation).json_schema()
        schema.pop("title", None)
        properties[name] = schema
        if parameter.default is inspect.Parameter.empty:
            required.append(name)
    schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return schema


def load_user_tools(folder: Path) -> tuple[dict[str, ToolDef], list[str]]:
    """The tools of ``folder``/*.py and the problems found (``file: why``)."""
    tools: dict[str, ToolDef] = {}
    problems: list[str] = []
    reserved = set(TOOLS)
    for path in sorted(folder.glob("*.py")) if folder.is_dir() else []:
        module_name = f"workbench_user_tools.{path.stem}"
        try:
            spec = importlib.util.spec_from_file_location(module_name, path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            spec.loader.exec_module(module)
        except Exception as exc:  # noqa: BLE001 - the user's file: any failure is reported, with its file
            sys.modules.pop(module_name, None)
            problems.append(f"{path.name}: does not load ({type(exc).__name__}: {exc})")
            continue
        for name, function in vars(module).items():
            if name.startswith("_") or not inspect.isfunction(function) or function.__module__ != module_name:
                continue
            where = f"{path.name}:{function.__code__.co_firstlineno}"
            if name in reserved or name in tools:
                problems.append(
                    f"{where}: {name} is already a tool ({tools[name].source if name in tools else 'built-in'})"
                )
                continue
            if not inspect.getdoc(function):
                problems.append(
                    f"{where}: {name} has no docstring (the model reads it to know what the tool does)"
                )
                continue
            try:
                parameters = _schema(function)
            except (ValueError, TypeError) as exc:
                problems.append(f"{where}: {name}: {exc}")
                continue
            tools[name] = ToolDef(name, inspect.getdoc(function) or "", parameters, path.name, function)
    return tools, problems


def mcp_tools(servers: dict[str, Any], root: Path) -> tuple[dict[str, ToolDef], list[str]]:
    """The tools of the [mcp.NAME] servers (each asked for its list) and the problems of those
    that could not say."""
    from agents.mcp_client import list_tools

    tools: dict[str, ToolDef] = {}
    problems: list[str] = []
    for name, server in servers.items():
        try:
            listed = list_tools(name, server, root)
        except ToolFailed as exc:
            problems.append(f"[mcp.{name}]: {exc}")
            continue
        for entry in listed:
            tools[entry["name"]] = ToolDef(
                entry["name"],
                entry["description"],
                entry["parameters"],
                f"mcp:{name}",
                mcp_tool=entry["tool"],
            )
    return tools, problems


def check_arguments(tool: ToolDef, arguments: dict[str, Any]) -> None:
    import jsonschema

    try:
        jsonschema.validate(arguments, tool.parameters)
    except jsonschema.ValidationError as exc:
        raise ToolFailed(f"arguments do not fit {tool.name}: {exc.message}") from None
    except jsonschema.SchemaError:
        pass  # a server's schema jsonschema cannot read: the server checks its own arguments


def cut(text: str) -> str:
    if len(text) > MAX_RESULT_CHARS:
        return text[:MAX_RESULT_CHARS] + f"... [cut: {len(text):,} characters]"
    return text


def run_user_tool(tool: ToolDef, arguments: dict[str, Any], timeout_s: float = TIMEOUT_S) -> str:
    """Call a user tool with the model's arguments (checked against its schema first); any way it
    fails (a wrong argument, an exception, too long) is a ToolFailed the model reads."""
    import concurrent.futures

    check_arguments(tool, arguments)
    assert tool.function is not None
    # A thread of its own: a tool that hangs is abandoned after the timeout (Python cannot kill
    # a thread; it runs on, unread, and the run goes on).
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"tool-{tool.name}")
    future = pool.submit(tool.function, **arguments)
    pool.shutdown(wait=False)
    try:
        result = future.result(timeout=timeout_s)
    except concurrent.futures.TimeoutError:
        raise ToolFailed(f"{tool.name} took longer than {timeout_s:g} s and was abandoned") from None
    except Exception as exc:  # noqa: BLE001 - the user's code: every failure is a tool error
        raise ToolFailed(f"{tool.name} raised {type(exc).__name__}: {exc}") from None
    text = result if isinstance(result, str) else json.dumps(result, ensure_ascii=False, default=str)
    return cut(text)
