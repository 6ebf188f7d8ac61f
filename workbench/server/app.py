"""The gateway: an OpenAI-compatible HTTP API over the workspace's service (Starlette, run by
uvicorn). Every chat request is one trace (`gateway.chat`), tagged with the client key's name,
with the model calls (and the router's decision) under it.

Model calls run in worker threads (llama.cpp and the cloud clients block); a streamed answer
goes from the model's thread to the response through a queue, and a client that disconnects
sets the call's cancel event, which stops the decode.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import re
import secrets
import threading
import time
from collections import deque
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from workbench.core.errors import CloudError, ModelError, UsageError, WorkbenchError, WorkflowError
from workbench.server.commands import command_routes
from workbench.server.openai_wire import (
    ApiError,
    ChatRequest,
    chunk,
    completion,
    embeddings_body,
    error_body,
    final_chunks,
    read_chat,
    read_embeddings,
)

__all__ = ["create_app"]

MAX_REQUEST_BYTES = 1_000_000


class _Metrics:
    """The gateway's Prometheus metrics, in a registry of its own (one per app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "workbench_requests", "Chat requests", ["model", "status"], registry=self.registry
        )
        self.tokens = Counter("workbench_tokens", "Tokens", ["model", "direction"], registry=self.registry)
        self.cost = Counter(
            "workbench_cost_usd", "Cost of the answers (USD)", ["model"], registry=self.registry
        )
        self.latency = Histogram(
            "workbench_request_duration_seconds",
            "Chat request duration",
            ["model"],
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=self.registry,
        )
        self.escalations = Counter(
            "workbench_escalations", "Requests the router escalated", ["reason"], registry=self.registry
        )
        self.errors = Counter(
            "workbench_errors", "Failed requests by error type", ["type"], registry=self.registry
        )
        self.commands = Counter(
            "workbench_commands",
            "Workbench commands run for the CLI (run, compare, eval)",
            ["command", "status"],
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "workbench_requests_in_flight", "Requests being answered", registry=self.registry
        )


class _Keys:
    """Bearer tokens by key name, and a requests-per-minute limit per key."""

    def __init__(self, tokens: dict[str, str], per_minute: int | None) -> None:
        self.tokens, self.per_minute = tokens, per_minute
        self.seen: dict[str, deque[float]] = {}
        self.lock = threading.Lock()

    def key_name(self, request: Request) -> str:
        if not self.tokens:
            return "local"
        header = request.headers.get("authorization", "")
        token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
        name = next((n for t, n in self.tokens.items() if token and secrets.compare_digest(t, token)), None)
        if name is None:
            raise ApiError(
                401,
                "a valid API key is required (Authorization: Bearer ...)",
                "authentication_error",
                "invalid_api_key",
            )
        self._count(name)
        return name

    def _count(self, name: str) -> None:
        if self.per_minute is None:
            return
        now = time.monotonic()
        with self.lock:
            seen = self.seen.setdefault(name, deque())
            while seen and now - seen[0] >= 60:
                seen.popleft()
            if len(seen) >= self.per_minute:
                wait = max(1, int(60 - (now - seen[0])) + 1)
                raise ApiError(
                    429,
                    f"key {name} is over its {self.per_minute} requests a minute",
                    "rate_limit_error",
                    "rate_limit_exceeded",
                    headers={"retry-after": str(wait)},
                )
            seen.append(now)


class _Budgets:
    """Each key's cloud spend today against its daily budget ([server] daily_budget_usd). The
    first request of a day reads the key's spend from the store; after that this process adds
    what each answer cost."""

    def __init__(self, service, budgets: dict[str, float]) -> None:
        self.service, self.budgets = service, budgets
        self.spent: dict[str, tuple[int, float]] = {}  # key -> (day's midnight, USD)
        self.lock = threading.Lock()

    def _today(self, key: str) -> float:
        from workbench.core.clock import local_midnight_ns

        midnight = local_midnight_ns()
        with self.lock:
            day, spent = self.spent.get(key, (None, 0.0))
        if day != midnight:
            spent = self.service.key_spend(key, midnight)
            with self.lock:
                self.spent[key] = (midnight, spent)
        return spent

    def check(self, key: str) -> None:
        budget = self.budgets.get(key)
        if budget is None:
            return
        spent = self._today(key)
        if spent >= budget:
            from workbench.core.clock import local_midnight_ns

            wait = max(1, int((local_midnight_ns() + 86_400 * 10**9 - time.time_ns()) / 1e9))
            raise ApiError(
                429,
                f"key {key} spent ${spent:.4f} of its ${budget:.4f} daily budget; it resets at midnight",
                "insufficient_quota",
                "daily_budget_exceeded",
                headers={"retry-after": str(wait)},
            )

    def add(self, key: str, cost: float) -> None:
        if key in self.budgets and cost:
            with self.lock:
                day, spent = self.spent.get(key, (None, 0.0))
                if day is not None:
                    self.spent[key] = (day, spent + cost)


def _status(exc: WorkbenchError) -> tuple[int, str, str | None]:
    """An error of ours as (HTTP status, OpenAI error type, code)."""
    if isinstance(exc, CloudError):
        return 502, "api_error", "upstream_error"
    if isinstance(exc, ModelError) and "no model named" in exc.message:
        return 404, "invalid_request_error", "model_not_found"
    if isinstance(exc, WorkflowError) and exc.message.startswith(("no workflow ", "'")):
        return 404, "invalid_request_error", "model_not_found"
    if isinstance(exc, UsageError):
        return 400, "invalid_request_error", None
    return 500, "api_error", type(exc).__name__


def _error_response(exc: ApiError) -> JSONResponse:
    return JSONResponse(
        error_body(exc.message, exc.kind, exc.code, exc.param), exc.status, headers=exc.headers
    )


def create_app(
    service,
    tokens: dict[str, str] | None = None,
    per_minute: int | None = None,
    max_tokens_limit: int = 4096,
    daily_budgets: dict[str, float] | None = None,
) -> Starlette:
    """The gateway for ``service``'s workspace. ``tokens`` maps each accepted bearer token to
    its key's name; without tokens every request is the key "local". ``daily_budgets``: USD a
    key may spend per day. A model named `workflow/NAME` runs that workflow."""
    metrics = _Metrics()
    keys = _Keys(tokens or {}, per_minute)
    budgets = _Budgets(service, daily_budgets or {})

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "workspace": str(service.workspace.root)})

    async def models(request: Request) -> Response:
        try:
            keys.key_name(request)
        except ApiError as exc:
            return _error_response(exc)

        def listed() -> list[str]:
            workflows = [f"workflow/{w['name']}" for w in service.workflows.list() if w["valid"]]
            return service.model_choices() + workflows + service.embedding_models()

        names = await run_in_threadpool(listed)
        created = int(time.time())
        return JSONResponse(
            {
                "object": "list",
                "data": [
                    {"id": n, "object": "model", "created": created, "owned_by": "workbench"} for n in names
                ],
            }
        )

    async def prometheus(request: Request) -> Response:
        return Response(
            generate_latest(metrics.registry), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    def answer(chat: ChatRequest, key: str, root, cancel: threading.Event, on_text=None):
        """The model call, on a worker thread, inside the request's root span."""
        with root:
            root.set_payload(
                input=next((m["content"] for m in reversed(chat.messages) if m["role"] == "user"), "")
            )
            if chat.model.startswith("workflow/"):
                # A workflow's answer comes whole, at its end (it may be replaced by an escalation).
                result = service.workflows.as_model(chat.model.removeprefix("workflow/"), chat.messages)
                if on_text is not None and result.text:
                    on_text(result.text)
            else:
                result = service.chat(chat.model, chat.messages, chat.params, on_text, cancel=cancel)
            budgets.add(key, result.cost_usd or 0.0)
            root.update(
                {"workbench.route": result.extra.get("route") or "", "gen_ai.response.model": result.model}
            )
            if result.extra.get("escalation_reason"):
                root.set("workbench.escalation_reason", result.extra["escalation_reason"])
            root.set_payload(answer=result.text)
        return result

    def record(chat: ChatRequest, result, started: float) -> None:
        metrics.requests.labels(chat.model, "ok").inc()
        metrics.tokens.labels(chat.model, "input").inc(result.input_tokens)
        metrics.tokens.labels(chat.model, "output").inc(result.output_tokens)
        metrics.cost.labels(chat.model).inc(result.cost_usd or 0.0)
        metrics.latency.labels(chat.model).observe(time.perf_counter() - started)
        if result.extra.get("route") == "cloud":
            metrics.escalations.labels(_reason_kind(result.extra.get("escalation_reason"))).inc()

    def failed(chat: ChatRequest | None, exc: Exception) -> None:
        metrics.errors.labels(type(exc).__name__).inc()
        if chat is not None:
            metrics.requests.labels(chat.model, "error").inc()

    async def chat_completions(request: Request) -> Response:
        chat = None
        try:
            key = keys.key_name(request)
            chat = read_chat(await _body(request), max_tokens_limit)
            await run_in_threadpool(budgets.check, key)
        except ApiError as exc:
            failed(chat, exc)
            return _error_response(exc)
        root = service.tracer.span(
            "gateway.chat",
            "server",
            {
                "workbench.key": key,
                "gen_ai.request.model": chat.model,
                "http.route": "/v1/chat/completions",
                "workbench.stream": chat.stream,
            },
            parent=None,
        )
        completion_id = f"chatcmpl-{root.trace_id[:24]}"
        headers = {"x-workbench-trace-id": root.trace_id}
        cancel = threading.Event()
        started = time.perf_counter()
        metrics.in_flight.inc()
        if not chat.stream:
            try:
                result = await run_in_threadpool(answer, chat, key, root, cancel)
            except WorkbenchError as exc:
                failed(chat, exc)
                status, kind, code = _status(exc)
                return JSONResponse(error_body(exc.one_line(), kind, code), status, headers=headers)
            finally:
                metrics.in_flight.dec()
            record(chat, result, started)
            if result.extra.get("escalation_reason"):
                headers["x-workbench-escalation-reason"] = _header(result.extra["escalation_reason"])
            return JSONResponse(completion(result, completion_id), headers=headers)
        return StreamingResponse(
            _stream(chat, key, root, cancel, completion_id, started),
            media_type="text/event-stream",
            headers=headers,
        )

    async def _stream(chat, key, root, cancel, completion_id, started):
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        created = int(time.time())

        def on_text(piece: str) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, ("text", piece))

        def run() -> None:
            try:
                outcome = ("done", answer(chat, key, root, cancel, on_text))
            except Exception as exc:  # noqa: BLE001 - any failure becomes the stream's error event
                outcome = ("error", exc)
            loop.call_soon_threadsafe(queue.put_nowait, outcome)

        thread = threading.Thread(target=contextvars.copy_context().run, args=(run,), daemon=True)
        thread.start()
        try:
            yield _sse(chunk(completion_id, created, chat.model, {"role": "assistant", "content": ""}))
            while True:
                kind, value = await queue.get()
                if kind == "text":
                    yield _sse(chunk(completion_id, created, chat.model, {"content": value}))
                elif kind == "done":
                    record(chat, value, started)
                    for last in final_chunks(value, completion_id, created, chat.include_usage):
                        yield _sse(last)
                    break
                else:
                    failed(chat, value)
                    message = (
                        value.one_line()
                        if isinstance(value, WorkbenchError)
                        else f"{type(value).__name__}: {value}"
                    )
                    yield _sse(error_body(message, "api_error"))
                    break
            yield "data: [DONE]\n\n"
        finally:
            # Reached also when the client goes away mid-answer: the decode stops there.
            cancel.set()
            metrics.in_flight.dec()

    async def embeddings(request: Request) -> Response:
        try:
            key = keys.key_name(request)
            model, texts, encoding = read_embeddings(await _body(request))
        except ApiError as exc:
            failed(None, exc)
            return _error_response(exc)

        def embed():
            with service.tracer.span(
                "gateway.embeddings",
                "server",
                {
                    "workbench.key": key,
                    "gen_ai.operation.name": "embeddings",
                    "gen_ai.request.model": model,
                    "http.route": "/v1/embeddings",
                    "workbench.inputs": len(texts),
                },
                parent=None,
            ) as span:
                alias, vectors, tokens = service.embed(model, texts)
                span.update({"gen_ai.usage.input_tokens": tokens, "gen_ai.request.model": alias})
                return alias, vectors, tokens, span.trace_id

        metrics.in_flight.inc()
        try:
            alias, vectors, tokens, trace_id = await run_in_threadpool(embed)
        except WorkbenchError as exc:
            failed(None, exc)
            status, kind, code = _status(exc)
            return JSONResponse(error_body(exc.one_line(), kind, code), status)
        finally:
            metrics.in_flight.dec()
        metrics.tokens.labels(alias, "input").inc(tokens)
        return JSONResponse(
            embeddings_body(alias, vectors, tokens, encoding), headers={"x-workbench-trace-id": trace_id}
        )

    async def search(request: Request) -> Response:
        """The workbench's own search (not an OpenAI route): what `workbench search` asks a
        running gateway, whose embedding model and reranker are loaded already."""
        try:
            key = keys.key_name(request)
            body = await _body(request)
            if not isinstance(body, dict) or not isinstance(body.get("query"), str):
                raise ApiError(400, "give a JSON object with collection and query", param="query")
            args = {
                k: body.get(k)
                for k in (
                    "collection",
                    "query",
                    "mode",
                    "k",
                    "min_score",
                    "path_glob",
                    "file_type",
                    "version",
                    "rerank",
                )
            }
        except ApiError as exc:
            return _error_response(exc)
        args = {k: v for k, v in args.items() if v is not None}

        def searched():
            root = {"workbench.key": key, "http.route": "/workbench/search"}
            with service.tracer.span("gateway.search", "server", root, parent=None):
                return service.search(**args)

        try:
            hits = await run_in_threadpool(searched)
        except WorkbenchError as exc:
            return JSONResponse(
                error_body(exc.message, "invalid_request_error", type(exc).__name__) | {"hint": exc.hint}, 400
            )
        except TypeError as exc:
            return _error_response(ApiError(400, f"bad search arguments: {exc}"))
        return JSONResponse(
            {"hits": hits}, headers={"x-workbench-trace-id": hits[0]["trace_id"] if hits else ""}
        )

    async def not_found(request: Request, exc: Exception) -> Response:
        return JSONResponse(
            error_body(f"no route {request.url.path}", "invalid_request_error", "not_found"), 404
        )

    return Starlette(
        routes=[
            Route("/health", health),
            Route("/metrics", prometheus),
            Route("/v1/models", models),
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/embeddings", embeddings, methods=["POST"]),
            Route("/workbench/search", search, methods=["POST"]),
            *command_routes(service, keys.key_name, _body, metrics.commands),
        ],
        exception_handlers={404: not_found},
    )


async def _body(request: Request) -> Any:
    """The request's JSON body, within the size limit."""
    raw = await request.body()
    if len(raw) > MAX_REQUEST_BYTES:
        raise ApiError(413, f"the request is over {MAX_REQUEST_BYTES:,} bytes", code="request_too_large")
    try:
        return json.loads(raw)
    except ValueError:
        raise ApiError(400, "the body is not JSON") from None


def _sse(data: dict[str, Any]) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


def _header(text: str) -> str:
    """A header value: one line of printable ASCII."""
    return "".join(c if 32 <= ord(c) < 127 else "?" for c in text)[:500]


def _reason_kind(reason: str | None) -> str:
    """Escalation reasons carry numbers (token counts, scores): the label keeps their kind."""
    return re.sub(r"-?[0-9]+([.][0-9]+)?", "N", reason or "unknown")[:120]
