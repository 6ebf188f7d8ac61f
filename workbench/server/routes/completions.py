"""POST /v1/completions: raw prompts continued by a local model without its chat template, with
`echo` and `logprobs` (and `max_tokens: 0`, which only scores the prompt: what evaluation
harnesses ask for log-likelihoods)."""

from __future__ import annotations

import threading
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from workbench.server.gateway import Ask, gateway_of
from workbench.server.middleware import read_json
from workbench.server.protocol import parse
from workbench.server.protocol.chat import CompletionRequest
from workbench.server.routes.chat import failure, finish_of, usage_of, workbench_extra
from workbench.server.streaming import Bridge, sse

__all__ = ["completions"]


async def completions(request: Request) -> Response:
    gw, key = gateway_of(request), request.state.key
    body = parse(CompletionRequest, await read_json(request))
    params, prompts = body.params(gw.max_tokens), body.prompts()
    asks = [Ask(body.model, params, prompt=p, n=body.choices) for p in prompts]
    await gw.check_budget(key)
    root = gw.root_span("gateway.completion", key, "/v1/completions", {"gen_ai.request.model": body.model})
    completion_id, created = f"cmpl-{root.trace_id[:24]}", int(time.time())
    headers = {"x-workbench-trace-id": root.trace_id}
    cancel, started = threading.Event(), time.perf_counter()

    def work(emit):
        # Each prompt's choices are numbered after the previous prompt's (OpenAI's indices).
        results = []
        for number, ask in enumerate(asks):
            offset = number * ask.n
            forward = (lambda event, o=offset: emit((o + event[0], event[1]))) if body.stream else None
            span = root if number == 0 else _child(gw, root)
            results += gw.generate(ask, key, span, cancel, forward)
        return results

    bridge = Bridge(work, cancel)
    first = await bridge.begin(request, bool(body.stream))
    refused = gw.refusal(body.model, first, headers)
    if refused is not None:
        return refused
    if not body.stream:
        results = first[1]
        gw.record(body.model, results, started)
        texts = [p if isinstance(p, str) else "" for p in prompts for _ in range(body.choices)]
        choices = [_choice(i, r, texts[i] if body.echo else "") for i, r in enumerate(results)]
        usage = usage_of(results)
        usage["prompt_tokens"] = sum(r.input_tokens for r in results[:: body.choices])
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        return JSONResponse(
            {
                "id": completion_id,
                "object": "text_completion",
                "created": created,
                "model": body.model,
                "choices": choices,
                "usage": usage,
                "workbench": workbench_extra(results[0]),
            },
            headers=headers,
        )
    return StreamingResponse(
        _stream(gw, body, bridge, first, completion_id, created, started),
        media_type="text/event-stream",
        headers=headers,
    )


def _child(gw, root):
    """The spans of a second prompt go under the request's root span, like the first's."""
    return gw.service.tracer.span("gateway.completion.prompt", "server", {}, parent=root)


async def _stream(gw, body: CompletionRequest, bridge: Bridge, first, completion_id, created, started):
    def chunk(index: int, text: str, finish: str | None = None) -> str:
        choice = {"index": index, "text": text, "logprobs": None, "finish_reason": finish}
        return sse(
            {
                "id": completion_id,
                "object": "text_completion",
                "created": created,
                "model": body.model,
                "choices": [choice],
            }
        )

    try:
        async for kind, value in bridge.items(first):
            if kind == "event":
                yield chunk(*value)
            elif kind == "done":
                gw.record(body.model, value, started)
                for index, result in enumerate(value):
                    yield chunk(index, "", finish_of(result))
            else:
                yield failure(gw, body.model, value)
        yield "data: [DONE]\n\n"
    finally:
        bridge.cancel.set()


def _choice(index: int, result, echoed: str) -> dict[str, Any]:
    return {
        "index": index,
        "text": echoed + result.text,
        "logprobs": _legacy_logprobs(result),
        "finish_reason": finish_of(result),
    }


def _legacy_logprobs(result) -> dict[str, Any] | None:
    """OpenAI's completions logprobs: parallel lists, top alternatives as {token: logprob}."""
    if result.token_logprobs is None and result.prompt_logprobs is None:
        return None
    entries = (result.prompt_logprobs or []) + (result.token_logprobs or [])
    offsets, offset = [], 0
    for entry in entries:
        offsets.append(offset)
        offset += len(entry["token"])
    return {
        "tokens": [e["token"] for e in entries],
        "token_logprobs": [e["logprob"] for e in entries],
        "top_logprobs": [
            None if e["logprob"] is None else {t["token"]: t["logprob"] for t in e.get("top_logprobs", [])}
            for e in entries
        ],
        "text_offset": offsets,
    }
