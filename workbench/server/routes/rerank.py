"""POST /v1/rerank: a registered CrossEncoder scores documents against a query (the Jina and
Cohere shape llama.cpp's server answers), one trace a request."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from workbench.server.gateway import gateway_of
from workbench.server.middleware import read_json
from workbench.server.protocol import parse
from workbench.server.protocol.embeddings import RerankRequest
from workbench.server.protocol.replies import RerankList, RerankResult, wire

__all__ = ["rerank"]


async def rerank(request: Request) -> Response:
    gw, key = gateway_of(request), request.state.key
    body = parse(RerankRequest, await read_json(request))
    texts = body.texts()

    def scored():
        attributes = {"gen_ai.request.model": body.model, "workbench.inputs": len(texts)}
        with gw.root_span("gateway.rerank", key, "/v1/rerank", attributes) as span:
            alias, scores, tokens = gw.service.rerank(body.model, body.query, texts)
            span.update({"gen_ai.usage.input_tokens": tokens, "gen_ai.request.model": alias})
            return alias, scores, tokens, span.trace_id

    alias, scores, tokens, trace_id = await run_in_threadpool(scored)
    order = sorted(range(len(texts)), key=lambda i: scores[i], reverse=True)[: body.top_n]
    reply = RerankList(
        model=alias,
        results=[
            RerankResult(
                index=i,
                relevance_score=scores[i],
                document={"text": texts[i]} if body.return_documents else None,
            )
            for i in order
        ],
        usage={"prompt_tokens": tokens, "total_tokens": tokens},
    )
    return JSONResponse(wire(reply), headers={"x-workbench-trace-id": trace_id})
