"""The OpenAI chat-completions wire format: requests read into our parameters, results written
back as completions and stream chunks, errors in OpenAI's error shape."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

__all__ = ["ApiError", "ChatRequest", "read_chat", "completion", "chunk", "error_body"]

_ROLES = {"system", "user", "assistant"}


class ApiError(Exception):
    """A request the gateway answers with an HTTP error in OpenAI's format."""

    def __init__(
        self,
        status: int,
        message: str,
        kind: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.code, self.param = status, message, kind, code, param
        self.headers = headers or {}


def error_body(message: str, kind: str, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


@dataclass
class ChatRequest:
    model: str
    messages: list[dict[str, str]]
    params: dict[str, Any]
    stream: bool
    include_usage: bool


def _text(content: Any) -> str:
    """A message's content: a string, or OpenAI's list of text parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text" for p in content):
        return "".join(str(p.get("text", "")) for p in content)
    raise ApiError(400, "message content must be a string or a list of text parts", param="messages")


def _model(body: Any) -> str:
    """The model a request names (the body must be a JSON object)."""
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ApiError(400, "`model` is required", param="model")
    return model


def read_chat(body: Any, max_tokens_limit: int) -> ChatRequest:
    model = _model(body)
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise ApiError(400, "`messages` must be a non-empty list", param="messages")
    messages = []
    for message in raw:
        if not isinstance(message, dict) or message.get("role") not in _ROLES:
            raise ApiError(400, "each message needs a role of system, user or assistant", param="messages")
        messages.append({"role": message["role"], "content": _text(message.get("content"))})
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens", 256))
    if not isinstance(max_tokens, int) or max_tokens < 1:
        raise ApiError(400, "`max_tokens` must be a positive integer", param="max_tokens")
    if max_tokens > max_tokens_limit:
        raise ApiError(
            400,
            f"`max_tokens` {max_tokens} is over this server's limit of {max_tokens_limit}",
            param="max_tokens",
            code="max_tokens_too_large",
        )
    stop = body.get("stop")
    stop = [stop] if isinstance(stop, str) else list(stop or [])
    params: dict[str, Any] = {
        "temperature": body.get("temperature", 0.7) if body.get("temperature") is not None else 0.7,
        "top_p": body.get("top_p", 0.95) if body.get("top_p") is not None else 0.95,
        "max_tokens": max_tokens,
        "seed": body.get("seed"),
        "stop": stop,
    }
    response_format = body.get("response_format") or {}
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "json_object":
        params["json_schema"] = {"type": "object"}
    elif kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        if not isinstance(schema, dict):
            raise ApiError(
                400,
                "response_format.json_schema.schema must be a JSON schema object",
                param="response_format",
            )
        params["json_schema"] = schema
    elif kind not in (None, "text"):
        raise ApiError(400, f"response_format type {kind!r} is not supported", param="response_format")
    options = body.get("stream_options") or {}
    return ChatRequest(
        model,
        messages,
        params,
        bool(body.get("stream")),
        bool(isinstance(options, dict) and options.get("include_usage")),
    )


def _usage(result) -> dict[str, Any]:
    return {
        "prompt_tokens": result.input_tokens,
        "completion_tokens": result.output_tokens,
        "total_tokens": result.input_tokens + result.output_tokens,
    }


def _finish(reason: str | None) -> str:
    return {"length": "length", "stop": "stop", "cancelled": "stop"}.get(reason or "stop", "stop")


def completion(result, completion_id: str, created: int | None = None) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created or int(time.time()),
        "model": result.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": result.text},
                "finish_reason": _finish(result.finish_reason),
            }
        ],
        "usage": _usage(result),
        "workbench": _extra(result),
    }


def _extra(result) -> dict[str, Any]:
    """What the workbench knows of the answer beyond OpenAI's fields (the CLI prints it)."""
    return {
        "trace_id": result.trace_id,
        "model": result.model,
        "cost_usd": result.cost_usd,
        "hardware": result.hardware,
        "ttft_s": result.ttft_s,
        "tokens_per_s": result.tokens_per_s,
        "finish_reason": result.finish_reason,
        "route": result.extra.get("route"),
        "escalation_reason": result.extra.get("escalation_reason"),
        "escalation_refused": result.extra.get("escalation_refused"),
    }


def chunk(
    completion_id: str,
    created: int,
    model: str,
    delta: dict[str, Any],
    finish: str | None = None,
    usage: dict[str, Any] | None = None,
    choices: bool = True,
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}] if choices else [],
    }
    if usage is not None:
        data["usage"] = usage
    return data


def final_chunks(result, completion_id: str, created: int, include_usage: bool) -> list[dict[str, Any]]:
    """The closing chunk (finish reason), and the usage chunk when the client asked for it."""
    chunks = [chunk(completion_id, created, result.model, {}, _finish(result.finish_reason))]
    if include_usage:
        usage = chunk(completion_id, created, result.model, {}, usage=_usage(result), choices=False)
        usage["workbench"] = _extra(result)
        chunks.append(usage)
    return chunks


MAX_EMBEDDING_INPUTS = 2048


def read_embeddings(body: Any) -> tuple[str, list[str], str]:
    """(model, texts, encoding format) of an embeddings request."""
    model = _model(body)
    texts = body.get("input")
    texts = [texts] if isinstance(texts, str) else texts
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t for t in texts):
        raise ApiError(
            400,
            "`input` must be a non-empty string or list of strings (token arrays are not taken)",
            param="input",
        )
    if len(texts) > MAX_EMBEDDING_INPUTS:
        raise ApiError(400, f"at most {MAX_EMBEDDING_INPUTS} inputs a request", param="input")
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise ApiError(400, "`encoding_format` is float or base64", param="encoding_format")
    return model, texts, encoding


def embeddings_body(model: str, vectors, tokens: int, encoding: str) -> dict[str, Any]:
    """The embeddings response; base64 is the float32 little-endian bytes (the OpenAI SDK asks for it)."""
    import base64

    import numpy as np

    def encoded(vector):
        if encoding == "base64":
            return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()
        return [float(x) for x in vector]

    return {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": encoded(v)} for i, v in enumerate(vectors)],
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
