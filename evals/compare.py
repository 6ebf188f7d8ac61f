"""Run against run: per-metric deltas over the cases both runs share, a paired bootstrap
interval and p-value for each, McNemar's exact test for pass/fail metrics, and the cases whose
outcome changed."""

from __future__ import annotations

import math
import random
from typing import Any

from evals.metrics import BINARY, QUALITY

__all__ = ["pair_rows", "compare_rows", "regressions"]

RESAMPLES = 2000


def pair_rows(rows_a: list[dict], rows_b: list[dict]) -> list[tuple[dict, dict]]:
    """Rows of the same case side by side: of the same subject where the runs share subjects,
    else case by case when each run has one subject (say, one model against another)."""
    subjects_a = {r["subject"] for r in rows_a}
    subjects_b = {r["subject"] for r in rows_b}
    common = subjects_a & subjects_b
    if common:
        b = {(r["subject"], r["case_id"]): r for r in rows_b}
        return [(r, b[(r["subject"], r["case_id"])]) for r in rows_a if (r["subject"], r["case_id"]) in b]
    if len(subjects_a) == 1 and len(subjects_b) == 1:
        b = {r["case_id"]: r for r in rows_b}
        return [(r, b[r["case_id"]]) for r in rows_a if r["case_id"] in b]
    return []


def _bootstrap(deltas: list[float], seed: int = 0) -> tuple[float, float, float]:
    """95% interval of the mean paired delta, and a two-sided p-value for "no change"."""
    rng = random.Random(seed)
    n = len(deltas)
    means = sorted(sum(deltas[rng.randrange(n)] for _ in range(n)) / n for _ in range(RESAMPLES))
    low, high = means[int(0.025 * RESAMPLES)], means[int(0.975 * RESAMPLES) - 1]
    mean = sum(deltas) / n
    if all(d == 0 for d in deltas):
        return low, high, 1.0
    # share of resampled means on the far side of zero, doubled (the percentile bootstrap test)
    beyond = sum(1 for m in means if (m <= 0 if mean > 0 else m >= 0)) / RESAMPLES
    return low, high, min(1.0, 2 * beyond)


def _mcnemar(pairs: list[tuple[float, float]]) -> float:
    """Exact McNemar p-value from the discordant pairs (pass->fail, fail->pass)."""
    lost = sum(1 for a, b in pairs if a >= 0.5 > b)
    gained = sum(1 for a, b in pairs if b >= 0.5 > a)
    n = lost + gained
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(lost, gained) + 1)) / 2**n
    return min(1.0, 2 * tail)


def compare_rows(rows_a: list[dict], rows_b: list[dict]) -> dict[str, Any]:
    pairs = pair_rows(rows_a, rows_b)
    metrics = []
    for name in QUALITY:
        values = [
            (a["metrics"][name], b["metrics"][name])
            for a, b in pairs
            if name in (a.get("metrics") or {}) and name in (b.get("metrics") or {})
        ]
        if not values:
            continue
        deltas = [b - a for a, b in values]
        low, high, p = _bootstrap(deltas)
        entry = {
            "metric": name,
            "n": len(values),
            "a": sum(a for a, _ in values) / len(values),
            "b": sum(b for _, b in values) / len(values),
            "delta": sum(deltas) / len(deltas),
            "ci_low": low,
            "ci_high": high,
            "p_bootstrap": p,
        }
        if name in BINARY:
            entry["p_mcnemar"] = _mcnemar(values)
        metrics.append(entry)
    changed = []
    for a, b in pairs:
        moved = {
            name: (a["metrics"][name], b["metrics"][name])
            for name in QUALITY
            if name in a["metrics"]
            and name in b["metrics"]
            and abs(a["metrics"][name] - b["metrics"][name]) >= 0.5
        }
        if moved or bool(a.get("error")) != bool(b.get("error")):
            changed.append(
                {
                    "case_id": a["case_id"],
                    "subject": a["subject"],
                    "metrics": moved,
                    "output_a": a.get("output") or a.get("error"),
                    "output_b": b.get("output") or b.get("error"),
                }
            )
    return {"pairs": len(pairs), "metrics": metrics, "changed": changed}


def regressions(comparison: dict[str, Any], threshold: float) -> list[str]:
    """Metrics whose mean fell by more than ``threshold`` (absolute) from the baseline (a) to b."""
    return [
        f"{m['metric']} {m['a']:.3f} -> {m['b']:.3f} ({m['delta']:+.3f}, 95% CI {m['ci_low']:+.3f}..{m['ci_high']:+.3f})"
        for m in comparison["metrics"]
        if m["delta"] < -threshold
    ]
