"""Chat completions and legacy completions: what they share (sampling, stop, logit_bias,
penalties) and what each takes."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from workbench.core.errors import UnsupportedParameter
from workbench.server.errors import ApiError
from workbench.server.protocol import Open, check_cap, check_parts, refuse, text_of

__all__ = ["ChatMessage", "ChatCompletionRequest", "CompletionRequest"]


class FunctionCall(Open):
    name: str = Field(min_length=1)
    arguments: str = "{}"


class ToolCall(Open):
    id: str = Field(min_length=1)
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(Open):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    """An assistant's calls (its content then null), sent back with their results."""
    tool_call_id: str | None = None
    """The call a `tool` message answers."""

    @field_validator("content")
    @classmethod
    def _parts(cls, value):
        return check_parts(value, ("text",))

    @model_validator(mode="after")
    def _roles(self) -> ChatMessage:
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a tool message needs the `tool_call_id` of the call it answers")
        if self.tool_calls and self.role != "assistant":
            raise ValueError("only an assistant message holds `tool_calls`")
        if self.content is None and not self.tool_calls and self.role != "assistant":
            raise ValueError("the message needs its `content`")
        return self

    def plain(self) -> dict[str, Any]:
        """As the model layer takes it: a developer message is the system prompt; calls and
        results keep their OpenAI shapes (local_models.tool_calls renders them)."""
        role = "system" if self.role == "developer" else self.role
        message: dict[str, Any] = {"role": role, "content": text_of(self.content, ("text",))}
        if self.tool_calls:
            message["content"] = text_of(self.content, ("text",)) or None
            message["tool_calls"] = [
                call.model_dump(include={"id", "type", "function"}) for call in self.tool_calls
            ]
        if self.role == "tool":
            message.update(tool_call_id=self.tool_call_id, name=self.name)
        return message


class FunctionTool(Open):
    name: str = Field(min_length=1, max_length=64)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ChatTool(Open):
    type: Literal["function"]
    function: FunctionTool


class JsonSchemaFormat(Open):
    name: str = "answer"
    schema_: dict[str, Any] = Field(alias="schema")
    strict: bool | None = None


class ResponseFormat(Open):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None

    def schema_or_none(self) -> dict[str, Any] | None:
        if self.type == "json_object":
            return {"type": "object"}
        if self.type == "json_schema":
            if self.json_schema is None:
                raise ApiError(400, "`response_format.json_schema` is required", param="response_format")
            return self.json_schema.schema_
        return None


class StreamOptions(Open):
    include_usage: bool | None = False


Stop = str | list[str] | None


def _stops(stop: Stop) -> tuple[str, ...]:
    stops = (stop,) if isinstance(stop, str) else tuple(stop or ())
    if len(stops) > 4:
        raise ApiError(400, "`stop` takes at most 4 sequences", param="stop")
    return tuple(s for s in stops if s)


class _Sampling(Open):
    """What chat and legacy completions share."""

    model: str = Field(min_length=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    n: int | None = Field(None, ge=1, le=8)
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    stop: Stop = None
    seed: int | None = None
    logit_bias: dict[str, float] | None = None
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)

    @field_validator("logit_bias")
    @classmethod
    def _biases(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        for token, bias in (value or {}).items():
            if not token.isdigit():
                raise ValueError(f"keys are token ids, not {token!r}")
            if not -100 <= bias <= 100:
                raise ValueError(f"bias {bias} of token {token} is outside -100..100")
        return value

    @property
    def choices(self) -> int:
        return self.n or 1

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    def sampling(self, max_tokens: int, limit: int, default_temperature: float) -> dict[str, Any]:
        """GenerationParams' fields (services take a mapping of them)."""
        check_cap(max_tokens, limit)
        return {
            "temperature": default_temperature if self.temperature is None else self.temperature,
            "top_p": 0.95 if self.top_p is None else self.top_p,
            "max_tokens": max_tokens,
            "seed": self.seed,
            "stop": _stops(self.stop),
            "logit_bias": tuple((int(t), b) for t, b in (self.logit_bias or {}).items()),
            "presence_penalty": self.presence_penalty or 0.0,
            "frequency_penalty": self.frequency_penalty or 0.0,
        }


class ChatCompletionRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    response_format: ResponseFormat | None = None
    logprobs: bool | None = False
    top_logprobs: int | None = Field(None, ge=0, le=20)
    tools: list[ChatTool] | None = None
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None

    def params(self, limit: int) -> dict[str, Any]:
        refuse(self, "functions", "function_call", why="the legacy function calling: send `tools` instead")
        refuse(self, "audio", "prediction", "web_search_options", why="this gateway answers text only")
        refuse(self, "reasoning_effort", why="no model of this gateway reasons before it answers")
        if self.top_logprobs is not None and not self.logprobs:
            raise UnsupportedParameter("top_logprobs", "`top_logprobs` needs `logprobs: true`")
        if self.logprobs and self.stream:
            raise UnsupportedParameter("logprobs", "`logprobs` are given with whole answers, not streamed")
        max_tokens = self.max_completion_tokens or self.max_tokens or 256
        params = self.sampling(max_tokens, limit, default_temperature=0.7)
        if self.response_format is not None:
            params["json_schema"] = self.response_format.schema_or_none()
        if self.logprobs:
            params["top_logprobs"] = self.top_logprobs or 0
        if self.tool_choice not in (None, "none") and not self.tools:
            raise UnsupportedParameter("tool_choice", "`tool_choice` needs `tools`")
        if self.tools:
            if self.response_format is not None and self.response_format.type != "text":
                raise UnsupportedParameter("response_format", "a JSON answer format cannot go with `tools`")
            params["tools"] = tuple(
                tool.model_dump(include={"type", "function"}, exclude_none=True) for tool in self.tools
            )
            params["tool_choice"] = self.tool_choice
            params["parallel_tool_calls"] = self.parallel_tool_calls is not False
        return params

    def plain_messages(self) -> list[dict[str, Any]]:
        return [m.plain() for m in self.messages]


# -- legacy completions ---------------------------------------------------------------------------


class CompletionRequest(_Sampling):
    prompt: str | list[str] | list[int] | list[list[int]]
    max_tokens: int | None = Field(16, ge=0)
    echo: bool | None = False
    logprobs: int | None = Field(None, ge=0, le=20)

    def params(self, limit: int) -> dict[str, Any]:
        refuse(self, "suffix", why="no model of this gateway fills in the middle")
        best_of = (self.model_extra or {}).get("best_of")
        if best_of not in (None, 1, self.n):
            raise UnsupportedParameter("best_of", "`best_of` is not supported: ask for `n` answers instead")
        if self.stream and (self.echo or self.logprobs is not None):
            raise UnsupportedParameter(
                "echo" if self.echo else "logprobs", "`echo` and `logprobs` are given with whole answers"
            )
        max_tokens = 16 if self.max_tokens is None else self.max_tokens
        if max_tokens == 0 and not (self.echo and self.logprobs is not None):
            raise ApiError(
                400,
                "`max_tokens` 0 only scores the prompt: ask with `echo` and `logprobs`",
                param="max_tokens",
            )
        params = self.sampling(max_tokens, limit, default_temperature=1.0)
        if self.logprobs is not None:
            params["top_logprobs"] = self.logprobs
            params["score_prompt"] = bool(self.echo)
        return params

    def prompts(self) -> list[str | list[int]]:
        prompt = self.prompt
        if isinstance(prompt, str):
            return [prompt]
        if prompt and all(isinstance(p, int) for p in prompt):
            return [prompt]  # type: ignore[list-item]
        if not prompt:
            raise ApiError(400, "`prompt` is empty", param="prompt")
        return list(prompt)  # type: ignore[arg-type]
