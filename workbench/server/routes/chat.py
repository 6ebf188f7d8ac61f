"""POST /v1/chat/completions: one trace per request (`gateway.chat`), n choices decoded together,
streamed or whole, with per-token logprobs from local models."""

from __future__ import annotations

import threading
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from workbench.server.errors import from_exception
from workbench.server.gateway import Ask, gateway_of
from workbench.server.middleware import read_json
from workbench.server.protocol import parse
from workbench.server.protocol.chat import ChatCompletionRequest
from workbench.server.protocol.workbench import Answer
from workbench.server.streaming import Bridge, sse

__all__ = ["chat_completions", "failure", "usage_of", "workbench_extra", "finish_of", "header_text"]


async def chat_completions(request: Request) -> Response:
    gw, key = gateway_of(request), request.state.key
    chat = parse(ChatCompletionRequest, await read_json(request))
    ask = Ask(chat.model, chat.params(gw.max_tokens), chat.plain_messages(), n=chat.choices)
    await gw.check_budget(key)
    attributes = {"gen_ai.request.model": chat.model, "workbench.stream": bool(chat.stream)}
    root = gw.root_span("gateway.chat", key, "/v1/chat/completions", attributes)
    completion_id, created = f"chatcmpl-{root.trace_id[:24]}", int(time.time())
    headers = {"x-workbench-trace-id": root.trace_id}
    cancel, started = threading.Event(), time.perf_counter()
    gw.metrics.in_flight.inc()
    bridge = Bridge(lambda emit: gw.generate(ask, key, root, cancel, emit if chat.stream else None), cancel)
    try:
        first = await bridge.begin(request, bool(chat.stream))
    except BaseException:
        gw.metrics.in_flight.dec()
        raise
    refused = gw.refusal(chat.model, first, headers)
    if refused is not None:
        gw.metrics.in_flight.dec()
        return refused
    if not chat.stream:
        gw.metrics.in_flight.dec()
        results = first[1]
        gw.record(chat.model, results, started)
        reason = results[0].extra.get("escalation_reason")
        if reason:
            headers["x-workbench-escalation-reason"] = header_text(reason)
        return JSONResponse(_completion(results, completion_id, created), headers=headers)
    return StreamingResponse(
        _stream(gw, chat, bridge, first, completion_id, created, started),
        media_type="text/event-stream",
        headers=headers,
    )


async def _stream(gw, chat: ChatCompletionRequest, bridge: Bridge, first, completion_id, created, started):
    def chunk(delta: dict[str, Any], index: int = 0, finish: str | None = None) -> str:
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
        return sse(_chunk(completion_id, created, chat.model, [choice]))

    try:
        for index in range(chat.choices):
            yield chunk({"role": "assistant", "content": ""}, index)
        async for kind, value in bridge.items(first):
            if kind == "event":
                index, piece = value
                yield chunk({"content": piece}, index)
            elif kind == "done":
                gw.record(chat.model, value, started)
                for index, result in enumerate(value):
                    yield chunk({}, index, finish_of(result))
                if chat.include_usage:
                    last = _chunk(completion_id, created, chat.model, [])
                    last["usage"] = usage_of(value)
                    last["workbench"] = workbench_extra(value[0])
                    yield sse(last)
            else:
                yield failure(gw, chat.model, value)
        yield "data: [DONE]\n\n"
    finally:
        # Reached also when the client goes away mid-answer: the decode stops there.
        bridge.cancel.set()
        gw.metrics.in_flight.dec()


def _chunk(completion_id: str, created: int, model: str, choices: list) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": None,
        "choices": choices,
    }


def _completion(results: list, completion_id: str, created: int) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": results[0].model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": index,
                "message": {"role": "assistant", "content": result.text, "refusal": None},
                "logprobs": None if result.token_logprobs is None else {"content": result.token_logprobs},
                "finish_reason": finish_of(result),
            }
            for index, result in enumerate(results)
        ],
        "usage": usage_of(results),
        "workbench": workbench_extra(results[0]),
    }


def failure(gw, model: str, exc: BaseException) -> str:
    """The event that ends a stream which failed after its first token."""
    gw.failed(model, exc)
    return sse(from_exception(exc).body())


def usage_of(results: list) -> dict[str, Any]:
    """The prompt is read once for all choices; their answers add up."""
    prompt = results[0].input_tokens
    completion = sum(r.output_tokens for r in results)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0},
    }


def finish_of(result) -> str:
    return {"length": "length", "stop": "stop", "cancelled": "stop"}.get(
        result.finish_reason or "stop", "stop"
    )


def workbench_extra(result) -> dict[str, Any]:
    """What the workbench knows of the answer beyond OpenAI's fields (the CLI prints it): an
    Answer without its text, which the response carries already."""
    return Answer.of(result).model_dump(exclude={"text"})


def header_text(text: str) -> str:
    """A header value: one line of printable ASCII."""
    return "".join(c if 32 <= ord(c) < 127 else "?" for c in text)[:500]
