"""Responses API requests."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator

from workbench.core.errors import UnsupportedParameter
from workbench.server.errors import ApiError, from_validation
from workbench.server.protocol import TOOLS_LATER, Open, check_cap, check_parts, refuse, text_of

__all__ = ["ResponsesRequest", "ResponseObject", "OutputMessage", "OutputText", "ResponseUsage"]


class TextFormat(Open):
    type: Literal["text", "json_object", "json_schema"] = "text"
    name: str | None = None
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    strict: bool | None = None


class TextConfig(Open):
    format: TextFormat | None = None


class InputItem(Open):
    """A message item of `input` (the only kind until the gateway calls tools)."""

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
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None

    def items(self) -> list[dict[str, str]]:
        """`input` as plain messages (a string is one user message)."""
        if isinstance(self.input, str):
            return [{"role": "user", "content": self.input}]
        messages = []
        for index, raw in enumerate(self.input):
            if raw.get("type", "message") != "message":
                raise UnsupportedParameter(
                    f"input.{index}", f"input items of type {raw.get('type')!r} are not taken: {TOOLS_LATER}"
                )
            try:
                messages.append(InputItem.model_validate(raw).plain())
            except ValidationError as exc:
                raise from_validation(exc, f"input.{index}") from None
        if not messages:
            raise ApiError(400, "`input` is empty", param="input")
        return messages

    def params(self, limit: int) -> dict[str, Any]:
        refuse(self, "tools", why=TOOLS_LATER)
        if self.tool_choice not in (None, "auto", "none"):
            raise UnsupportedParameter("tool_choice", f"`tool_choice` is not supported: {TOOLS_LATER}")
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
    output: list[OutputMessage] = Field(default_factory=list)
    parallel_tool_calls: bool = False
    previous_response_id: str | None
    reasoning: dict[str, Any] = Field(default_factory=lambda: {"effort": None, "summary": None})
    store: bool
    temperature: float
    text: dict[str, Any]
    tool_choice: str = "auto"
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
