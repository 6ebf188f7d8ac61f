"""Retrieval in stages: vector and full-text legs (LanceDB), fusion of the two, then an optional
rerank of the first candidates. Every hit carries its rank at each stage, and ``Stages`` keeps
what each stage ranked, for the retrieval span.

Fusion standardizes each leg's scores over its candidates (z-scores) and adds them weighted,
vector x3, full text x1; a chunk missing from a leg's candidates gets nothing from it. Chosen by
measurement on 56 labelled questions over the Debian Reference (bench/bench_retrieval.py):
reciprocal-rank fusion at k=60 lost to the vector leg alone (section recall@5 0.768 vs 0.839)
because full text is much weaker on paraphrased questions (0.607) and RRF counts its ranks as
much; z-score fusion at 3:1 matched vector's recall with a better MRR@10 (0.741 vs 0.706), and
was never below the better leg at chunk sizes of 64, 100, 150 and 200 tokens, where RRF at its
best setting (k=10, 3:1) was once. RRF stays available ([documents] fusion = "rrf").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from indexes.embedder import get_embedder
from indexes.fusion import Fusion
from indexes.fusion import fuse as fuse_legs
from workbench.core.errors import CollectionError

__all__ = ["search", "Fusion", "MODES", "Stages"]

MODES = ("vector", "fts", "hybrid")
_COLUMNS = ["id", "path", "ext", "kind", "title", "headings", "page", "start", "end", "text"]


@dataclass
class Stages:
    """Chunk ids in rank order per stage (vector, fts, fusion, rerank), for the trace."""

    ranked: dict[str, list[str]] = field(default_factory=dict)

    def record(self, stage: str, rows: list[dict[str, Any]]) -> None:
        self.ranked[stage] = [row["id"] for row in rows]
        for rank, row in enumerate(rows, start=1):
            row.setdefault("ranks", {})[stage] = rank


def _where(path_glob: str | None, file_type: str | None) -> str | None:
    clauses = []
    if path_glob:
        like = path_glob.replace("'", "''").replace("%", r"\%").replace("_", r"\_")
        like = like.replace("**", "*").replace("*", "%").replace("?", "_")
        if not like.startswith("%") and not like.startswith("/"):
            like = "%" + like
        clauses.append(f"path LIKE '{like}'")
    if file_type:
        ext = "." + file_type.lower().lstrip(".").replace("'", "")
        clauses.append(f"ext = '{ext}'")
    return " AND ".join(clauses) or None


def _vector(table, vector, limit: int, where: str | None) -> list[dict[str, Any]]:
    rows = table.vector_search(vector, "vector", "cosine", [*_COLUMNS, "_distance"], limit, where)
    for row in rows:
        row["score"] = 1.0 - float(row.pop("_distance"))  # cosine similarity
    return rows


def _fts(table, query: str, limit: int, where: str | None) -> list[dict[str, Any]]:
    rows = table.text_search(query, "text", [*_COLUMNS, "_score"], limit, where)
    for row in rows:
        row["score"] = float(row.pop("_score"))  # BM25
    return rows


def encode_queries(model_path: Path, texts: list[str]):
    """Query vectors: NumPy's forward pass when the model allows it (no torch to import, see
    indexes/query_encoder.py), else the sentence-transformers model."""
    from indexes.query_encoder import query_encoder

    encoder = query_encoder(model_path)
    return encoder.encode(texts) if encoder is not None else get_embedder(model_path).encode(texts)


def fuse(legs: dict[str, list[dict[str, Any]]], fusion: Fusion) -> list[dict[str, Any]]:
    if fusion.method not in ("zscore", "rrf"):
        raise CollectionError(f"unknown fusion '{fusion.method}'", "set [documents] fusion to zscore or rrf")
    return fuse_legs(legs, fusion)


def search(
    table,
    meta,
    query: str,
    mode: str,
    k: int,
    min_score: float | None,
    path_glob: str | None,
    file_type: str | None,
    fusion: Fusion | None = None,
    reranker=None,
    stages: Stages | None = None,
) -> list[dict[str, Any]]:
    """The top ``k`` chunks for ``query`` in ``table`` (indexes/lance_native.py's NativeTable,
    `Collections.reader`). ``reranker`` (indexes/rerank.py), when given,
    reorders the first stage's candidates (the fused list in hybrid mode)."""
    if mode not in MODES:
        raise CollectionError(f"unknown search mode '{mode}'", f"use one of {', '.join(MODES)}")
    if not 1 <= k <= 1000:
        raise CollectionError(f"k = {k} is out of range", "use 1 to 1000")
    fusion = fusion or Fusion()
    stages = stages if stages is not None else Stages()
    where = _where(path_glob, file_type)
    # Fusion and reranking need candidates past k to have anything to reorder.
    limit = fusion.pool(k) if (mode == "hybrid" or reranker is not None) else k
    query_vector = None
    legs: dict[str, list[dict[str, Any]]] = {}
    if mode in ("vector", "hybrid") or getattr(reranker, "needs_query_vector", False):
        query_vector = encode_queries(Path(meta["model_path"]), [query])[0]
    if mode in ("vector", "hybrid"):
        legs["vector"] = _vector(table, query_vector, limit, where)
        stages.record("vector", legs["vector"])
    if mode in ("fts", "hybrid"):
        legs["fts"] = _fts(table, query, limit, where)
        stages.record("fts", legs["fts"])
    if mode == "hybrid":
        hits = fuse(legs, fusion)
        stages.record("fusion", hits)
    else:
        hits = legs[mode]
    if reranker is not None and hits:
        hits = reranker.rerank(query, query_vector, hits)
        stages.record("rerank", hits)
    hits = hits[:k]
    if min_score is not None:
        hits = [h for h in hits if h["score"] >= min_score]
    for hit in hits:
        hit["mode"] = mode
    return hits
