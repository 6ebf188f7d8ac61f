"""The workbench's own routes, and what the CLI's two paths (in process, through the gateway)
share: the sampling a command asks for, the answer it prints, the requests of search, run,
compare and eval run."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Sampling", "Answer", "SearchRequest", "RunRequest", "CompareRequest", "EvalRequest"]


class Sampling(BaseModel):
    """How a command asks for an answer: GenerationParams' fields that the CLI sets, as one
    typed object for both paths (in process they are the service's params; through the gateway
    they become the chat request's fields)."""

    model_config = ConfigDict(extra="forbid")
    temperature: float = 0.7
    top_p: float = 0.95
    max_tokens: int = 256
    seed: int | None = None
    stop: tuple[str, ...] = ()
    json_schema: dict[str, Any] | None = None

    def chat_fields(self) -> dict[str, Any]:
        """The same settings as ChatCompletionRequest fields (whose params() gives them back)."""
        fields: dict[str, Any] = {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
        }
        if self.seed is not None:
            fields["seed"] = self.seed
        if self.stop:
            fields["stop"] = list(self.stop)
        if self.json_schema is not None:
            schema = {"name": "answer", "schema": self.json_schema}
            fields["response_format"] = {"type": "json_schema", "json_schema": schema}
        return fields


class Answer(BaseModel):
    """One model's answer as a command prints it, in process or through the gateway (where it
    travels as the `workbench` field of a chat completion, or a compare row)."""

    model: str
    text: str = ""
    finish_reason: str = "stop"
    input_tokens: int = 0
    cached_tokens: int = 0
    output_tokens: int = 0
    ttft_s: float | None = None
    tokens_per_s: float = 0.0
    cost_usd: float = 0.0
    hardware: str = ""
    trace_id: str | None = None
    extra: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def of(cls, result: Any) -> Answer:
        """From a GenerationResult; its extra keeps what is JSON (a router's reason, sources)."""
        fields = {name: getattr(result, name) for name in cls.model_fields if name != "extra"}
        fields["cost_usd"] = fields["cost_usd"] or 0.0
        extra = {k: v for k, v in result.extra.items() if v is not None and _jsonable(v)}
        return cls(**fields, extra=extra)


def _jsonable(value: Any) -> bool:
    return isinstance(value, str | int | float | bool | list | dict)


class SearchRequest(BaseModel):
    """`workbench search` through the gateway (arguments of Service.search)."""

    model_config = ConfigDict(extra="forbid")
    collection: str
    query: str
    mode: str | None = None
    k: int | None = Field(None, ge=1, le=1000)
    min_score: float | None = None
    path_glob: str | None = None
    file_type: str | None = None
    version: int | None = None
    rerank: str | None = None

    def arguments(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class RunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = None
    input: str | None = None
    thread_id: str | None = None
    approve: bool | None = None
    """Resuming a run that waits for approval: the person's answer (true: run the calls)."""
    note: str | None = None
    """Why, with ``approve`` (a denied call's result tells the model)."""

    def decision(self) -> dict[str, Any] | None:
        return None if self.approve is None else {"approved": self.approve, "note": self.note or ""}

    def asked_tokens(self) -> int:
        return 0  # the workflow's nodes set their own, checked when the spec is


class CompareRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    models: list[str] = Field(min_length=2, max_length=4)
    prompt: str
    system: str | None = None
    params: dict[str, Any] | None = None

    def asked_tokens(self) -> int:
        asked = (self.params or {}).get("max_tokens")
        return asked if isinstance(asked, int) else 256


class EvalRequest(BaseModel):
    """Arguments of EvalService.run."""

    model_config = ConfigDict(extra="forbid")
    dataset: str | None = None  # None: the resumed run's
    models: list[str] = Field(default_factory=list)
    workflow: str | None = None
    template: str | None = None
    system: str | None = None
    judge: str | None = None
    max_tokens: int | None = Field(None, ge=1)
    concurrency: int | None = Field(None, ge=1)
    limit: int | None = Field(None, ge=1)
    resume: str | None = None
    retry_errors: bool | None = None
    parallel: int | None = Field(None, ge=1)

    def arguments(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)

    def asked_tokens(self) -> int:
        return self.max_tokens or 128  # EvalService.run's default
