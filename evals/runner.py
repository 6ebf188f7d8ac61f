"""Running the cases of an eval: subjects (a model, or a workflow on a model) x cases.

Local models each get one queue, worked by ``parallel`` threads: their requests are decoded
together by the model's continuous batching (local_models/batching.py), up to its slots. Cloud
subjects share a pool of threads up to a concurrency limit; all queues run at once, so cloud
cases overlap local ones. Each finished case is handed to ``record`` at once, so a run killed
mid-way keeps what finished and a resume skips it.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from evals.datasets import Case
from evals.judges import Judge
from evals.metrics import answer_metrics, retrieval_metrics
from evals.tool_calls import check_calls

__all__ = ["Subject", "Outcome", "run_cases"]


@dataclass
class Outcome:
    output: str
    trace_id: str | None = None
    retrieved: list[dict[str, Any]] | None = None  # [{"path", "text"}] best first
    usage: dict[str, Any] | None = None  # model_s, ttft_s, input_tokens, output_tokens, cost_usd
    tool_calls: list[dict[str, Any]] | None = None  # [{"name", "arguments"}] when the case has tools


@dataclass
class Subject:
    label: str  # `smollm2`, or `rag@smollm2` for a workflow run on a model
    model: str
    workflow: str | None
    local: bool
    run: Callable[[Case], Outcome]


Record = Callable[[dict[str, Any]], None]
Progress = Callable[[str, int, int], None]


def evaluate(subject: Subject, case: Case, judge: Judge | None) -> dict[str, Any]:
    """One case through one subject: its output, metrics, judge verdicts and figures."""
    from workbench.core.errors import WorkbenchError

    row: dict[str, Any] = {
        "subject": subject.label,
        "case_id": case.id,
        "error": None,
        "judge": None,
        "judge_failures": 0,
        "metrics": {},
        "retrieved": None,
    }
    started = time.perf_counter()
    try:
        outcome = subject.run(case)
    except WorkbenchError as exc:
        row.update(output=None, error=exc.one_line(), latency_s=time.perf_counter() - started)
        return row
    row.update(
        output=outcome.output,
        trace_id=outcome.trace_id,
        latency_s=time.perf_counter() - started,
        **(outcome.usage or {}),
    )
    metrics = answer_metrics(outcome.output, case.expected, case.schema)
    if case.expected_calls:  # the calls are in the output (their JSON): the reason can be had again
        metrics["tool_call"], _ = check_calls(list(case.expected_calls), outcome.tool_calls or [])
    if outcome.retrieved is not None:
        paths = [hit["path"] for hit in outcome.retrieved]
        row["retrieved"] = paths
        metrics.update(retrieval_metrics(paths, case.sources))
    if judge is not None:
        verdicts = []
        try:
            if case.expected:
                verdicts.append(judge.correctness(case.input, case.expected, outcome.output))
            if outcome.retrieved:
                verdicts.append(
                    judge.groundedness(outcome.output, [hit["text"] for hit in outcome.retrieved])
                )
        except WorkbenchError as exc:  # the judge model itself failed: a judge failure, kept
            verdicts.append({"criterion": "judge", "failed": True, "raw": exc.one_line()})
        for verdict in verdicts:
            if verdict["failed"]:
                row["judge_failures"] += 1
            else:
                metrics[verdict["criterion"]] = verdict["score"]
        row["judge"] = verdicts
    row["metrics"] = metrics
    return row


def run_cases(
    subjects: list[Subject],
    cases: list[Case],
    done: set[tuple[str, str]],
    judge: Judge | None,
    record: Record,
    progress: Progress | None = None,
    concurrency: int = 4,
    stop: threading.Event | None = None,
    parallel: int = 4,
) -> None:
    stop = stop or threading.Event()
    totals = {s.label: len(cases) for s in subjects}
    counts = {s.label: sum(1 for c in cases if (s.label, c.id) in done) for s in subjects}
    lock = threading.Lock()

    def one(subject: Subject, case: Case) -> None:
        if stop.is_set():
            return
        row = evaluate(subject, case, judge)
        record(row)
        with lock:
            counts[subject.label] += 1
            count = counts[subject.label]
        if progress is not None:
            progress(subject.label, count, totals[subject.label])

    pending = {s.label: [c for c in cases if (s.label, c.id) not in done] for s in subjects}
    queues: dict[str, deque[tuple[Subject, Case]]] = {}
    for subject in subjects:
        if subject.local:  # one queue per local model, whatever the workflow
            queues.setdefault(subject.model, deque()).extend((subject, c) for c in pending[subject.label])
    cloud = [(s, c) for s in subjects if not s.local for c in pending[s.label]]

    def drain(items: deque[tuple[Subject, Case]]) -> None:
        while not stop.is_set():
            with lock:
                if not items:
                    return
                subject, case = items.popleft()
            one(subject, case)

    errors: list[BaseException] = []

    def guarded(function, *args) -> None:
        try:
            function(*args)
        except BaseException as exc:  # noqa: BLE001 - raised again in the caller's thread
            errors.append(exc)
            stop.set()

    # Each thread runs in a copy of this context, so the spans it opens join the caller's trace.
    threads = [
        threading.Thread(
            target=contextvars.copy_context().run,
            args=(guarded, drain, items),
            name=f"eval:{model}:{worker}",
            daemon=True,
        )
        for model, items in queues.items()
        for worker in range(max(1, min(parallel, len(items))))
    ]
    for thread in threads:
        thread.start()
    if cloud:
        with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="eval-cloud") as pool:
            for subject, case in cloud:
                pool.submit(contextvars.copy_context().run, guarded, one, subject, case)
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
