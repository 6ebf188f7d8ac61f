"""Eval runs and their results in traces.duckdb (tables eval_runs and eval_results, created by
the trace store's migrations): every SQL the evals run, in one place."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from workbench.core.errors import EvalError
from workbench.core.tracing import TraceStore

__all__ = ["EvalStore", "ResultWriter"]

_RESULT_COLUMNS = (
    "run_id",
    "subject",
    "case_id",
    "output",
    "error",
    "metrics",
    "judge",
    "retrieved",
    "latency_s",
    "model_s",
    "ttft_s",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "judge_failures",
    "trace_id",
    "finished_ns",
)
_JSON_COLUMNS = {"metrics", "judge", "retrieved", "subjects", "settings", "reproducibility"}
_FLUSH_EVERY = 8  # cases: a killed run redoes at most these
_FLUSH_S = 2.0


class ResultWriter:
    """Finished cases into eval_results in small batches, from any thread."""

    def __init__(self, store: TraceStore, run_id: str) -> None:
        self.store, self.run_id = store, run_id
        self.rows: list[dict] = []
        self.lock = threading.Lock()
        self.last = time.monotonic()

    def __call__(self, row: dict[str, Any]) -> None:
        with self.lock:
            self.rows.append({**row, "run_id": self.run_id, "finished_ns": time.time_ns()})
            if len(self.rows) >= _FLUSH_EVERY or time.monotonic() - self.last > _FLUSH_S:
                self._flush_locked()

    def flush(self) -> None:
        with self.lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        if not self.rows:
            return
        values = [
            [json.dumps(r.get(c)) if c in _JSON_COLUMNS else r.get(c) for c in _RESULT_COLUMNS]
            for r in self.rows
        ]
        placeholders = ", ".join("?" for _ in _RESULT_COLUMNS)
        self.store.write(
            [(f"INSERT INTO eval_results ({', '.join(_RESULT_COLUMNS)}) VALUES ({placeholders})", values)]
        )
        self.rows, self.last = [], time.monotonic()


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (json.loads(v) if k in _JSON_COLUMNS and isinstance(v, str) else v) for k, v in row.items()}


class EvalStore:
    def __init__(self, store: TraceStore) -> None:
        self.store = store

    def create_run(
        self,
        run_id: str,
        dataset: str,
        sha256: str,
        subjects: list[str],
        settings: dict[str, Any],
        reproducibility: dict[str, Any],
    ) -> None:
        self.store.write(
            [
                (
                    "INSERT INTO eval_runs (run_id, dataset, dataset_sha256, subjects, settings, reproducibility, "
                    "status, created_ns) VALUES (?, ?, ?, ?, ?, ?, 'running', ?)",
                    [
                        run_id,
                        dataset,
                        sha256,
                        json.dumps(subjects),
                        json.dumps(settings),
                        json.dumps(reproducibility),
                        time.time_ns(),
                    ],
                )
            ]
        )

    def finish_run(self, run_id: str, status: str, wall_s: float) -> None:
        self.store.write(
            [
                (
                    "UPDATE eval_runs SET status = ?, finished_ns = ?, wall_s = coalesce(wall_s, 0) + ? "
                    "WHERE run_id = ?",
                    [status, time.time_ns(), wall_s, run_id],
                )
            ]
        )

    def forget_errors(self, run_id: str) -> None:
        """Delete the results that ended in an error, so that a resume runs those cases again."""
        self.store.write([("DELETE FROM eval_results WHERE run_id = ? AND error IS NOT NULL", [run_id])])

    def finished_cases(self, run_id: str) -> set[tuple[str, str]]:
        rows = self.store.query("SELECT subject, case_id FROM eval_results WHERE run_id = ?", [run_id])
        return {(r["subject"], r["case_id"]) for r in rows}

    def writer(self, run_id: str) -> ResultWriter:
        return ResultWriter(self.store, run_id)

    def runs(self, limit: int = 50) -> list[dict[str, Any]]:
        rows = self.store.query(
            "SELECT r.run_id, r.dataset, r.subjects, r.status, r.created_ns, r.wall_s, count(e.case_id) AS results "
            "FROM eval_runs r LEFT JOIN eval_results e USING (run_id) GROUP BY ALL ORDER BY r.created_ns DESC LIMIT ?",
            [limit],
        )
        return [_decode(r) for r in rows]

    def run_row(self, run_id: str) -> dict[str, Any]:
        """The run whose id is ``run_id`` or starts with it (when only one does)."""
        rows = self.store.query(
            "SELECT * FROM eval_runs WHERE starts_with(run_id, ?) ORDER BY created_ns", [run_id]
        )
        exact = [r for r in rows if r["run_id"] == run_id]
        if exact or len(rows) == 1:
            return _decode((exact or rows)[0])
        if not rows:
            raise EvalError(f"no eval run {run_id!r}", "see `workbench eval list`")
        raise EvalError(f"{run_id!r} matches {len(rows)} runs", "give more of the run id")

    def results(self, run_id: str) -> list[dict[str, Any]]:
        rows = self.store.query(
            "SELECT * FROM eval_results WHERE run_id = ? ORDER BY subject, finished_ns", [run_id]
        )
        return [_decode(r) for r in rows]
