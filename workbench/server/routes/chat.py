"""POST /v1/chat/completions: one trace per request (`gateway.chat`), n choices decoded together,
streamed or whole, with per-token logprobs from local models."""

from __future__ import annotations

import threading
import time
from typing import Any, Literal

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from workbench.server.errors import from_exception
from workbench.server.gateway import Ask, gateway_of
from workbench.server.middleware import read_json
from workbench.server.protocol import parse
from workbench.server.protocol.chat import ChatCompletionRequest
from workbench.server.protocol.replies import (
    AssistantMessage,
    ChatChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChoiceLogprobs,
    ChunkChoice,
    Usage,
    wire,
)
from workbench.server.protocol.workbench import Answer
from workbench.server.streaming import Bridge, sse

__all__ = ["chat_completions", "failure", "finish_of", "header_text"]


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
        return JSONResponse(wire(_completion(results, completion_id, created)), headers=headers)
    return StreamingResponse(
        _stream(gw, chat, bridge, first, completion_id, created, started),
        media_type="text/event-stream",
        headers=headers,
    )


async def _stream(gw, chat: ChatCompletionRequest, bridge: Bridge, first, completion_id, created, started):
    def chunk(choices: list[ChunkChoice], **extra) -> str:
        reply = ChatCompletionChunk(
            id=completion_id, created=created, model=chat.model, choices=choices, **extra
        )
        return sse(wire(reply))

    try:
        for index in range(chat.choices):
            yield chunk([ChunkChoice(index=index, delta={"role": "assistant", "content": ""})])
        async for kind, value in bridge.items(first):
            if kind == "event":
                index, piece = value
                yield chunk([ChunkChoice(index=index, delta={"content": piece})])
            elif kind == "done":
                gw.record(chat.model, value, started)
                for index, result in enumerate(value):
                    for delta in tool_call_deltas(result.tool_calls or []):
                        yield chunk([ChunkChoice(index=index, delta=delta)])
                    yield chunk([ChunkChoice(index=index, delta={}, finish_reason=finish_of(result))])
                if chat.include_usage:
                    yield chunk([], usage=Usage.of(value), workbench=Answer.of(value[0]))
            else:
                yield failure(gw, chat.model, value)
        yield "data: [DONE]\n\n"
    finally:
        # Reached also when the client goes away mid-answer: the decode stops there.
        bridge.cancel.set()
        gw.metrics.in_flight.dec()


def _completion(results: list, completion_id: str, created: int) -> ChatCompletion:
    return ChatCompletion(
        id=completion_id,
        created=created,
        model=results[0].model,
        choices=[
            ChatChoice(
                index=index,
                message=AssistantMessage(
                    content=None if result.tool_calls else result.text, tool_calls=result.tool_calls
                ),
                logprobs=None
                if result.token_logprobs is None
                else ChoiceLogprobs(content=result.token_logprobs),
                finish_reason=finish_of(result),
            )
            for index, result in enumerate(results)
        ],
        usage=Usage.of(results),
        workbench=Answer.of(results[0]),
    )


def failure(gw, model: str, exc: BaseException) -> str:
    """The event that ends a stream which failed after its first token."""
    gw.failed(model, exc)
    return sse(from_exception(exc).body())


def finish_of(result) -> Literal["stop", "length", "tool_calls"]:
    return {"length": "length", "stop": "stop", "cancelled": "stop", "tool_calls": "tool_calls"}.get(
        result.finish_reason or "stop", "stop"
    )


def tool_call_deltas(calls: list[dict[str, Any]], piece: int = 16) -> list[dict[str, Any]]:
    """Tool calls as the OpenAI API streams them: per call, a delta with its index, id, type and
    name (arguments empty), then its arguments in fragments; clients join the fragments by index."""
    deltas: list[dict[str, Any]] = []
    for index, call in enumerate(calls):
        function = call["function"]
        head = {"index": index, "id": call["id"], "type": "function"}
        deltas.append({"tool_calls": [{**head, "function": {"name": function["name"], "arguments": ""}}]})
        arguments = function["arguments"]
        for start in range(0, len(arguments), piece):
            fragment = arguments[start : start + piece]
            deltas.append({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]})
    return deltas


def header_text(text: str) -> str:
    """A header value: one line of printable ASCII."""
    return "".join(c if 32 <= ord(c) < 127 else "?" for c in text)[:500]
