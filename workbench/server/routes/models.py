"""GET /v1/models and /v1/models/{id}: local GGUF aliases, cloud models, `auto`, the valid
workflows (as `workflow/NAME`) and the embedding models; /health and /metrics."""

from __future__ import annotations

import time

from prometheus_client import generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from workbench.core.errors import ModelNotFound
from workbench.server.gateway import gateway_of
from workbench.server.protocol.replies import ModelCard, ModelList, wire

__all__ = ["list_models", "retrieve_model", "health", "prometheus"]


def _names(service) -> list[str]:
    workflows = [f"workflow/{w['name']}" for w in service.workflows.list() if w["valid"]]
    return service.model_choices() + workflows + service.embedding_models() + service.reranker_models()


async def list_models(request: Request) -> Response:
    names = await run_in_threadpool(_names, gateway_of(request).service)
    created = int(time.time())
    return JSONResponse(wire(ModelList(data=[ModelCard(id=n, created=created) for n in names])))


async def retrieve_model(request: Request) -> Response:
    name = request.path_params["id"]
    if name not in await run_in_threadpool(_names, gateway_of(request).service):
        raise ModelNotFound(f"no model named '{name}'", "see GET /v1/models")
    return JSONResponse(wire(ModelCard(id=name, created=int(time.time()))))


async def health(request: Request) -> Response:
    gw = gateway_of(request)
    if request.app.state.keyed:  # public: say only that it answers
        return JSONResponse({"status": "ok"})
    return JSONResponse({"status": "ok", "workspace": str(gw.service.workspace.root)})


async def prometheus(request: Request) -> Response:
    return Response(
        generate_latest(gateway_of(request).metrics.registry),
        media_type="text/plain; version=0.0.4; charset=utf-8",
    )
