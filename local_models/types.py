"""What a model is asked and what it answers, shared by local and (later) cloud backends."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["GenerationParams", "GenerationResult"]


@dataclass(frozen=True)
class GenerationParams:
    temperature: float = 0.7
    top_p: float = 0.95
    max_tokens: int = 256
    seed: int | None = None
    stop: tuple[str, ...] = ()
    json_schema: dict[str, Any] | None = None
    """Constrain the output to JSON valid against this schema (a llama.cpp grammar locally)."""
    logprobs: bool = False
    """Local models: report the mean log-probability of the answer's tokens (the router's
    confidence check); costs a log-softmax over the vocabulary per token, so off by default."""

    top_logprobs: int | None = None
    """Local models: each generated token's log-probability and this many most likely
    alternatives (OpenAI's ``logprobs`` + ``top_logprobs``); None reports none."""
    logit_bias: tuple[tuple[int, float], ...] = ()
    """(token id of the model's vocabulary, bias added to its logit); -100 bans a token."""
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    score_prompt: bool = False
    """Local raw prompts: report the log-probability of every prompt token after the first
    (OpenAI completions' ``echo`` + ``logprobs``); ``max_tokens`` may then be 0."""
    tools: tuple[dict[str, Any], ...] = ()
    """Functions the model may call, as OpenAI's ``tools`` (local_models.tool_calls)."""
    tool_choice: Any = None
    """None or "auto" (call or answer), "none", "required", {"type": "function", "function":
    {"name": ...}}."""
    parallel_tool_calls: bool = True
    """Whether one answer may hold several calls."""

    def validate(self) -> GenerationParams:
        from workbench.core.errors import ModelError

        if not 0.0 <= self.temperature <= 5.0:
            raise ModelError(f"temperature {self.temperature} is out of range", "use 0 to 5")
        if not 0.0 < self.top_p <= 1.0:
            raise ModelError(f"top_p {self.top_p} is out of range", "use a value in (0, 1]")
        if self.max_tokens < (0 if self.score_prompt else 1):
            raise ModelError(f"max_tokens {self.max_tokens} must be at least 1", "raise it")
        return self


@dataclass
class GenerationResult:
    model: str
    text: str = ""
    finish_reason: str = "stop"  # stop | length | tool_calls | cancelled | error
    input_tokens: int = 0
    cached_tokens: int = 0
    """Of the input tokens, those whose KV a slot already held (not decoded again)."""
    output_tokens: int = 0
    ttft_s: float | None = None
    duration_s: float = 0.0
    tokens_per_s: float = 0.0
    cost_usd: float = 0.0
    hardware: str = ""
    mean_logprob: float | None = None
    """Mean natural-log probability of the generated tokens under the model (logprobs=True)."""
    trace_id: str | None = None
    token_logprobs: list[dict[str, Any]] | None = None
    """With ``top_logprobs``: per generated token {"token", "bytes", "logprob", "top_logprobs":
    [{"token", "bytes", "logprob"}]} (OpenAI's chat logprobs content)."""
    prompt_logprobs: list[dict[str, Any]] | None = None
    """With ``score_prompt``: the same per prompt token (its "logprob" None for the first)."""
    tool_calls: list[dict[str, Any]] | None = None
    """The functions the answer calls, as OpenAI gives them ({"id", "type": "function",
    "function": {"name", "arguments"}}); the finish reason is then "tool_calls"."""
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {key: value for key, value in self.__dict__.items()}
