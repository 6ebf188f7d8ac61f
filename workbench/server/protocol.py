"""The gateway's wire format: every request it takes as a pydantic model, validated in one place
(`parse`). Unknown fields are accepted, as OpenAI accepts them; a known parameter the gateway
cannot honour is refused by name (UnsupportedParameter), never dropped."""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from workbench.core.errors import UnsupportedParameter
from workbench.server.errors import ApiError, from_validation

__all__ = [
    "parse",
    "ChatMessage",
    "ChatCompletionRequest",
    "CompletionRequest",
    "EmbeddingRequest",
    "RerankRequest",
    "ResponsesRequest",
    "SearchRequest",
    "RunRequest",
    "CompareRequest",
    "EvalRequest",
]


T = TypeVar("T", bound=BaseModel)


def parse(model: type[T], body: Any) -> T:
    """``body`` (parsed JSON) as ``model``, or a 400 naming the first parameter that is wrong."""
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise from_validation(exc) from None


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


def _refuse(request: BaseModel, *names: str, why: str) -> None:
    """Refuse each of ``names`` the client set to something other than nothing."""
    extra = request.model_extra or {}
    for name in names:
        value = getattr(request, name, None) if name in type(request).model_fields else extra.get(name)
        if value not in (None, [], {}, False):
            raise UnsupportedParameter(name, f"`{name}` is not supported: {why}")


_TOOLS_LATER = "this gateway does not call tools yet"


def _text_of(content: str | list[dict[str, Any]] | None, part_types: tuple[str, ...]) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(str(part.get("text", "")) for part in content if part.get("type") in part_types)


def _check_parts(parts: list[dict[str, Any]] | str | None, allowed: tuple[str, ...]):
    if isinstance(parts, list):
        for part in parts:
            if part.get("type") not in allowed or not isinstance(part.get("text"), str):
                raise ValueError(
                    f"content parts of type {part.get('type')!r} are not taken "
                    f"(this gateway's models read text: {', '.join(allowed)})"
                )
    return parts


# -- chat completions -----------------------------------------------------------------------------


class ChatMessage(_Open):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None

    @field_validator("content")
    @classmethod
    def _parts(cls, value):
        return _check_parts(value, ("text",))

    def plain(self) -> dict[str, str]:
        """As the model layer takes it: a developer message is the system prompt."""
        role = "system" if self.role == "developer" else self.role
        return {"role": role, "content": _text_of(self.content, ("text",))}


class JsonSchemaFormat(_Open):
    name: str = "answer"
    schema_: dict[str, Any] = Field(alias="schema")
    strict: bool | None = None


class ResponseFormat(_Open):
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


class StreamOptions(_Open):
    include_usage: bool | None = False


Stop = str | list[str] | None


def _stops(stop: Stop) -> tuple[str, ...]:
    stops = (stop,) if isinstance(stop, str) else tuple(stop or ())
    if len(stops) > 4:
        raise ApiError(400, "`stop` takes at most 4 sequences", param="stop")
    return tuple(s for s in stops if s)


class _Sampling(_Open):
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
        if max_tokens > limit:
            raise ApiError(
                400,
                f"`max_tokens` {max_tokens} is over this server's limit of {limit}",
                param="max_tokens",
                code="max_tokens_too_large",
            )
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

    def params(self, limit: int) -> dict[str, Any]:
        _refuse(self, "tools", "functions", "tool_choice", "function_call", why=_TOOLS_LATER)
        _refuse(self, "audio", "prediction", "web_search_options", why="this gateway answers text only")
        _refuse(self, "reasoning_effort", why="no model of this gateway reasons before it answers")
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
        return params

    def plain_messages(self) -> list[dict[str, str]]:
        return [m.plain() for m in self.messages]


# -- legacy completions ---------------------------------------------------------------------------


class CompletionRequest(_Sampling):
    prompt: str | list[str] | list[int] | list[list[int]]
    max_tokens: int | None = Field(16, ge=0)
    echo: bool | None = False
    logprobs: int | None = Field(None, ge=0, le=20)

    def params(self, limit: int) -> dict[str, Any]:
        _refuse(self, "suffix", why="no model of this gateway fills in the middle")
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


# -- embeddings -----------------------------------------------------------------------------------

MAX_EMBEDDING_INPUTS = 2048


class EmbeddingRequest(_Open):
    model: str = Field(min_length=1)
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] | None = "float"
    dimensions: int | None = Field(None, ge=1)
    truncate: bool | None = False
    """Not OpenAI's: cut inputs longer than the model's window instead of refusing them."""

    def texts(self) -> list[str]:
        """The texts to embed; token arrays decoded (see `_decoded`)."""
        texts: list[Any] = [self.input] if isinstance(self.input, str) else list(self.input)
        if texts and all(isinstance(t, int) for t in texts):
            texts = [texts]  # one token array
        if not texts:
            raise ApiError(400, "`input` must not be empty", param="input")
        if not all(isinstance(t, str) for t in texts):
            texts = _decoded(texts)
        if not all(texts):
            raise ApiError(400, "`input` holds an empty string", param="input")
        if len(texts) > MAX_EMBEDDING_INPUTS:
            raise ApiError(400, f"at most {MAX_EMBEDDING_INPUTS} inputs a request", param="input")
        return texts  # type: ignore[return-value]


def _decoded(arrays: list[list[int]]) -> list[str]:
    """Token arrays as text. OpenAI clients tokenize embedding input with cl100k_base (LangChain's
    OpenAIEmbeddings does, by default, for any model name it does not know), so that is what
    the ids mean here; the workspace's embedding model then reads the text with its own
    tokenizer. tiktoken loads the encoding from its cache (TIKTOKEN_CACHE_DIR), where the
    client's own tiktoken put it."""
    try:
        import tiktoken

        encoding = tiktoken.get_encoding("cl100k_base")
    except Exception as exc:  # noqa: BLE001 - offline without a cache: say what to do
        raise UnsupportedParameter(
            "input",
            f"`input` as token arrays needs tiktoken's cl100k_base encoding, which could not be loaded "
            f"({type(exc).__name__}): send text, or point TIKTOKEN_CACHE_DIR at a tiktoken cache",
        ) from None
    try:
        return [encoding.decode(array) for array in arrays]
    except (KeyError, ValueError, OverflowError):
        raise ApiError(400, "`input` holds a token id outside cl100k_base", param="input") from None


class RerankRequest(_Open):
    """The rerank shape of Jina and Cohere, as llama.cpp's server takes it."""

    model: str = Field(min_length=1)
    query: str = Field(min_length=1)
    documents: list[str | dict[str, Any]] = Field(min_length=1, max_length=1000)
    top_n: int | None = Field(None, ge=1)
    return_documents: bool | None = False

    def texts(self) -> list[str]:
        texts = []
        for index, document in enumerate(self.documents):
            text = document if isinstance(document, str) else document.get("text")
            if not isinstance(text, str):
                raise ApiError(
                    400, "a document is a string or an object with `text`", param=f"documents.{index}"
                )
            texts.append(text)
        return texts


# -- responses ------------------------------------------------------------------------------------


class TextFormat(_Open):
    type: Literal["text", "json_object", "json_schema"] = "text"
    name: str | None = None
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    strict: bool | None = None


class TextConfig(_Open):
    format: TextFormat | None = None


class InputItem(_Open):
    """A message item of `input` (the only kind until the gateway calls tools)."""

    type: Literal["message"] | None = "message"
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[dict[str, Any]]

    @field_validator("content")
    @classmethod
    def _parts(cls, value):
        return _check_parts(value, ("input_text", "output_text", "text"))

    def plain(self) -> dict[str, str]:
        role = "system" if self.role == "developer" else self.role
        return {"role": role, "content": _text_of(self.content, ("input_text", "output_text", "text"))}


class ResponsesRequest(_Open):
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
                    f"input.{index}", f"input items of type {raw.get('type')!r} are not taken: {_TOOLS_LATER}"
                )
            try:
                messages.append(InputItem.model_validate(raw).plain())
            except ValidationError as exc:
                raise from_validation(exc, f"input.{index}") from None
        if not messages:
            raise ApiError(400, "`input` is empty", param="input")
        return messages

    def params(self, limit: int) -> dict[str, Any]:
        _refuse(self, "tools", why=_TOOLS_LATER)
        if self.tool_choice not in (None, "auto", "none"):
            raise UnsupportedParameter("tool_choice", f"`tool_choice` is not supported: {_TOOLS_LATER}")
        reasoning = (self.model_extra or {}).get("reasoning") or {}
        if isinstance(reasoning, dict) and reasoning.get("effort"):
            raise UnsupportedParameter("reasoning", "no model of this gateway reasons before it answers")
        max_tokens = self.max_output_tokens or 256
        if max_tokens > limit:
            raise ApiError(
                400,
                f"`max_output_tokens` {max_tokens} is over this server's limit of {limit}",
                param="max_output_tokens",
                code="max_tokens_too_large",
            )
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


# -- the workbench's own routes, and what the CLI's two paths share -------------------------------


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


class CompareRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    models: list[str] = Field(min_length=2, max_length=4)
    prompt: str
    system: str | None = None
    params: dict[str, Any] | None = None


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
