"""How hybrid search combines its vector and full-text legs. Pure Python with no imports from
the workbench: `workbench export --target langgraph` copies this file, so a deployed workflow
ranks passages exactly as the workbench does. Why these defaults: indexes/retrieval.py."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Fusion", "standardized", "fuse"]


@dataclass(frozen=True)
class Fusion:
    """How the legs combine. ``method`` "zscore": sum of weight x (score - mean) / std over each
    leg's candidates; "rrf": sum of weight / (rrf_k + rank). A leg's candidates are its top
    ``pool(k)``: at least ``k_hits * pool_factor`` and ``min_pool``."""

    method: str = "zscore"
    vector_weight: float = 3.0
    fts_weight: float = 1.0
    rrf_k: int = 60
    pool_factor: int = 4
    min_pool: int = 40

    def pool(self, k_hits: int) -> int:
        return max(k_hits * self.pool_factor, self.min_pool)


def standardized(scores: list[float]) -> list[float]:
    """(score - mean) / std over one list; all zeros when they are all equal."""
    if not scores:
        return []
    mean = sum(scores) / len(scores)
    std = (sum((s - mean) ** 2 for s in scores) / len(scores)) ** 0.5
    return [(s - mean) / std if std > 0 else 0.0 for s in scores]


def fuse(legs: dict[str, list[dict[str, Any]]], fusion: Fusion) -> list[dict[str, Any]]:
    if fusion.method not in ("zscore", "rrf"):
        raise ValueError(f"unknown fusion '{fusion.method}': use zscore or rrf")
    weights = {"vector": fusion.vector_weight, "fts": fusion.fts_weight}
    fused: dict[str, dict[str, Any]] = {}
    for leg, rows in legs.items():
        if fusion.method == "zscore":
            parts = standardized([row["score"] for row in rows])
        else:
            parts = [1.0 / (fusion.rrf_k + rank) for rank in range(1, len(rows) + 1)]
        for rank, (row, part) in enumerate(zip(rows, parts), start=1):
            entry = fused.setdefault(row["id"], {**row, "score": 0.0, "ranks": {}, "scores": {}})
            entry["score"] += weights[leg] * part
            entry["ranks"][leg] = rank
            entry["scores"][leg] = row["score"]
    return sorted(fused.values(), key=lambda r: r["score"], reverse=True)
