"""The workbench's own commands through the gateway (not OpenAI routes): `workbench run`,
`compare` and `eval run` post here when their workspace's gateway runs, so they find its models
loaded, their requests join the ones the gateway is decoding already, and the gateway stays the
one process writing the workspace's traces.

Each answers NDJSON as the work goes: ``{"event": {...}}`` lines (a workflow's node events and
tokens, an eval's progress), then one ``{"result": ...}`` or ``{"error": {"type", "message",
"hint"}}``. A client that goes away stops an eval (its finished cases stay, resumable) and a
workflow run (at its next node boundary, the answer being generated cut short and not kept:
`run --resume` does the rest); a compare goes on to its end (its answers are traced).
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import threading
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from workbench.core.errors import UsageError, WorkbenchError
from workbench.server.openai_wire import ApiError, error_body

__all__ = ["command_routes"]


def command_routes(service, key_name: Callable[[Request], str], read_body, counter) -> list[Route]:
    """The routes; ``counter`` (a Prometheus Counter by command and status) counts the runs."""

    def run_workflow(body: dict, emit, stop: threading.Event) -> Any:
        return service.workflows.run(body.get("name"), body.get("input"), body.get("thread_id"), emit, stop)

    def compare(body: dict, emit, stop: threading.Event) -> Any:
        outcomes = service.compare(
            _list(body, "models"), _text(body, "prompt"), body.get("system"), body.get("params")
        )
        return [{"error": _error(o)} if isinstance(o, WorkbenchError) else o.as_dict() for o in outcomes]

    def eval_run(body: dict, emit, stop: threading.Event) -> Any:
        def progress(subject: str, done: int, total: int) -> None:
            emit({"event": "progress", "subject": subject, "done": done, "total": total})

        arguments = {k: v for k, v in body.items() if k in _EVAL_ARGUMENTS}
        return {"run_id": service.evals.run(**arguments, progress=progress, stop=stop)}

    def route(path: str, work: Callable[[dict, Callable, threading.Event], Any]) -> Route:
        async def endpoint(request: Request) -> Response:
            try:
                key_name(request)
                body = await read_body(request)
                if not isinstance(body, dict):
                    raise ApiError(400, "give a JSON object")
            except ApiError as exc:
                return JSONResponse(error_body(exc.message, exc.kind, exc.code, exc.param), exc.status)
            name = path.rsplit("/", 1)[1]
            return StreamingResponse(
                _ndjson(work, body, lambda status: counter.labels(name, status).inc()),
                media_type="application/x-ndjson",
            )

        return Route(path, endpoint, methods=["POST"])

    return [
        route("/workbench/run", run_workflow),
        route("/workbench/compare", compare),
        route("/workbench/eval", eval_run),
    ]


_EVAL_ARGUMENTS = {
    "dataset",
    "models",
    "workflow",
    "template",
    "system",
    "judge",
    "max_tokens",
    "concurrency",
    "limit",
    "resume",
    "retry_errors",
    "parallel",
}


async def _ndjson(work, body: dict, count: Callable[[str], None]):
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    stop = threading.Event()

    def emit(event: dict[str, Any]) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, {"event": event})

    def run() -> None:
        try:
            outcome = {"result": work(body, emit, stop)}
        except WorkbenchError as exc:
            outcome = {"error": _error(exc)}
        except Exception as exc:  # noqa: BLE001 - any failure becomes the stream's last line
            outcome = {"error": {"type": "WorkbenchError", "message": f"{type(exc).__name__}: {exc}"}}
        count("ok" if "result" in outcome else "error")
        loop.call_soon_threadsafe(queue.put_nowait, outcome)

    # A copy of this context, so the work's spans are not children of anything of the server's.
    threading.Thread(target=contextvars.copy_context().run, args=(run,), daemon=True).start()
    try:
        while True:
            line = await queue.get()
            yield json.dumps(line, ensure_ascii=False, default=str) + "\n"
            if "event" not in line:
                break
    finally:
        stop.set()  # also when the client went away


def _error(exc: WorkbenchError) -> dict[str, Any]:
    return {"type": type(exc).__name__, "message": exc.message, "hint": exc.hint}


def _list(body: dict, name: str) -> list[str]:
    value = body.get(name)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UsageError(f"{name} must be a list of strings", "see `workbench compare --help`")
    return value


def _text(body: dict, name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str):
        raise UsageError(f"{name} must be a string", "see `workbench compare --help`")
    return value
