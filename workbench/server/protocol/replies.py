"""What the gateway answers, as typed models: chat completions and their stream chunks, legacy
completions, embeddings, rerank results and model cards, in OpenAI's shapes (fields OpenAI sends
as null are sent as null). `wire()` gives the JSON body."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from workbench.server.protocol.workbench import Answer

__all__ = [
    "wire",
    "Usage",
    "TokenLogprob",
    "ChatCompletion",
    "ChatChoice",
    "ChatCompletionChunk",
    "ChunkChoice",
    "TextCompletion",
    "TextChoice",
    "LegacyLogprobs",
    "Embedding",
    "EmbeddingList",
    "RerankResult",
    "RerankList",
    "ModelCard",
    "ModelList",
]

FinishReason = Literal["stop", "length", "tool_calls"]


def wire(reply: BaseModel) -> dict[str, Any]:
    """The JSON body of a reply: its optional extensions (usage of a chunk, the workbench's own
    figures) only where set, an Answer's text not repeated."""
    leave_out: dict[str, Any] = {
        name: True for name in ("usage", "workbench") if getattr(reply, name, 0) is None
    }
    if getattr(reply, "workbench", None) is not None:
        leave_out["workbench"] = {"text"}
    choices = getattr(reply, "choices", None) or []
    quiet = [
        i for i, c in enumerate(choices) if getattr(getattr(c, "message", None), "tool_calls", 0) is None
    ]
    if quiet:  # a message's tool_calls only where it calls (OpenAI leaves the field out otherwise)
        leave_out["choices"] = {i: {"message": {"tool_calls"}} for i in quiet}
    return reply.model_dump(mode="json", exclude=leave_out)


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: dict[str, int] = Field(default_factory=lambda: {"cached_tokens": 0})

    @classmethod
    def of(cls, results: list, prompts: int = 1) -> Usage:
        """The prompt is read once for all choices of it; their answers add up. ``prompts``:
        how many prompts the results answer, in order, ``len(results) // prompts`` each."""
        each = len(results) // prompts
        prompt = sum(r.input_tokens for r in results[::each])
        completion = sum(r.output_tokens for r in results)
        cached = sum(r.cached_tokens for r in results[::each])
        return cls(
            prompt_tokens=prompt,
            completion_tokens=completion,
            total_tokens=prompt + completion,
            prompt_tokens_details={"cached_tokens": cached},
        )


class TopLogprob(BaseModel):
    token: str
    bytes: list[int]
    logprob: float


class TokenLogprob(TopLogprob):
    top_logprobs: list[TopLogprob] = Field(default_factory=list)


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None
    refusal: None = None
    tool_calls: list[dict[str, Any]] | None = None
    """[{"id", "type": "function", "function": {"name", "arguments"}}]; left out when none."""


class ChoiceLogprobs(BaseModel):
    content: list[TokenLogprob]


class ChatChoice(BaseModel):
    index: int
    message: AssistantMessage
    logprobs: ChoiceLogprobs | None
    finish_reason: FinishReason


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    system_fingerprint: None = None
    choices: list[ChatChoice]
    usage: Usage
    workbench: Answer | None = None


class ChunkChoice(BaseModel):
    index: int
    delta: dict[str, Any]
    logprobs: None = None
    finish_reason: FinishReason | None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    system_fingerprint: None = None
    choices: list[ChunkChoice]
    usage: Usage | None = None
    workbench: Answer | None = None


class LegacyLogprobs(BaseModel):
    """Completions' logprobs: parallel lists, the alternatives as {token: logprob}."""

    tokens: list[str]
    token_logprobs: list[float | None]
    top_logprobs: list[dict[str, float] | None]
    text_offset: list[int]

    @classmethod
    def of(cls, result) -> LegacyLogprobs | None:
        if result.token_logprobs is None and result.prompt_logprobs is None:
            return None
        entries = (result.prompt_logprobs or []) + (result.token_logprobs or [])
        offsets, offset = [], 0
        for entry in entries:
            offsets.append(offset)
            offset += len(entry["token"])
        return cls(
            tokens=[e["token"] for e in entries],
            token_logprobs=[e["logprob"] for e in entries],
            top_logprobs=[
                None
                if e["logprob"] is None
                else {t["token"]: t["logprob"] for t in e.get("top_logprobs", [])}
                for e in entries
            ],
            text_offset=offsets,
        )


class TextChoice(BaseModel):
    index: int
    text: str
    logprobs: LegacyLogprobs | None = None
    finish_reason: FinishReason | None = None


class TextCompletion(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[TextChoice]
    usage: Usage | None = None
    workbench: Answer | None = None


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str  # floats, or base64 of float32 little-endian bytes


class EmbeddingList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: dict[str, int]


class RerankResult(BaseModel):
    index: int
    relevance_score: float
    document: dict[str, str] | None = None


class RerankList(BaseModel):
    object: Literal["list"] = "list"
    model: str
    results: list[RerankResult]
    usage: dict[str, int]


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "workbench"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
