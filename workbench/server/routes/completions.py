"""POST /v1/completions: raw prompts continued by a local model without its chat template, with
`echo` and `logprobs` (and `max_tokens: 0`, which only scores the prompt: what evaluation
harnesses ask for log-likelihoods)."""

from __future__ import annotations

import threading
import time

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from workbench.server.gateway import Ask, gateway_of
from workbench.server.middleware import read_json
from workbench.server.protocol import parse
from workbench.server.protocol.chat import CompletionRequest
from workbench.server.protocol.replies import LegacyLogprobs, TextChoice, TextCompletion, Usage, wire
from workbench.server.protocol.workbench import Answer
from workbench.server.routes.chat import failure, finish_of
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
        reply = TextCompletion(
            id=completion_id,
            created=created,
            model=body.model,
            choices=[
                TextChoice(
                    index=i,
                    text=(texts[i] if body.echo else "") + r.text,
                    logprobs=LegacyLogprobs.of(r),
                    finish_reason=finish_of(r),
                )
                for i, r in enumerate(results)
            ],
            usage=Usage.of(results, prompts=len(prompts)),
            workbench=Answer.of(results[0]),
        )
        return JSONResponse(wire(reply), headers=headers)
    return StreamingResponse(
        _stream(gw, body, bridge, first, completion_id, created, started),
        media_type="text/event-stream",
        headers=headers,
    )


def _child(gw, root):
    """The spans of a second prompt go under the request's root span, like the first's."""
    return gw.service.tracer.span("gateway.completion.prompt", "server", {}, parent=root)


async def _stream(gw, body: CompletionRequest, bridge: Bridge, first, completion_id, created, started):
    def chunk(index: int, text: str, finish=None) -> str:
        choice = TextChoice(index=index, text=text, finish_reason=finish)
        return sse(
            wire(TextCompletion(id=completion_id, created=created, model=body.model, choices=[choice]))
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
