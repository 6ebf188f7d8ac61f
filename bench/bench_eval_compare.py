"""`workbench eval compare` at scale, and our metrics against their references.

1. Two runs of 20,000 cases with 6 metrics (3 pass/fail, 3 graded), compared and gated the way
   `eval compare --fail-on-regression` does it, with the runs' rows already read: goal < 3 s.
   The ratio is against scipy's own one-sample bootstrap of the same 6 deltas (2,000 resamples,
   percentile), the library a reviewer would reach for.
2. The largest difference from the reference implementation of each metric over random cases:
   trec_eval (pytrec_eval) for recall@k, MRR and nDCG@k, statsmodels for McNemar.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

import numpy as np
from figures import emit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from evals.metrics import retrieval_metrics  # noqa: E402
from evals.stats import mcnemar  # noqa: E402
from tests.test_metrics_reference import _reference  # noqa: E402

CASES = 20_000


def runs() -> tuple[list[dict], list[dict]]:
    rng = np.random.default_rng(3)
    before, after = [], []
    for index in range(CASES):
        base = {name: float(rng.random() < 0.7) for name in ("exact", "contains", "json_valid")}
        base.update({name: float(rng.random()) for name in ("f1", "recall_at_k", "ndcg")})
        new = dict(base)
        if rng.random() < 0.02:  # 2% of the cases get worse
            new.update(exact=0.0, contains=0.0, f1=new["f1"] * 0.5)
        new["ndcg"] = min(1.0, max(0.0, new["ndcg"] + rng.normal(0, 0.05)))
        before.append({"subject": "m", "case_id": f"c{index}", "metrics": base, "output": "a"})
        after.append({"subject": "m", "case_id": f"c{index}", "metrics": new, "output": "b"})
    return before, after


def compare_timing() -> None:
    """End to end as `workbench eval compare A B --fail-on-regression 0.01` runs it: both runs'
    rows read from traces.duckdb, paired, tested and gated."""
    import tempfile

    from scipy.stats import bootstrap

    from evals.storage import EvalStore
    from workbench.services import Service

    before, after = runs()
    with tempfile.TemporaryDirectory() as folder:
        service = Service(folder)
        storage = EvalStore(service.store)
        for run_id, rows in (("base", before), ("new", after)):
            storage.create_run(run_id, "bench", "0" * 64, ["m"], {}, {})
            writer = storage.writer(run_id)
            writer.rows = [{**row, "run_id": run_id, "finished_ns": index} for index, row in enumerate(rows)]
            writer.flush()
        started = time.perf_counter()
        gated = service.evals.gate("new", "base", 0.01)
        ours = time.perf_counter() - started
    started = time.perf_counter()
    for name in ("exact", "contains", "json_valid", "f1", "recall_at_k", "ndcg"):
        deltas = np.array([b["metrics"][name] - a["metrics"][name] for a, b in zip(before, after)])
        bootstrap((deltas,), np.mean, n_resamples=2000, method="percentile", random_state=0)
    raw = time.perf_counter() - started
    note = f"reading both runs from traces.duckdb included; ratio against scipy.stats.bootstrap of the same 6 deltas alone ({raw:.2f} s); failed: {', '.join(gated['failed'])}"
    emit("eval compare + gate, 2 x 20,000 cases x 6 metrics", ours, "s", "< 3 s", ours < 3, ours / raw, note)


def reference_differences() -> None:
    from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar

    rng = random.Random(5)
    paths = ["a.md", "docs/a.md", "b.md", "docs\\b.md", "c.md", "x/c.md", "d.md", "e.md"]
    worst = {"recall_at_k": 0.0, "mrr": 0.0, "ndcg": 0.0}
    for _ in range(5_000):
        retrieved = [rng.choice(paths) for _ in range(rng.randint(0, 12))]
        sources = [rng.choice(["a.md", "b.md", "c.md", "e.md", "f.md"]) for _ in range(rng.randint(1, 4))]
        k = rng.choice([None, 1, 3, 5, 10])
        ours, reference = retrieval_metrics(retrieved, tuple(sources), k), _reference(retrieved, sources, k)
        for name in worst:
            worst[name] = max(worst[name], abs(ours[name] - reference[name]))
    for name, difference in worst.items():
        emit(f"{name}: max |ours - trec_eval| over 5,000 cases", difference, "", "0", difference < 1e-9)
    mc = 0.0
    for _ in range(2_000):
        lost, gained = rng.randint(0, 12_000), rng.randint(0, 12_000)
        reference = sm_mcnemar([[0, lost], [gained, 0]], exact=True).pvalue
        mc = max(mc, abs(mcnemar(lost, gained)[0].p - reference))
    emit("McNemar: max |ours - statsmodels exact| over 2,000 tables", mc, "", "0", mc < 1e-12)


if __name__ == "__main__":
    compare_timing()
    reference_differences()
