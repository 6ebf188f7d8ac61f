"""`workbench mcp`: the workbench as an MCP server (the official SDK's MCPServer), so Claude
Desktop, an IDE or any MCP host can search the user's collections, run their workflows, read
their traces and see their models. stdio by default; streamable HTTP on loopback only.

The same confinement as the built-in tools: traces are read by one SELECT at a time, with the
sql tool's row cap and statement timeout; nothing here writes, deletes or reads files.
What a call gets wrong comes back as a tool error with what to do (MCP's `is_error`), never a
traceback.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

__all__ = ["build_server"]

MAX_K = 20


def build_server(service) -> Any:
    from mcp.server.mcpserver import MCPServer

    server = MCPServer(
        "workbench",
        instructions=(
            "The user's local AI workbench: search their document collections (list_collections "
            "first), run their workflows, query the traces of every model call (SQL over `spans`)."
        ),
        log_level="ERROR",
    )

    @server.tool()
    def list_collections() -> str:
        """The document collections of this workbench: name, files, chunks, embedding model."""
        return _answer(lambda: json.dumps(service.list_collections(), default=str))

    @server.tool()
    def search(collection: str, query: str, k: int = 5) -> str:
        """The k passages of a collection most relevant to the query (hybrid search), each with
        its file, place and score."""

        def found() -> str:
            hits = service.search(collection, query, k=max(1, min(k, MAX_K)))
            return json.dumps(
                [
                    {
                        "path": hit["path"],
                        "page": hit.get("page"),
                        "headings": hit.get("headings"),
                        "score": round(float(hit["score"]), 4),
                        "text": hit["text"],
                    }
                    for hit in hits
                ],
                ensure_ascii=False,
            )

        return _answer(found)

    @server.tool()
    def list_workflows() -> str:
        """The workflows of this workbench, with their nodes."""
        return _answer(lambda: json.dumps(service.workflows.list(), default=str))

    @server.tool()
    def run_workflow(workflow: str, input: str) -> str:
        """Run a workflow on an input; its answer and the id of its trace."""

        def ran() -> str:
            outcome = service.workflows.run(workflow, input)
            state = outcome["state"]
            return json.dumps(
                {
                    "answer": state.get("answer"),
                    "trace_id": outcome["trace_id"],
                    "thread_id": outcome["thread_id"],
                },
                ensure_ascii=False,
                default=str,
            )

        return _answer(ran)

    @server.tool()
    def query_traces(sql: str) -> str:
        """One read-only SELECT over the traces (table `spans`: trace_id, name, kind, model,
        provider, status, start_ns, duration_ms, input_tokens, output_tokens, cost_usd, error,
        attributes, payload); at most 20 rows, 5 s."""
        from workbench.services.workflows import query_traces

        return _answer(lambda: query_traces(service, sql))

    @server.tool()
    def list_models() -> str:
        """The models of this workbench (local GGUF, embedding, cloud) and whether each is here."""

        def listed() -> str:
            local = [
                {
                    "name": m.alias,
                    "kind": m.kind,
                    "present": m.present,
                    "size_mb": round(m.size_bytes / 1e6, 1),
                }
                for m in service.list_models()
            ]
            cloud = [
                {"name": f"{e['name']}/{model}", "kind": "cloud", "present": e["usable"]}
                for e in service.cloud_endpoints()
                for model in e.get("models", [])
            ]
            return json.dumps(local + cloud)

        return _answer(listed)

    return server


def _answer(work: Callable[[], str]) -> str:
    """``work()``, or its failure as the tool error the client's model reads."""
    from mcp.server.mcpserver.exceptions import ToolError

    from workbench.core.errors import WorkbenchError

    try:
        return work()
    except WorkbenchError as exc:
        raise ToolError(exc.one_line()) from None
