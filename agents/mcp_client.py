"""The tools of MCP servers ([mcp.NAME] in workbench.toml), through the official MCP Python SDK.

Each listing and each call opens a session of its own (a stdio server is started for it and
stopped after; a streamable-HTTP one is reached at its URL), as langchain-mcp-adapters does
without an explicit session: a server that crashed on one call is whole again for the next,
and no process outlives the run. Whatever goes wrong (the server does not start, exits, hangs,
writes what is not JSON-RPC, answers with an error) is a ToolFailed naming the server: the
model reads it, the trace keeps it, the run goes on.

A tool is named SERVER__TOOL (function names allow letters, digits, _ and - only).
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from agents.tools import ToolFailed

# A server's settings: workbench.core.config.McpServer in the workbench, a plain object with the
# same fields in an exported LangGraph project (which copies this module and has no workbench).
McpServer = Any

__all__ = ["SEPARATOR", "list_tools", "call_tool"]

SEPARATOR = "__"

# The SDK logs each line a server wrote that is not JSON-RPC, with its traceback, on stderr;
# here that is a ToolFailed that says so, and the traceback no user should see goes.
logging.getLogger("mcp.client").setLevel(logging.CRITICAL)


def list_tools(name: str, server: McpServer, root: Path) -> list[dict[str, Any]]:
    """The server's tools as {"name" (SERVER__TOOL), "tool", "description", "parameters"}."""

    async def listing(session) -> list[dict[str, Any]]:
        tools, cursor = [], None
        while True:
            page = await session.list_tools(cursor=cursor) if cursor else await session.list_tools()
            tools += page.tools
            cursor = page.next_cursor
            if not cursor:
                break
        return [
            {
                "name": f"{name}{SEPARATOR}{tool.name}",
                "tool": tool.name,
                "description": tool.description or tool.title or tool.name,
                "parameters": tool.input_schema or {"type": "object", "properties": {}},
            }
            for tool in tools
        ]

    return _run(name, server, root, listing, "list its tools")


def call_tool(name: str, server: McpServer, root: Path, tool: str, arguments: dict[str, Any]) -> str:
    """The tool's result as text: its text contents (or its structured content as JSON)."""

    async def calling(session) -> str:
        result = await session.call_tool(tool, arguments)
        text = "\n".join(
            block.text if getattr(block, "type", "") == "text" else f"[{getattr(block, 'type', 'content')}]"
            for block in result.content
        )
        if not text and result.structured_content is not None:
            text = json.dumps(result.structured_content, ensure_ascii=False)
        if result.is_error:
            raise ToolFailed(f"{name}{SEPARATOR}{tool} answered an error: {text[:500]}")
        return text

    return _run(name, server, root, calling, f"call {tool}")


def _run(name: str, server: McpServer, root: Path, work, doing: str):
    """``work(session)`` on a session with the server, on a thread of its own (the caller may
    be inside an event loop: the gateway's), given up after the server's timeout."""
    import anyio

    errors = tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")

    async def session_run():
        with anyio.fail_after(server.timeout_s):
            return await _with_session(name, server, root, errors, work)

    pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=f"mcp-{name}")
    future = pool.submit(anyio.run, session_run)
    pool.shutdown(wait=False)
    try:
        # a little past the server's own timeout: fail_after is what should end it
        return future.result(timeout=server.timeout_s + 10)
    except Exception as exc:  # noqa: BLE001 - a server's every failure is a tool error naming it
        cause = _cause(exc)
        if isinstance(cause, ToolFailed):
            raise cause from None
        if isinstance(cause, TimeoutError | concurrent.futures.TimeoutError):
            raise ToolFailed(
                f"MCP server {name} did not {doing} within {server.timeout_s:g} s ([mcp.{name}] timeout_s)"
            ) from None
        raise ToolFailed(
            f"MCP server {name} could not {doing}: {_reason(cause)}{_stderr_tail(errors)}"
        ) from None
    finally:
        errors.close()


async def _with_session(name: str, server: McpServer, root: Path, errors, work):
    import anyio
    from mcp import ClientSession, StdioServerParameters, stdio_client

    if server.command is not None:
        parameters = StdioServerParameters(
            command=server.command,
            args=server.args,
            # the named variables only (besides the SDK's plain HOME, PATH, ...): never our keys
            env={key: os.environ[key] for key in server.env if key in os.environ},
            cwd=str(root / server.cwd) if server.cwd else str(root),
        )
        transport = stdio_client(parameters, errlog=errors)
    else:
        transport = _http(server)
    faults: list[Exception] = []
    with anyio.CancelScope() as scope:

        async def on_message(message) -> None:
            # what the transport could not read (not JSON-RPC) comes here; the session would
            # otherwise wait on for an answer until the timeout
            if isinstance(message, Exception):
                faults.append(message)
                scope.cancel()

        async with (
            transport as (read, write),
            ClientSession(read, write, message_handler=on_message) as session,
        ):
            await session.initialize()
            return await work(session)
    raise ToolFailed(
        f"MCP server {name} wrote what is not JSON-RPC"
        + (
            " on stdout (a stdio server writes only JSON-RPC there, its logs on stderr)"
            if server.command
            else ""
        )
    )


def _http(server: McpServer):
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    headers = {}
    if server.bearer_env:
        token = os.environ.get(server.bearer_env)
        if not token:
            raise ToolFailed(f"{server.bearer_env} is not set (the bearer token of {server.url})")
        headers["Authorization"] = f"Bearer {token}"
    client = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=server.timeout_s))
    return streamable_http_client(server.url or "", http_client=client)


def _cause(exc: BaseException) -> BaseException:
    """The first real cause: anyio wraps a task group's failures in an ExceptionGroup."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _stderr_tail(errors) -> str:
    try:
        errors.seek(0)
        lines = [line for line in errors.read().splitlines() if line.strip()]
    except (OSError, ValueError):
        return ""
    return f" (its stderr: {lines[-1][:300]})" if lines else ""
