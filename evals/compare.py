"""Run against run: per metric the delta over the cases both runs share, its 95% bootstrap
interval, a paired test of "no change" (McNemar's exact test for pass/fail metrics, the
sign-flip permutation test for the others), the cases that changed, and the regression gate.

A case of the baseline that errored or is missing in the new run counts as a failure (0) for
every metric the baseline case has: a run cannot pass the gate by failing to answer. The
statistics are in evals/stats.py; docs/metrics.md states the gate's rule with an example.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from evals.metrics import BINARY, QUALITY
from evals.stats import bootstrap_interval, mcnemar, sign_flip

__all__ = ["pair_rows", "compare_rows", "gate", "format_p", "MIN_CASES", "ALPHA"]

MIN_CASES = 10  # paired cases below which the gate will not call a fall (unless allowed)
ALPHA = 0.05  # the one-sided test's level: how sure the gate must be that a fall is real
_TOLERANCE = 1e-9  # a fall equal to the threshold up to float rounding counts as reaching it


def pair_rows(rows_a: list[dict], rows_b: list[dict]) -> list[tuple[dict, dict | None]]:
    """Each baseline row beside the new run's row of the same case (None where the new run has
    none): of the same subject where the runs share subjects, else case by case when each run
    has one subject (say, one model against another)."""
    subjects_a = {r["subject"] for r in rows_a}
    subjects_b = {r["subject"] for r in rows_b}
    if subjects_a & subjects_b:
        b = {(r["subject"], r["case_id"]): r for r in rows_b}
        return [(r, b.get((r["subject"], r["case_id"]))) for r in rows_a if r["subject"] in subjects_b]
    if len(subjects_a) == 1 and len(subjects_b) == 1:
        by_case = {r["case_id"]: r for r in rows_b}
        return [(r, by_case.get(r["case_id"])) for r in rows_a]
    return []


def _failed(row: dict | None) -> bool:
    return row is None or bool(row.get("error"))


def _metric(name: str, pairs: list[tuple[dict, dict | None]], absent: bool) -> dict[str, Any] | None:
    """The entry of one metric; ``absent``: no case of the new run has it, so each counts as 0."""
    values, failures = [], []
    for a, b in pairs:
        if name not in (a.get("metrics") or {}):
            continue
        if absent or b is None or b.get("error"):
            values.append((a["metrics"][name], 0.0))
            failures.append(a["case_id"])
        elif name in (b.get("metrics") or {}):
            values.append((a["metrics"][name], b["metrics"][name]))
    if not values:
        return None
    before = np.array([v[0] for v in values], dtype=float)
    after = np.array([v[1] for v in values], dtype=float)
    deltas = after - before
    low, high = bootstrap_interval(deltas)
    if name in BINARY:
        lost = int(np.count_nonzero((before >= 0.5) & (after < 0.5)))
        gained = int(np.count_nonzero((after >= 0.5) & (before < 0.5)))
        two, fall = mcnemar(lost, gained)
        test = "McNemar exact"
    else:
        two, fall = sign_flip(deltas)
        test = f"sign-flip permutation ({two.method})"
    return {
        "metric": name,
        "n": len(values),
        "a": math.fsum(before) / len(values),
        "b": math.fsum(after) / len(values),
        "delta": math.fsum(deltas) / len(values),
        "ci_low": low,
        "ci_high": high,
        "p": two.p,
        "p_fall": fall.p,
        "p_floor": two.floor,
        "p_text": format_p(two.p, two.floor),
        "p_fall_text": format_p(fall.p, fall.floor),
        "test": test,
        "failed_cases": failures,
    }


def compare_rows(rows_a: list[dict], rows_b: list[dict]) -> dict[str, Any]:
    """Run b against the baseline a."""
    pairs = pair_rows(rows_a, rows_b)
    in_b = {
        name for _, b in pairs if b is not None and not b.get("error") for name in (b.get("metrics") or {})
    }
    in_a = {name for a, _ in pairs for name in (a.get("metrics") or {})}
    # A metric of the baseline that no answered case of the new run has (its schema or sources
    # were dropped, say): every case counts as 0 and the gate fails it.
    missing = [
        name
        for name in QUALITY
        if name in in_a and name not in in_b and any(not _failed(b) for _, b in pairs)
    ]
    metrics = [entry for name in QUALITY if (entry := _metric(name, pairs, name in missing)) is not None]
    changed = []
    for a, b in pairs:
        b_metrics = (b or {}).get("metrics") or {}
        moved = {
            name: (a["metrics"][name], b_metrics[name])
            for name in QUALITY
            if name in (a.get("metrics") or {})
            and name in b_metrics
            and abs(a["metrics"][name] - b_metrics[name]) >= 0.5
        }
        if moved or _failed(b) != bool(a.get("error")):
            changed.append(
                {
                    "case_id": a["case_id"],
                    "subject": a["subject"],
                    "metrics": moved,
                    "output_a": a.get("output") or a.get("error"),
                    "output_b": "(missing from the new run)"
                    if b is None
                    else b.get("output") or b.get("error"),
                }
            )
    paired = sum(1 for _, b in pairs if b is not None)
    return {
        "pairs": paired,
        "missing_cases": len(pairs) - paired,
        "metrics": metrics,
        "changed": changed,
        "missing_metrics": missing,
    }


def gate(
    comparison: dict[str, Any],
    threshold: float,
    alpha: float = ALPHA,
    min_cases: int = MIN_CASES,
    allow_small: bool = False,
) -> list[dict[str, Any]]:
    """Per metric a verdict ("pass" or "fail") and why. A metric fails when it fell by at least
    ``threshold`` AND the one-sided paired test says the fall is real (p < ``alpha``); when it is
    absent from the new run; or when fewer than ``min_cases`` cases pair up (unless
    ``allow_small``), since then noise and a fall cannot be told apart."""
    verdicts = []
    for m in comparison["metrics"]:
        fall = -m["delta"]
        material = fall + _TOLERANCE >= threshold
        significant = m["p_fall"] < alpha
        p_text = m["p_fall_text"]
        if m["metric"] in comparison.get("missing_metrics", []):
            verdict, why = "fail", "in the baseline but absent from the new run"
        elif m["n"] < min_cases and not allow_small:
            verdict = "fail"
            why = f"not enough cases: {m['n']} paired, the gate needs {min_cases} (--allow-small to judge anyway)"
        elif material and significant:
            verdict, why = (
                "fail",
                f"fell by {fall:.4g} >= {threshold:g}, and p {p_text} < {alpha:g}: a real fall",
            )
        elif material:
            verdict, why = (
                "pass",
                f"fell by {fall:.4g} >= {threshold:g}, but p {p_text} >= {alpha:g}: within noise",
            )
        elif significant and fall > 0:
            verdict, why = (
                "pass",
                f"a real fall (p {p_text}) of {fall:.4g}, under the threshold {threshold:g}",
            )
        elif fall > 0:
            verdict, why = "pass", f"fell by {fall:.4g}, under the threshold {threshold:g}"
        else:
            verdict, why = "pass", "did not fall"
        if m["failed_cases"]:
            why += f"; {len(m['failed_cases'])} case(s) errored or missing in the new run count as failures"
        verdicts.append({**m, "verdict": verdict, "why": why})
    return verdicts


def format_p(p: float, floor: float | None = None) -> str:
    """A p-value as printed: a Monte Carlo estimate at its floor is `< 1/(B+1)`, never 0."""
    if floor is not None and p <= floor:
        return f"< {floor:.2g}"
    if p < 1e-4:
        return f"{p:.1e}"
    return f"{p:.4f}".rstrip("0").rstrip(".") if p < 1 else "1"
