"""Sentence-transformers embeddings from a local model folder: batched, on the GPU when torch
sees one, normalized so that cosine similarity is a dot product."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

from workbench.errors import CollectionError

__all__ = ["Embedder", "get_embedder"]

_CACHE: dict[str, Embedder] = {}
_LOCK = threading.Lock()


class Embedder:
    def __init__(self, path: Path) -> None:
        if not (path / "config.json").exists() and not (path / "modules.json").exists():
            raise CollectionError(f"{path} is not a sentence-transformers model folder",
                                  "run `workbench models fetch minilm` or fix the collection's model")  # fmt: skip
        import torch
        import transformers
        from sentence_transformers import SentenceTransformer

        transformers.utils.logging.disable_progress_bar()  # its bars would draw over the app
        transformers.utils.logging.set_verbosity_error()

        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model = SentenceTransformer(str(path), device=self.device, local_files_only=True)
        self.path = path
        self.dimensions = self.model.get_embedding_dimension()
        self.max_tokens = self.model.max_seq_length
        self.lock = threading.Lock()  # one encode at a time: torch already uses every core

    @property
    def tokenizer(self):
        return self.model.tokenizer

    def encode(self, texts: list[str], batch_size: int = 64,
               progress: Callable[[int], None] | None = None) -> np.ndarray:  # fmt: skip
        """Vectors for ``texts``, float32, unit length; ``progress(n)`` after each batch."""
        out = np.empty((len(texts), self.dimensions), dtype=np.float32)
        with self.lock:
            for begin in range(0, len(texts), batch_size):
                batch = texts[begin : begin + batch_size]
                out[begin : begin + len(batch)] = self.model.encode(
                    batch, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True,
                    show_progress_bar=False,
                )  # fmt: skip
                if progress is not None:
                    progress(len(batch))
        return out


def get_embedder(path: Path) -> Embedder:
    """One loaded model per folder per process (loading takes seconds)."""
    key = str(path.resolve())
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = Embedder(path)
        return _CACHE[key]
