"""Responses API requests."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator

from workbench.core.errors import UnsupportedParameter
from workbench.server.errors import ApiError, from_validation
from workbench.server.protocol import Open, check_cap, check_parts, text_of

__all__ = [
    "ResponsesRequest",
    "ResponseObject",
    "OutputMessage",
    "OutputText",
    "ResponseUsage",
    "FunctionCallItem",
]


class TextFormat(Open):
    type: Literal["text", "json_object", "json_schema"] = "text"
    name: str | None = None
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    strict: bool | None = None


class TextConfig(Open):
    format: TextFormat | None = None


class InputItem(Open):
    """A message item of `input`."""

    type: Literal["message"] | None = "message"
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[dict[str, Any]]

    @field_validator("content")
    @classmethod
    def _parts(cls, value):
        return check_parts(value, ("input_text", "output_text", "text"))

    def plain(self) -> dict[str, str]:
        role = "system" if self.role == "developer" else self.role
        return {"role": role, "content": text_of(self.content, ("input_text", "output_text", "text"))}


class FunctionCallItem(Open):
    """A call the model made (an `input` item sent back, or an `output` item)."""

    type: Literal["function_call"] = "function_call"
    id: str | None = None
    call_id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    arguments: str = "{}"
    status: Literal["in_progress", "completed", "incomplete"] | None = "completed"


class FunctionCallOutput(Open):
    type: Literal["function_call_output"]
    call_id: str = Field(min_length=1)
    output: str | list[dict[str, Any]]


class ResponseTool(Open):
    """A function tool as the Responses API gives it (flat: no `function` object)."""

    type: Literal["function"]
    name: str = Field(min_length=1, max_length=64)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None

    def as_chat(self) -> dict[str, Any]:
        function = {"name": self.name, "description": self.description, "parameters": self.parameters}
        return {"type": "function", "function": {k: v for k, v in function.items() if v is not None}}


class ResponsesRequest(Open):
    model: str = Field(min_length=1)
    input: str | list[dict[str, Any]]
    instructions: str | None = None
    max_output_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    stream: bool | None = False
    store: bool | None = True
    previous_response_id: str | None = None
    text: TextConfig | None = None
    metadata: dict[str, str] | None = None
    tools: list[ResponseTool] | None = None
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None

    def items(self) -> list[dict[str, Any]]:
        """`input` as chat messages (a string is one user message): function calls the model
        made become an assistant message's `tool_calls`, their outputs `tool` messages."""
        if isinstance(self.input, str):
            return [{"role": "user", "content": self.input}]
        messages: list[dict[str, Any]] = []
        for index, raw in enumerate(self.input):
            kind = raw.get("type", "message")
            try:
                if kind == "message":
                    messages.append(InputItem.model_validate(raw).plain())
                elif kind == "function_call":
                    call = FunctionCallItem.model_validate(raw)
                    wire = {
                        "id": call.call_id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": call.arguments},
                    }
                    last = messages[-1] if messages else None
                    if last is not None and last["role"] == "assistant" and last.get("tool_calls"):
                        last["tool_calls"].append(wire)  # parallel calls: one assistant turn
                    else:
                        messages.append({"role": "assistant", "content": None, "tool_calls": [wire]})
                elif kind == "function_call_output":
                    result = FunctionCallOutput.model_validate(raw)
                    output = (
                        result.output
                        if isinstance(result.output, str)
                        else text_of(result.output, ("input_text", "output_text", "text"))
                    )
                    messages.append({"role": "tool", "tool_call_id": result.call_id, "content": output})
                else:
                    raise UnsupportedParameter(
                        f"input.{index}",
                        f"input items of type {kind!r} are not taken (messages, function_call and function_call_output are)",
                    )
            except ValidationError as exc:
                raise from_validation(exc, f"input.{index}") from None
        if not messages:
            raise ApiError(400, "`input` is empty", param="input")
        return messages

    def params(self, limit: int) -> dict[str, Any]:
        reasoning = (self.model_extra or {}).get("reasoning") or {}
        if isinstance(reasoning, dict) and reasoning.get("effort"):
            raise UnsupportedParameter("reasoning", "no model of this gateway reasons before it answers")
        max_tokens = self.max_output_tokens or 256
        check_cap(max_tokens, limit, "max_output_tokens")
        params: dict[str, Any] = {
            "temperature": 0.7 if self.temperature is None else self.temperature,
            "top_p": 0.95 if self.top_p is None else self.top_p,
            "max_tokens": max_tokens,
        }
        form = self.text.format if self.text else None
        if form is not None and form.type == "json_object":
            params["json_schema"] = {"type": "object"}
        elif form is not None and form.type == "json_schema":
            if form.schema_ is None:
                raise ApiError(400, "`text.format.schema` is required", param="text.format.schema")
            params["json_schema"] = form.schema_
        if self.tool_choice not in (None, "none") and not self.tools:
            raise UnsupportedParameter("tool_choice", "`tool_choice` needs `tools`")
        if self.tools:
            if "json_schema" in params:
                raise UnsupportedParameter("text.format", "a JSON answer format cannot go with `tools`")
            choice = self.tool_choice
            if isinstance(choice, dict) and choice.get("type") == "function" and "name" in choice:
                choice = {"type": "function", "function": {"name": choice["name"]}}  # the chat shape
            params["tools"] = tuple(tool.as_chat() for tool in self.tools)
            params["tool_choice"] = choice
            params["parallel_tool_calls"] = self.parallel_tool_calls is not False
        return params


# -- what it answers ------------------------------------------------------------------------------


class OutputText(BaseModel):
    type: Literal["output_text"] = "output_text"
    text: str
    annotations: list[Any] = Field(default_factory=list)
    logprobs: list[Any] = Field(default_factory=list)


class OutputMessage(BaseModel):
    type: Literal["message"] = "message"
    id: str
    status: Literal["in_progress", "completed", "incomplete"]
    role: Literal["assistant"] = "assistant"
    content: list[OutputText]


class ResponseUsage(BaseModel):
    input_tokens: int
    input_tokens_details: dict[str, int] = Field(default_factory=lambda: {"cached_tokens": 0})
    output_tokens: int
    output_tokens_details: dict[str, int] = Field(default_factory=lambda: {"reasoning_tokens": 0})
    total_tokens: int


class ResponseObject(BaseModel):
    """A response as OpenAI's Responses API gives it (and as it is stored)."""

    id: str
    object: Literal["response"] = "response"
    created_at: int
    status: Literal["in_progress", "completed", "incomplete"]
    error: None = None
    incomplete_details: dict[str, str] | None = None
    instructions: str | None
    max_output_tokens: int | None
    model: str
    output: list[OutputMessage | FunctionCallItem] = Field(default_factory=list)
    parallel_tool_calls: bool = False
    previous_response_id: str | None
    reasoning: dict[str, Any] = Field(default_factory=lambda: {"effort": None, "summary": None})
    store: bool
    temperature: float
    text: dict[str, Any]
    tool_choice: str | dict[str, Any] = "auto"
    tools: list[Any] = Field(default_factory=list)
    top_p: float
    truncation: str = "disabled"
    usage: ResponseUsage | None = None
    user: None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    workbench: dict[str, Any] | None = None
    """Not OpenAI's: the trace and the answer's figures."""

    def body(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"workbench"} if self.workbench is None else None)
