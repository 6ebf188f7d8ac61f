"""Embeddings and rerank requests."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from workbench.core.errors import UnsupportedParameter
from workbench.server.errors import ApiError
from workbench.server.protocol import Open

__all__ = ["EmbeddingRequest", "RerankRequest", "MAX_EMBEDDING_INPUTS"]

MAX_EMBEDDING_INPUTS = 2048


class EmbeddingRequest(Open):
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


class RerankRequest(Open):
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
