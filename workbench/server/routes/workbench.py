"""The workbench's own routes (not OpenAI's): `workbench search`, `run`, `compare` and `eval run`
post here when their workspace's gateway runs, so they find its models loaded, their requests
join the ones the gateway is decoding already, and the gateway stays the one process writing
the workspace's traces.

/workbench/search answers JSON. The others answer NDJSON as the work goes: ``{"event": {...}}``
lines (a workflow's node events and tokens, an eval's progress), then one ``{"result": ...}`` or
``{"error": {...}}`` (the error object of an HTTP error answer, with its status). A client that goes
away stops an eval (its finished cases stay, resumable) and a workflow run (at its next node
boundary, the answer being generated cut short and not kept: `run --resume` does the rest); a
compare goes on to its end (its answers are traced).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from workbench.core import spend
from workbench.core.errors import WorkbenchError
from workbench.server.errors import from_exception
from workbench.server.gateway import gateway_of
from workbench.server.middleware import read_json
from workbench.server.protocol import check_cap, parse
from workbench.server.protocol.workbench import Answer, CompareRequest, EvalRequest, RunRequest, SearchRequest
from workbench.server.streaming import Bridge

__all__ = ["workbench_routes", "wire_error"]


async def search(request: Request) -> Response:
    gw, key = gateway_of(request), request.state.key
    arguments = parse(SearchRequest, await read_json(request)).arguments()

    def searched():
        with gw.root_span("gateway.search", key, "/workbench/search", {}):
            return gw.service.search(**arguments)

    hits = await run_in_threadpool(searched)
    return JSONResponse({"hits": hits}, headers={"x-workbench-trace-id": hits[0]["trace_id"] if hits else ""})


def _run(service, body: RunRequest, emit, stop: threading.Event, owner: str | None) -> Any:
    return service.workflows.run(body.name, body.input, body.thread_id, emit, stop, owner, body.decision())


def _compare(service, body: CompareRequest, emit, stop: threading.Event, owner: str | None) -> Any:
    outcomes = service.compare(body.models, body.prompt, body.system, body.params)
    return [
        {"error": wire_error(o)} if isinstance(o, WorkbenchError) else Answer.of(o).model_dump()
        for o in outcomes
    ]


def _eval(service, body: EvalRequest, emit, stop: threading.Event, owner: str | None) -> Any:
    def progress(subject: str, done: int, total: int) -> None:
        emit({"event": "progress", "subject": subject, "done": done, "total": total})

    return {"run_id": service.evals.run(**body.arguments(), progress=progress, stop=stop)}


def _command(name: str, protocol: type, work: Callable) -> Route:
    async def endpoint(request: Request) -> Response:
        gw, key = gateway_of(request), request.state.key
        # A keyed gateway's runs belong to the key that started them; a keyless one acts for
        # the machine's user, as the CLI in process does.
        owner = key if request.app.state.keyed else None
        body = parse(protocol, await read_json(request))
        check_cap(body.asked_tokens(), gw.max_tokens)  # the server's cap holds on every route
        await gw.check_budget(key)  # and the key's budget: a command's cloud calls spend too
        stop = threading.Event()

        def paid(emit):
            # Every cloud call under it is charged to the key, and a run or a comparison is one
            # trace tagged with the key, as a chat is (an eval's cases are traces of their own).
            with spend.paying(key, gw.budgets):
                if name == "eval":
                    return work(gw.service, body, emit, stop, owner)
                with gw.root_span(f"gateway.{name}", key, f"/workbench/{name}", {}):
                    return work(gw.service, body, emit, stop, owner)

        bridge = Bridge(paid, stop)
        return StreamingResponse(
            _ndjson(bridge, lambda status: gw.metrics.commands.labels(name, status).inc()),
            media_type="application/x-ndjson",
        )

    return Route(f"/workbench/{name}", endpoint, methods=["POST"])


async def _ndjson(bridge: Bridge, count: Callable[[str], None]):
    try:
        while True:
            kind, value = await bridge.next()
            if kind == "event":
                line = {"event": value}
            elif kind == "done":
                line = {"result": value}
            else:
                line = {"error": wire_error(value)}
            if kind != "event":
                count("ok" if kind == "done" else "error")
            yield json.dumps(line, ensure_ascii=False, default=str) + "\n"
            if kind != "event":
                break
    finally:
        bridge.cancel.set()  # also when the client went away


def wire_error(exc: BaseException) -> dict[str, Any]:
    """An error as a command's last line: the error object of an HTTP error answer, and its
    status (the CLI's client reads both the same way)."""
    api = from_exception(exc)
    return {**api.body()["error"], "status": api.status}


def workbench_routes() -> list[Route]:
    return [
        Route("/workbench/search", search, methods=["POST"]),
        _command("run", RunRequest, _run),
        _command("compare", CompareRequest, _compare),
        _command("eval", EvalRequest, _eval),
    ]
