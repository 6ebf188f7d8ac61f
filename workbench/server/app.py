"""The gateway: an OpenAI-compatible HTTP API over the workspace's service (Starlette, run by
uvicorn). One module per endpoint (workbench/server/routes/), requests validated against the
protocol models (protocol/), keys and rates checked by middleware before any handler runs,
and every error answered in OpenAI's shape with the status its exception carries.

Every request that generates is one trace (`gateway.chat`, `gateway.completion`,
`gateway.response`), tagged with the client key's name, with the model calls under it. Model
calls run in worker threads (llama.cpp and the cloud clients block); a client that disconnects
sets the call's cancel event, which stops the decode.
"""

from __future__ import annotations

import logging

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from workbench.core import secrets
from workbench.core.errors import WorkbenchError
from workbench.server.errors import ApiError, error_body, error_response, from_exception
from workbench.server.gateway import Gateway
from workbench.server.limits import Budgets, Keys
from workbench.server.metrics import Metrics
from workbench.server.middleware import PUBLIC_ROUTES, KeyGuard
from workbench.server.routes.chat import chat_completions
from workbench.server.routes.completions import completions
from workbench.server.routes.embeddings import embeddings
from workbench.server.routes.models import health, list_models, prometheus, retrieve_model
from workbench.server.routes.rerank import rerank
from workbench.server.routes.responses import create_response, delete_response, get_response
from workbench.server.routes.workbench import workbench_routes

__all__ = ["create_app"]


def create_app(
    service,
    tokens: dict[str, str] | None = None,
    per_minute: int | None = None,
    max_tokens_limit: int = 4096,
    daily_budgets: dict[str, float] | None = None,
    loopback_only: bool = False,
    public_metrics: bool = False,
    cors_origins: list[str] | None = None,
    body_timeout_s: float = 30.0,
) -> Starlette:
    """The gateway for ``service``'s workspace. ``tokens`` maps each accepted bearer token to
    its key's name; without tokens every request is the key "local". ``daily_budgets``: USD a
    key may spend per day. A model named `workflow/NAME` runs that workflow. ``loopback_only``
    (a keyless gateway): requests addressed to another host, or from a web page, are refused.
    ``public_metrics``: /metrics answers without a key. ``cors_origins``: the web pages allowed
    to call it from a browser (CORS), none by default."""
    keys = Keys(tokens or {}, per_minute)
    origins = list(cors_origins or [])
    public = PUBLIC_ROUTES | ({"/metrics"} if public_metrics else set())
    secrets.register(tokens or {})  # the gateway's own keys are never echoed, logged or stored
    for name in ("workbench.server", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, secrets.ScrubLogs) for f in logger.filters):
            logger.addFilter(secrets.ScrubLogs())
    app = Starlette(
        routes=[
            Route("/health", health),
            Route("/metrics", prometheus),
            Route("/v1/models", list_models),
            Route("/v1/models/{id:path}", retrieve_model),
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/completions", completions, methods=["POST"]),
            Route("/v1/responses", create_response, methods=["POST"]),
            Route("/v1/responses/{id}", get_response, methods=["GET"]),
            Route("/v1/responses/{id}", delete_response, methods=["DELETE"]),
            Route("/v1/embeddings", embeddings, methods=["POST"]),
            Route("/v1/rerank", rerank, methods=["POST"]),
            *workbench_routes(),
        ],
        middleware=[
            # outermost: a configured page's preflight is answered before any key is asked for
            *(
                [
                    Middleware(
                        CORSMiddleware,
                        allow_origins=origins,
                        allow_methods=["GET", "POST", "DELETE"],
                        allow_headers=["authorization", "content-type"],
                    )
                ]
                if origins
                else []
            ),
            Middleware(
                KeyGuard, keys=keys, public=public, loopback_only=loopback_only, origins=frozenset(origins)
            ),
        ],
        # ApiError and our errors are answered here; anything else reaches Starlette's
        # ServerErrorMiddleware through `Exception` (a 500, its traceback in the log: a bug).
        exception_handlers={
            404: _no_route,
            405: _wrong_method,
            ApiError: _failed,
            WorkbenchError: _failed,
            Exception: _failed,
        },
    )
    app.state.gateway = Gateway(service, Metrics(), Budgets(service, daily_budgets or {}), max_tokens_limit)
    app.state.keyed = bool(tokens)
    app.state.body_timeout_s = body_timeout_s
    return app


async def _failed(request: Request, exc: Exception) -> Response:
    """Any exception a handler raised, as OpenAI's error (an ApiError or one of ours with its
    status; anything else a 500 whose traceback goes to the log only)."""
    api = from_exception(exc)
    request.app.state.gateway.failed(None, exc)
    return error_response(api)


async def _no_route(request: Request, exc: Exception) -> Response:
    return JSONResponse(error_body(f"no route {request.url.path}", "invalid_request_error", "not_found"), 404)


async def _wrong_method(request: Request, exc: Exception) -> Response:
    return error_response(ApiError(405, f"{request.method} is not a method of {request.url.path}"))
