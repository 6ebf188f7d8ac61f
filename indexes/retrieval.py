"""Vector, full-text (LanceDB's native FTS) and hybrid search, fused by reciprocal rank."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from indexes.embedder import get_embedder
from workbench.core.errors import CollectionError

__all__ = ["search", "MODES"]

MODES = ("vector", "fts", "hybrid")
_RRF_K = 60  # the constant of Cormack et al.; ranks past ~60 barely count
_COLUMNS = ["id", "path", "ext", "kind", "title", "headings", "page", "start", "end", "text"]


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


def _vector(table, meta, query: str, limit: int, where: str | None) -> list[dict[str, Any]]:
    vector = get_embedder(Path(meta["model_path"])).encode([query])[0]
    builder = (
        table.search(vector, vector_column_name="vector")
        .distance_type("cosine")
        .select([*_COLUMNS, "_distance"])
    )
    if where:
        builder = builder.where(where, prefilter=True)
    rows = builder.limit(limit).to_list()
    for row in rows:
        row["score"] = 1.0 - float(row.pop("_distance"))  # cosine similarity
    return rows


def _fts(table, query: str, limit: int, where: str | None) -> list[dict[str, Any]]:
    builder = table.search(query, query_type="fts", fts_columns="text").select([*_COLUMNS, "_score"])
    if where:
        builder = builder.where(where, prefilter=True)
    rows = builder.limit(limit).to_list()
    for row in rows:
        row["score"] = float(row.pop("_score"))  # BM25
    return rows


def search(
    table,
    meta,
    query: str,
    mode: str,
    k: int,
    min_score: float | None,
    path_glob: str | None,
    file_type: str | None,
) -> list[dict[str, Any]]:
    if mode not in MODES:
        raise CollectionError(f"unknown search mode '{mode}'", f"use one of {', '.join(MODES)}")
    if not 1 <= k <= 1000:
        raise CollectionError(f"k = {k} is out of range", "use 1 to 1000")
    where = _where(path_glob, file_type)
    if mode == "vector":
        hits = _vector(table, meta, query, k, where)
    elif mode == "fts":
        hits = _fts(table, query, k, where)
    else:
        pool = max(k * 4, 20)
        ranked: dict[str, dict[str, Any]] = {}
        for source, rows in (
            ("vector", _vector(table, meta, query, pool, where)),
            ("fts", _fts(table, query, pool, where)),
        ):
            for rank, row in enumerate(rows, start=1):
                entry = ranked.setdefault(row["id"], {**row, "score": 0.0, "ranks": {}})
                entry["score"] += 1.0 / (_RRF_K + rank)
                entry["ranks"][source] = rank
        hits = sorted(ranked.values(), key=lambda r: r["score"], reverse=True)[:k]
    if min_score is not None:
        hits = [h for h in hits if h["score"] >= min_score]
    for hit in hits:
        hit["mode"] = mode
    return hits
