"""POST /v1/embeddings: the workspace's sentence-transformers models, one trace a request."""

from __future__ import annotations

import base64
import threading
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from workbench.server.gateway import gateway_of
from workbench.server.middleware import read_json
from workbench.server.protocol import parse
from workbench.server.protocol.embeddings import EmbeddingRequest
from workbench.server.protocol.replies import Embedding, EmbeddingList, wire
from workbench.server.streaming import Bridge

__all__ = ["embeddings"]


async def embeddings(request: Request) -> Response:
    gw, key = gateway_of(request), request.state.key
    body = parse(EmbeddingRequest, await read_json(request))
    texts = body.texts()
    cancel = threading.Event()

    def embed(emit):
        attributes = {
            "gen_ai.operation.name": "embeddings",
            "gen_ai.request.model": body.model,
            "workbench.inputs": len(texts),
        }
        with gw.root_span("gateway.embeddings", key, "/v1/embeddings", attributes) as span:
            alias, vectors, tokens = gw.service.embed(
                body.model, texts, bool(body.truncate), body.dimensions, cancel
            )
            span.update({"gen_ai.usage.input_tokens": tokens, "gen_ai.request.model": alias})
            return alias, vectors, tokens, span.trace_id

    gw.metrics.in_flight.inc()
    try:
        # the work runs beside a watch on the connection: a client that leaves stops it
        outcome = await Bridge(embed, cancel).first(request)
    finally:
        gw.metrics.in_flight.dec()
    if outcome is None:
        return Response(status_code=499)  # the client left: nobody reads this
    if outcome[0] == "error":
        raise outcome[1]
    alias, vectors, tokens, trace_id = outcome[1]
    gw.metrics.tokens.labels(alias, "input").inc(tokens)
    return JSONResponse(
        _body(alias, vectors, tokens, body.encoding_format or "float"),
        headers={"x-workbench-trace-id": trace_id},
    )


def _body(model: str, vectors, tokens: int, encoding: str) -> dict[str, Any]:
    """The embeddings reply; base64 is the float32 little-endian bytes (the OpenAI SDK asks for it)."""
    import numpy as np

    def encoded(vector) -> list[float] | str:
        if encoding == "base64":
            return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()
        return [float(x) for x in vector]

    reply = EmbeddingList(
        data=[Embedding(index=i, embedding=encoded(v)) for i, v in enumerate(vectors)],
        model=model,
        usage={"prompt_tokens": tokens, "total_tokens": tokens},
    )
    return wire(reply)
