"""Sentence-transformers embeddings from a local model folder: batched, on the GPU when torch
sees one, normalized so that cosine similarity is a dot product."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

from workbench.core.errors import CollectionError

__all__ = ["Embedder", "IsolatedEmbedder", "get_embedder", "isolate", "offsets_tokenizer"]

_CACHE: dict[tuple[str, bool], Embedder | IsolatedEmbedder] = {}
_LOCK = threading.Lock()


class Embedder:
    def __init__(self, path: Path) -> None:
        if not (path / "config.json").exists() and not (path / "modules.json").exists():
            raise CollectionError(
                f"{path} is not a sentence-transformers model folder",
                "run `workbench models fetch minilm` or fix the collection's model",
            )
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

    def encode(
        self, texts: list[str], batch_size: int = 64, progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        """Vectors for ``texts``, float32, unit length; ``progress(n)`` after each batch."""
        out = np.empty((len(texts), self.dimensions), dtype=np.float32)
        with self.lock:
            for begin in range(0, len(texts), batch_size):
                batch = texts[begin : begin + batch_size]
                out[begin : begin + len(batch)] = self.model.encode(
                    batch,
                    batch_size=batch_size,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )
                if progress is not None:
                    progress(len(batch))
        return out


class _OffsetsTokenizer:
    """The model's fast tokenizer straight from tokenizer.json (the Rust `tokenizers` library,
    no torch), answering the one call chunking makes, as transformers' tokenizer would."""

    def __init__(self, path: Path) -> None:
        from tokenizers import Tokenizer

        self.backend = Tokenizer.from_file(str(path / "tokenizer.json"))
        # transformers turns these off unless asked; tokenizer.json ships them on (128, padded)
        self.backend.no_truncation()
        self.backend.no_padding()

    def __call__(
        self, texts: list[str], add_special_tokens: bool = False, return_offsets_mapping: bool = True
    ):
        encodings = self.backend.encode_batch(texts, add_special_tokens=add_special_tokens)
        return {"offset_mapping": [encoding.offsets for encoding in encodings]}


def offsets_tokenizer(path: Path) -> _OffsetsTokenizer:
    """The model's tokenizer for chunking, without torch (Ray's read tasks use it)."""
    return _OffsetsTokenizer(path)


class IsolatedEmbedder:
    """An Embedder whose model runs in a child process (indexes/embed_worker.py), so loading
    and running it never holds this process's GIL; same interface, same vectors."""

    def __init__(self, path: Path) -> None:
        import subprocess
        import sys

        from indexes.embed_protocol import receive

        if not (path / "tokenizer.json").exists():
            raise CollectionError(
                f"{path} is not a sentence-transformers model folder",
                "run `workbench models fetch minilm` or fix the collection's model",
            )
        self.path = path
        self.process = subprocess.Popen(
            [sys.executable, "-m", "indexes.embed_worker", str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        try:
            info = receive(self.process.stdout)
        except EOFError:
            raise CollectionError(
                f"the embedding process for {path} ended at start",
                "run `workbench doctor`; try the ingest from the CLI to see its error",
            ) from None
        if "error" in info:
            raise CollectionError(info["error"], info["hint"])
        self.dimensions, self.max_tokens, self.device = info["dimensions"], info["max_tokens"], info["device"]
        self.tokenizer = _OffsetsTokenizer(path)
        self.lock = threading.Lock()

    def encode(
        self, texts: list[str], batch_size: int = 64, progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        from indexes.embed_protocol import receive, send

        out = np.empty((len(texts), self.dimensions), dtype=np.float32)
        with self.lock:
            try:
                send(self.process.stdin, (list(texts), batch_size))
                for begin in range(0, len(texts), batch_size):
                    batch = receive(self.process.stdout)
                    out[begin : begin + len(batch)] = batch
                    if progress is not None:
                        progress(len(batch))
            except (EOFError, BrokenPipeError):
                with _LOCK:  # the next call starts a fresh process
                    _CACHE.pop((str(self.path.resolve()), True), None)
                raise CollectionError(
                    f"the embedding process for {self.path} ended (killed, or out of memory?)",
                    "run it again; nothing was written for this batch",
                ) from None
        return out

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait(timeout=10)


_ISOLATED = False


def isolate(enabled: bool = True) -> None:
    """Load embedding models in child processes from now on (the app does: see IsolatedEmbedder)."""
    global _ISOLATED
    _ISOLATED = enabled


def get_embedder(path: Path) -> Embedder | IsolatedEmbedder:
    """One loaded model per folder per process (loading takes seconds)."""
    key = (str(path.resolve()), _ISOLATED)
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = IsolatedEmbedder(path) if _ISOLATED else Embedder(path)
        return _CACHE[key]
