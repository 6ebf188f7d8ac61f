"""Metrics of one case, and of a run's cases together.

Quality metrics are in [0, 1], higher is better; a metric that does not apply to a case (no
expected answer, no expected sources, no schema) is absent, never zero.
"""

from __future__ import annotations

import json
import math
import re
import string
from collections import Counter
from typing import Any

__all__ = ["normalize", "answer_metrics", "retrieval_metrics", "percentile", "QUALITY", "BINARY"]

QUALITY = (
    "exact",
    "contains",
    "f1",
    "json_valid",
    "recall_at_k",
    "mrr",
    "ndcg",
    "correctness",
    "groundedness",
)
BINARY = {"exact", "contains", "json_valid"}  # paired as 0/1 outcomes (McNemar)

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize(text: str) -> str:
    """Lowercase, no punctuation, no articles, single spaces (SQuAD's normalization)."""
    text = _ARTICLES.sub(" ", text.lower().translate(_PUNCTUATION))
    return " ".join(text.split())


def _f1(prediction: str, truth: str) -> float:
    predicted, expected = normalize(prediction).split(), normalize(truth).split()
    if not predicted or not expected:
        return float(predicted == expected)
    common = sum((Counter(predicted) & Counter(expected)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


def answer_metrics(output: str, expected: tuple[str, ...], schema: dict | None) -> dict[str, float]:
    metrics: dict[str, float] = {}
    if expected:
        metrics["exact"] = float(any(normalize(output) == normalize(e) for e in expected))
        metrics["contains"] = float(any(normalize(e) in normalize(output) for e in expected))
        metrics["f1"] = max(_f1(output, e) for e in expected)
    if schema is not None:
        import jsonschema

        try:
            jsonschema.validate(json.loads(output), schema)
            metrics["json_valid"] = 1.0
        except (ValueError, jsonschema.ValidationError):
            metrics["json_valid"] = 0.0
    return metrics


def _relevant(path: str, sources: tuple[str, ...]) -> bool:
    path = path.replace("\\", "/")
    return any(path == s or path.endswith("/" + s.lstrip("/")) for s in sources)


def retrieval_metrics(
    retrieved: list[str], sources: tuple[str, ...], k: int | None = None
) -> dict[str, float]:
    """recall@k, MRR and nDCG@k of the retrieved paths (best first) against the expected sources;
    a source counts once however many of its chunks were retrieved."""
    if not sources:
        return {}
    ranked: list[str] = []
    for path in retrieved[: k or len(retrieved)]:
        if path not in ranked:
            ranked.append(path)
    found = [s for s in sources if any(_relevant(p, (s,)) for p in ranked)]
    first = next((rank for rank, p in enumerate(ranked, start=1) if _relevant(p, sources)), None)
    gains = [1.0 if _relevant(p, sources) else 0.0 for p in ranked]
    dcg = sum(g / math.log2(i + 2) for i, g in enumerate(gains))
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(len(sources), len(ranked)) or 1))
    return {
        "recall_at_k": len(found) / len(sources),
        "mrr": 1.0 / first if first else 0.0,
        "ndcg": dcg / ideal if ideal else 0.0,
    }


def percentile(values: list[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in [0, 100]); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """A subject's figures over its cases: mean of each quality metric over the cases it applies
    to, latency p50/p95, time to first token, tokens, tokens/s, cost, failures."""
    summary: dict[str, Any] = {
        "cases": len(rows),
        "errors": sum(1 for r in rows if r.get("error")),
        "judge_failures": sum(int(r.get("judge_failures") or 0) for r in rows),
    }
    for name in QUALITY:
        values = [r["metrics"][name] for r in rows if name in (r.get("metrics") or {})]
        if values:
            summary[name] = sum(values) / len(values)
    latencies = [r["latency_s"] for r in rows if r.get("latency_s") is not None and not r.get("error")]
    summary["latency_p50_s"] = percentile(latencies, 50)
    summary["latency_p95_s"] = percentile(latencies, 95)
    ttfts = [r["ttft_s"] for r in rows if r.get("ttft_s") is not None]
    summary["ttft_p50_s"] = percentile(ttfts, 50)
    summary["output_tokens"] = sum(int(r.get("output_tokens") or 0) for r in rows)
    summary["input_tokens"] = sum(int(r.get("input_tokens") or 0) for r in rows)
    model_s = sum(float(r.get("model_s") or 0) for r in rows)
    summary["tokens_per_s"] = summary["output_tokens"] / model_s if model_s else None
    summary["cost_usd"] = sum(float(r.get("cost_usd") or 0) for r in rows)
    return summary
