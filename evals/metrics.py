"""Metrics of one case, and of a run's cases together.

Quality metrics are in [0, 1], higher is better; a metric that does not apply to a case (no
expected answer, no expected sources, no schema) is absent, never zero. Each one equals its
reference implementation (tests/test_metrics_reference.py): the official SQuAD evaluation for
exact and f1, pytrec_eval (trec_eval) for recall@k, MRR and nDCG@k. docs/metrics.md states
every convention.
"""

from __future__ import annotations

import json
import math
import re
import string
from collections import Counter
from typing import Any

__all__ = [
    "normalize",
    "normalize_path",
    "answer_metrics",
    "retrieval_metrics",
    "percentile",
    "QUALITY",
    "BINARY",
]

QUALITY = (
    "exact",
    "contains",
    "f1",
    "json_valid",
    "tool_call",
    "recall_at_k",
    "mrr",
    "ndcg",
    "correctness",
    "groundedness",
)
BINARY = {"exact", "contains", "json_valid", "tool_call"}  # paired as 0/1 outcomes (McNemar)

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)
_SLASHES = re.compile(r"/{2,}")


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


def _contains(output: list[str], expected: list[str]) -> bool:
    """Whether the expected tokens stand in the output as a run of whole tokens: "art" is not in
    "party", "1" is not in "in 2019"."""
    size = len(expected)
    return any(output[start : start + size] == expected for start in range(len(output) - size + 1))


def answer_metrics(output: str, expected: tuple[str, ...], schema: dict | None) -> dict[str, float]:
    metrics: dict[str, float] = {}
    # An answer with no words once normalised would match every output: datasets refuse it
    # (evals/datasets.py); here it is only left out.
    answers = [e for e in expected if normalize(e)]
    if answers:
        tokens = normalize(output).split()
        metrics["exact"] = float(any(normalize(output) == normalize(e) for e in answers))
        metrics["contains"] = float(any(_contains(tokens, normalize(e).split()) for e in answers))
        metrics["f1"] = max(_f1(output, e) for e in answers)
    if schema is not None:
        import jsonschema

        try:
            jsonschema.validate(json.loads(output), schema)
            metrics["json_valid"] = 1.0
        except (ValueError, jsonschema.ValidationError):
            metrics["json_valid"] = 0.0
    return metrics


def normalize_path(path: str) -> str:
    """A path as sources are matched: forward slashes, no `./` in front, no doubled slashes."""
    path = path.strip().replace("\\", "/")
    while path.startswith("./"):
        path = path[2:]
    return _SLASHES.sub("/", path)


def _source_of(path: str, sources: tuple[str, ...]) -> str | None:
    """The expected source a retrieved path is: the path itself, or a source it ends in after a
    `/` (a source may name a file relative to the corpus); the longest such source wins."""
    best = None
    for source in sources:
        if path == source or path.endswith("/" + source.lstrip("/")):
            if best is None or len(source) > len(best):
                best = source
    return best


def retrieval_metrics(
    retrieved: list[str], sources: tuple[str, ...], k: int | None = None
) -> dict[str, float]:
    """recall@k, MRR@k and nDCG@k (binary relevance) of the retrieved chunks' paths, best first,
    against the expected sources. docs/metrics.md states the conventions: k counts retrieved
    chunks (default: all of them); ranks count distinct files; each source is credited once,
    to the first file that matches it; no sources, no metrics."""
    expected = tuple(dict.fromkeys(normalize_path(s) for s in sources if s.strip()))
    if not expected:
        return {}
    cutoff = len(retrieved) if k is None else k
    ranked = list(dict.fromkeys(normalize_path(p) for p in retrieved[:cutoff]))
    credited: set[str] = set()
    gains = []
    for path in ranked:
        source = _source_of(path, expected)
        gains.append(1.0 if source is not None and source not in credited else 0.0)
        if source is not None:
            credited.add(source)
    first = next((rank for rank, gain in enumerate(gains, start=1) if gain), None)
    dcg = sum(gain / math.log2(rank + 1) for rank, gain in enumerate(gains, start=1))
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(len(expected), cutoff) + 1))
    return {
        "recall_at_k": len(credited) / len(expected),
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
