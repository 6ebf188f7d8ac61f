"""`workbench eval run --ray`: the cases of a run on a Ray cluster, with the driver (this
process) the only writer of traces.duckdb and of the eval results.

Each local model gets one actor, or several (``[ray] model_replicas``; by default the
cluster's GPUs shared out among the run's local models), spread over the nodes, each loading
it once (on a GPU when the cluster has them) and taking ``parallel`` cases at a time, decoded
together by the model's continuous batching; a model's cases are dealt out to its replicas in
turn. Cloud cases are tasks, at most ``concurrency`` in flight. A worker builds the same
subjects and judge as an in-process run, from the same workspace, with a tracer that keeps each
case's spans: they come back with the case's result and the driver writes both, so a case is
recorded whole or not at all and a resume skips what was recorded. An actor killed mid-run is
started again (its model loaded again) and its unfinished cases retried.
"""

from __future__ import annotations

import contextvars
import itertools
import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from evals.datasets import Case
from workbench.core.errors import EvalError
from workbench.core.tracing import Tracer
from workbench.core.tracing.spool import span_row

__all__ = ["run_on_ray"]

_CASE_SPANS: contextvars.ContextVar[list[tuple] | None] = contextvars.ContextVar(
    "ray_case_spans", default=None
)


class _CaseSpans:
    """A span sink that gives each case its spans (as the rows the spool writes): those ended
    while the case ran in this thread, and any ended elsewhere (kept for the next result)."""

    def __init__(self, redact: bool) -> None:
        self.redact = redact
        self.elsewhere: list[tuple] = []
        self.lock = threading.Lock()

    def emit(self, span) -> None:
        row = span_row(span, self.redact)
        target = _CASE_SPANS.get()
        if target is not None:
            target.append(row)
        else:
            with self.lock:
                self.elsewhere.append(row)

    def take_elsewhere(self) -> list[tuple]:
        with self.lock:
            rows, self.elsewhere = self.elsewhere, []
        return rows


class CaseRunner:
    """The subjects and judge of one run, in a worker. As a Ray actor: one per replica of a local
    model."""

    def __init__(self, service_class: type, root: str, run_id: str, settings: dict[str, Any]) -> None:
        """``service_class``: the facade's class, handed over by the driver (importing it here
        would make an import circle: the facade opens the evals service, which runs this)."""
        from workbench.core.workspace import Workspace

        Service = service_class
        config = Workspace.open(root).config.tracing
        self.sink = _CaseSpans(config.redact_payloads)
        service = Service(root, tracer=Tracer(self.sink, payload_sample_rate=config.payload_sample_rate))
        self.service = service
        self.subjects = {s.label: s for s in service.evals._subjects(run_id, settings)}
        self.judge = service.evals._judge(settings["judge"])

    def evaluate(self, label: str, case: Case) -> tuple[dict[str, Any], list[tuple]]:
        from evals.runner import evaluate

        spans: list[tuple] = []
        token = _CASE_SPANS.set(spans)
        try:
            row = evaluate(self.subjects[label], case, self.judge)
        finally:
            _CASE_SPANS.reset(token)
        return row, spans + self.sink.take_elsewhere()


_RUNNERS: dict[tuple[str, str], CaseRunner] = {}
_RUNNERS_LOCK = threading.Lock()


def _cloud_case(
    service_class: type, root: str, run_id: str, settings: dict[str, Any], label: str, case: Case
):
    """A Ray task: one cloud case (the worker process keeps the run's subjects between tasks)."""
    with _RUNNERS_LOCK:
        runner = _RUNNERS.get((root, run_id))
        if runner is None:
            runner = _RUNNERS[(root, run_id)] = CaseRunner(service_class, root, run_id, settings)
    return runner.evaluate(label, case)


def run_on_ray(
    ray,
    service,
    run_id: str,
    settings: dict[str, Any],
    subjects: list,
    cases: list[Case],
    done: set[tuple[str, str]],
    record: Callable[[dict[str, Any]], None],
    progress: Callable[[str, int, int], None] | None,
    concurrency: int,
    stop: threading.Event | None,
    parallel: int,
) -> None:
    root = str(service.workspace.root)
    gpus = int(ray.cluster_resources().get("GPU", 0))
    totals = {s.label: len(cases) for s in subjects}
    counts = {s.label: sum(1 for c in cases if (s.label, c.id) in done) for s in subjects}
    in_flight: dict[Any, tuple[str, str]] = {}
    actor_class = ray.remote(CaseRunner).options(
        num_cpus=1,
        num_gpus=1 if gpus else 0,
        max_concurrency=max(1, parallel),
        max_restarts=3,
        max_task_retries=3,
        scheduling_strategy="SPREAD",  # replicas and models on different nodes where there are several
    )
    todo = {s.label: [c for c in cases if (s.label, c.id) not in done] for s in subjects}
    local_models = {s.model for s in subjects if s.local and todo[s.label]}
    replicas = _replicas(service.config.ray.model_replicas, gpus, len(local_models))
    actors: dict[str, list[Any]] = {}
    turns: dict[str, Iterator[Any]] = {}  # each model's replicas in turn, for dealing its cases
    cloud: deque[tuple[str, Case]] = deque()
    for subject in subjects:
        if not subject.local:
            cloud.extend((subject.label, case) for case in todo[subject.label])
            continue
        if todo[subject.label] and subject.model not in actors:
            actors[subject.model] = [
                actor_class.remote(type(service), root, run_id, settings) for _ in range(replicas)
            ]
            turns[subject.model] = itertools.cycle(actors[subject.model])
        for case in todo[subject.label]:
            actor = next(turns[subject.model])
            in_flight[actor.evaluate.remote(subject.label, case)] = (subject.label, case.id)
    cloud_task = ray.remote(_cloud_case).options(num_cpus=0.25, max_retries=3)
    cloud_running = 0

    def top_up() -> None:
        nonlocal cloud_running
        while cloud and cloud_running < max(1, concurrency):
            label, case = cloud.popleft()
            in_flight[cloud_task.remote(type(service), root, run_id, settings, label, case)] = (
                label,
                "cloud:" + case.id,
            )
            cloud_running += 1

    top_up()
    try:
        while in_flight:
            if stop is not None and stop.is_set():
                break
            ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=0.5)
            for ref in ready:
                label, case_id = in_flight.pop(ref)
                if case_id.startswith("cloud:"):
                    cloud_running -= 1
                    case_id = case_id[len("cloud:") :]
                try:
                    row, spans = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    first = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
                    raise EvalError(
                        f"case {case_id} of {label} failed on the Ray cluster: {first}",
                        f"what finished is kept: workbench eval run --resume {run_id} --ray",
                    ) from None
                service.tracer.sink.emit_rows(spans)
                record(row)
                counts[label] += 1
                if progress is not None:
                    progress(label, counts[label], totals[label])
            top_up()
    finally:
        for ref in in_flight:
            ray.cancel(ref, force=True)
        for replicas_of_model in actors.values():
            for actor in replicas_of_model:
                ray.kill(actor)


def _replicas(configured: int, gpus: int, local_models: int) -> int:
    """Actors per local model: as configured, else the GPUs shared out (one model per GPU)."""
    if configured:
        return configured
    return max(1, gpus // local_models) if gpus and local_models else 1
