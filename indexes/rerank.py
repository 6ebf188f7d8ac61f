"""Rerankers: reorder a search's first candidates, with a score of their own.

- ``CrossEncoderReranker``: a sentence-transformers CrossEncoder the user registered
  (`workbench models register PATH --kind reranker`), reading (query, heading path + text).
- ``SectionReranker`` ("sections"), the built-in one, with no extra model: the first stage's
  score plus how well the query matches the candidate's heading path, with the collection's
  own embedder (a section's title names its subject in a few words that its text may not
  repeat). Heading vectors are cached per process. Measured on the Debian Reference set it
  changed little (bench/bench_retrieval.py): the chunk vectors already embed the heading path.

Both keep the candidates past their window in their order, after the reranked ones.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from indexes.chunking import context_header

__all__ = ["CrossEncoderReranker", "SectionReranker", "get_reranker"]

_WINDOW = 30  # candidates reordered; the rest follow in their order


class SectionReranker:
    """score = z(first-stage score) + heading_weight x z(similarity of the query to the chunk's
    heading path), both standardized over the window."""

    name = "sections"
    needs_query_vector = True

    def __init__(self, model_path: Path, heading_weight: float = 0.25, window: int = _WINDOW) -> None:
        self.model_path = model_path
        self.heading_weight, self.window = heading_weight, window
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def _header_vectors(self, headers: list[str]) -> np.ndarray:
        with self._lock:
            missing = sorted({h for h in headers if h not in self._cache})
        if missing:
            from indexes.retrieval import encode_queries

            vectors = encode_queries(self.model_path, missing)
            with self._lock:
                for header, vector in zip(missing, vectors):
                    self._cache[header] = vector
                while len(self._cache) > 50_000:
                    self._cache.popitem(last=False)
        with self._lock:
            return np.stack([self._cache[h] for h in headers])

    def rerank(self, query: str, query_vector, hits: list[dict[str, Any]]) -> list[dict[str, Any]]:
        from indexes.fusion import standardized

        head, tail = hits[: self.window], hits[self.window :]
        headings = self._header_vectors([_header(h) for h in head]) @ query_vector
        for hit, first, heading in zip(
            head, standardized([h["score"] for h in head]), standardized(headings.tolist())
        ):
            hit["score"] = first + self.heading_weight * heading
        return sorted(head, key=lambda h: h["score"], reverse=True) + tail


class CrossEncoderReranker:
    def __init__(self, path: Path, window: int = _WINDOW) -> None:
        import torch
        import transformers
        from sentence_transformers import CrossEncoder

        transformers.utils.logging.disable_progress_bar()  # its bars would draw over the app
        transformers.utils.logging.set_verbosity_error()
        self.name = path.name
        self.model = CrossEncoder(
            str(path), device="cuda" if torch.cuda.is_available() else "cpu", local_files_only=True
        )
        self.window = window
        self._lock = threading.Lock()

    needs_query_vector = False

    def score(self, query: str, documents: list[str]) -> tuple[list[float], int]:
        """The relevance of each document to ``query`` (the model's raw score), and the tokens
        the pairs took."""
        pairs = [(query, document) for document in documents]
        with self._lock:
            scores = self.model.predict(pairs, show_progress_bar=False, convert_to_numpy=True)
            encoded = self.model.tokenizer(
                [q for q, _ in pairs],
                [d for _, d in pairs],
                truncation=True,
                max_length=self.model.max_length,
            )
        return [float(s) for s in scores], sum(len(ids) for ids in encoded["input_ids"])

    def rerank(self, query: str, query_vector, hits: list[dict[str, Any]]) -> list[dict[str, Any]]:
        head, tail = hits[: self.window], hits[self.window :]
        pairs = [(query, f"{_header(h)}\n{h['text']}") for h in head]
        with self._lock:
            scores = self.model.predict(pairs, show_progress_bar=False, convert_to_numpy=True)
        for hit, score in zip(head, scores):
            hit["score"] = float(score)
        return sorted(head, key=lambda h: h["score"], reverse=True) + tail


def _header(hit: dict[str, Any]) -> str:
    return context_header(hit["title"], hit["headings"].split(" > ") if hit["headings"] else [])


_RERANKERS: dict[tuple[str, str], Any] = {}
_LOCK = threading.Lock()


def get_reranker(kind: str, path: Path):
    """One reranker per (kind, model folder) per process: loading a model takes seconds."""
    key = (kind, str(path.resolve()))
    with _LOCK:
        if key not in _RERANKERS:
            _RERANKERS[key] = SectionReranker(path) if kind == "sections" else CrossEncoderReranker(path)
        return _RERANKERS[key]
