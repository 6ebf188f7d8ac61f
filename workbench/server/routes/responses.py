"""The Responses API: POST /v1/responses (whole or streamed with the event sequence the SDKs
parse), GET and DELETE /v1/responses/{id}. `store` (the default, as OpenAI's) keeps the response
and its conversation in the workspace; `previous_response_id` goes on from one. The answer is
one chat under a `gateway.response` trace."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from workbench.server.errors import from_exception
from workbench.server.gateway import Ask, gateway_of
from workbench.server.middleware import read_json
from workbench.server.protocol import parse
from workbench.server.protocol.responses import (
    FunctionCallItem,
    OutputMessage,
    OutputText,
    ResponseObject,
    ResponsesRequest,
    ResponseUsage,
)
from workbench.server.streaming import Bridge, sse

__all__ = ["create_response", "get_response", "delete_response"]


async def create_response(request: Request) -> Response:
    gw, key = gateway_of(request), request.state.key
    body = parse(ResponsesRequest, await read_json(request))
    params, turn = body.params(gw.max_tokens), body.items()
    history = []
    if body.previous_response_id:
        history = await run_in_threadpool(gw.service.responses.conversation, body.previous_response_id)
    system = [{"role": "system", "content": body.instructions}] if body.instructions else []
    ask = Ask(body.model, params, system + history + turn)
    await gw.check_budget(key)
    root = gw.root_span(
        "gateway.response",
        key,
        "/v1/responses",
        {"gen_ai.request.model": body.model, "workbench.stream": bool(body.stream)},
    )
    shell = _shell(body, f"resp_{uuid.uuid4().hex}", params)
    message_id = f"msg_{uuid.uuid4().hex}"
    headers = {"x-workbench-trace-id": root.trace_id}
    cancel, started = threading.Event(), time.perf_counter()
    bridge = Bridge(lambda emit: gw.generate(ask, key, root, cancel, emit if body.stream else None), cancel)
    first = await bridge.begin(request, bool(body.stream))
    refused = gw.refusal(body.model, first, headers)
    if refused is not None:
        return refused

    def finish(result) -> dict[str, Any]:
        gw.record(body.model, [result], started)
        done = _finished(shell, result, root.trace_id, message_id).body()
        if body.store is not False:
            answer: dict[str, Any] = {"role": "assistant", "content": result.text}
            if result.tool_calls:
                answer = {"role": "assistant", "content": None, "tool_calls": result.tool_calls}
            gw.service.responses.save(done, history + turn + [answer])
        return done

    if not body.stream:
        return JSONResponse(await run_in_threadpool(finish, first[1][0]), headers=headers)
    return StreamingResponse(
        _events(gw, body, bridge, first, shell, message_id, finish),
        media_type="text/event-stream",
        headers=headers,
    )


async def _events(
    gw, body: ResponsesRequest, bridge: Bridge, first, shell: ResponseObject, message_id, finish
):
    """The SSE events of a streamed response, in the order OpenAI sends them."""
    sequence = 0
    place = {"item_id": message_id, "output_index": 0, "content_index": 0}

    def event(kind: str, **fields: Any) -> str:
        nonlocal sequence
        data = {"type": kind, "sequence_number": sequence, **fields}
        sequence += 1
        return sse(data, kind)

    item = OutputMessage(id=message_id, status="in_progress", content=[]).model_dump()
    text: list[str] = []
    # With tools the answer is known whole at its end (a call, or text): its item opens then.
    deferred = bool(body.tools) and body.tool_choice != "none"

    def opening() -> list[str]:
        return [
            event("response.output_item.added", output_index=0, item=item),
            event("response.content_part.added", **place, part=OutputText(text="").model_dump()),
        ]

    try:
        yield event("response.created", response=shell.body())
        yield event("response.in_progress", response=shell.body())
        if not deferred:
            for line in opening():
                yield line
        async for kind, value in bridge.items(first):
            if kind == "event":
                if deferred and not text:
                    for line in opening():
                        yield line
                text.append(value[1])
                yield event("response.output_text.delta", **place, delta=value[1], logprobs=[])
            elif kind == "done":
                done = await run_in_threadpool(finish, value[0])
                last = "response.completed" if done["status"] == "completed" else "response.incomplete"
                if value[0].tool_calls:
                    for index, call in enumerate(done["output"]):
                        for line in _call_events(event, index, call):
                            yield line
                    yield event(last, response=done)
                    continue
                if deferred and not text:
                    for line in opening():
                        yield line
                whole = "".join(text)
                yield event("response.output_text.done", **place, text=whole, logprobs=[])
                yield event("response.content_part.done", **place, part=OutputText(text=whole).model_dump())
                yield event("response.output_item.done", output_index=0, item=done["output"][0])
                yield event(last, response=done)
            else:
                gw.failed(body.model, value)
                error = from_exception(value)
                yield event("error", code=error.code, message=error.message, param=error.param)
    finally:
        bridge.cancel.set()


def _call_events(event, index: int, call: dict[str, Any], piece: int = 16) -> list[str]:
    """A function call as the Responses API streams it: its item added with empty arguments,
    the arguments in fragments, their whole, the item done."""
    place = {"item_id": call["id"], "output_index": index}
    arguments = call["arguments"]
    lines = [
        event(
            "response.output_item.added",
            output_index=index,
            item={**call, "arguments": "", "status": "in_progress"},
        )
    ]
    for start in range(0, len(arguments), piece):
        lines.append(
            event("response.function_call_arguments.delta", **place, delta=arguments[start : start + piece])
        )
    lines.append(event("response.function_call_arguments.done", **place, arguments=arguments))
    lines.append(event("response.output_item.done", output_index=index, item=call))
    return lines


def _shell(body: ResponsesRequest, response_id: str, params: dict[str, Any]) -> ResponseObject:
    """The response object before its answer (what response.created carries)."""
    form = body.text.format if body.text and body.text.format else None
    return ResponseObject(
        id=response_id,
        created_at=int(time.time()),
        status="in_progress",
        instructions=body.instructions,
        max_output_tokens=body.max_output_tokens,
        model=body.model,
        previous_response_id=body.previous_response_id,
        store=body.store is not False,
        temperature=params["temperature"],
        text={"format": form.model_dump(by_alias=True, exclude_none=True) if form else {"type": "text"}},
        top_p=params["top_p"],
        metadata=body.metadata or {},
        tools=[tool.model_dump(exclude_none=True) for tool in body.tools or []],
        tool_choice=body.tool_choice or "auto",
        parallel_tool_calls=body.parallel_tool_calls is not False,
    )


def _finished(shell: ResponseObject, result, trace_id: str, message_id: str) -> ResponseObject:
    complete = result.finish_reason != "length"
    status = "completed" if complete else "incomplete"
    output: list[OutputMessage | FunctionCallItem] = [
        OutputMessage(id=message_id, status=status, content=[OutputText(text=result.text)])
    ]
    if result.tool_calls:
        output = [
            FunctionCallItem(
                id=f"fc_{uuid.uuid4().hex}",
                call_id=call["id"],
                name=call["function"]["name"],
                arguments=call["function"]["arguments"],
            )
            for call in result.tool_calls
        ]
    usage = ResponseUsage(
        input_tokens=result.input_tokens,
        input_tokens_details={"cached_tokens": result.cached_tokens},
        output_tokens=result.output_tokens,
        total_tokens=result.input_tokens + result.output_tokens,
    )
    return shell.model_copy(
        update={
            "status": status,
            "incomplete_details": None if complete else {"reason": "max_output_tokens"},
            "model": result.model,
            "output": output,
            "usage": usage,
            "workbench": {"trace_id": trace_id, "cost_usd": result.cost_usd, "hardware": result.hardware},
        }
    )


async def get_response(request: Request) -> Response:
    gw = gateway_of(request)
    return JSONResponse(await run_in_threadpool(gw.service.responses.get, request.path_params["id"]))


async def delete_response(request: Request) -> Response:
    gw = gateway_of(request)
    response_id = request.path_params["id"]
    await run_in_threadpool(gw.service.responses.delete, response_id)
    return JSONResponse({"id": response_id, "object": "response", "deleted": True})
