"""Evals as the service layer offers them: datasets in <workspace>/evals/, runs of models (and
workflows) over a dataset with results in traces.duckdb, run-vs-run comparison and gates."""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from evals.datasets import NAME, Case, Dataset, csv_to_cases, load_dataset
from evals.storage import EvalStore
from workbench.core.errors import EvalError, RegressionError, UsageError, WorkbenchError

__all__ = ["Evals"]

# Every figure of a run's summary, in the order the app and the CLI show them, with a short
# label: the quality metrics in evals.metrics.QUALITY order (the one list), then speed and cost.
_LABELS = {
    "json_valid": "json",
    "recall_at_k": "recall@k",
    "correctness": "correct",
    "groundedness": "grounded",
}
_OPERATIONAL = (
    ("latency_p50_s", "p50 s"),
    ("latency_p95_s", "p95 s"),
    ("ttft_p50_s", "ttft s"),
    ("tokens_per_s", "tok/s"),
    ("cost_usd", "cost $"),
    ("model_size_mb", "MB"),
    ("errors", "errors"),
    ("judge_failures", "judge fails"),
)


def _figures() -> list[tuple[str, str]]:
    from evals.metrics import QUALITY

    return [(name, _LABELS.get(name, name)) for name in QUALITY] + list(_OPERATIONAL)


class Evals:
    @staticmethod
    def figures() -> list[tuple[str, str]]:
        """(key, label) of every figure a run summary can hold, quality metrics first."""
        return _figures()

    @staticmethod
    def quality_metrics() -> list[str]:
        from evals.metrics import QUALITY

        return list(QUALITY)

    def __init__(self, service) -> None:
        self.service = service
        self.dir: Path = service.workspace.evals_dir
        self.storage = EvalStore(service.store)

    # -- datasets -----------------------------------------------------------------------------

    def path(self, name: str) -> Path:
        if not NAME.match(name):
            raise EvalError(f"{name!r} is not a dataset name", "use letters, digits, _, . or -")
        return self.dir / f"{name}.jsonl"

    def dataset(self, name: str) -> Dataset:
        path = self.path(name)
        if not path.is_file():
            known = ", ".join(p.stem for p in sorted(self.dir.glob("*.jsonl"))) or "none yet"
            raise EvalError(
                f"no dataset {name!r} in {self.dir} (datasets: {known})",
                f"add {path}, or `workbench eval import FILE.csv --name {name}`",
            )
        return load_dataset(path)

    def datasets(self) -> list[dict[str, Any]]:
        rows = []
        for path in sorted(self.dir.glob("*.jsonl")) if self.dir.is_dir() else []:
            try:
                data = load_dataset(path)
                rows.append(
                    {
                        "name": data.name,
                        "cases": len(data.cases),
                        "tags": ", ".join(data.tags),
                        "problem": None,
                    }
                )
            except EvalError as exc:
                rows.append(
                    {"name": path.stem, "cases": None, "tags": "", "problem": exc.message.splitlines()[0]}
                )
        return rows

    def import_csv(self, source: str, name: str | None = None) -> tuple[Path, int]:
        path = Path(source)
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise EvalError(f"cannot read {path}: {exc}", "give a UTF-8 CSV file with a header row") from None
        cases = csv_to_cases(text, str(path))
        target = self.path(name or path.stem)
        if target.exists():
            raise EvalError(f"{target} already exists", "pick another --name, or delete it first")
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_text(
            "".join(json.dumps(c.as_dict(), ensure_ascii=False) + "\n" for c in cases), encoding="utf-8"
        )
        tmp.replace(target)
        return target, len(cases)

    def cases_from_traces(
        self, trace_ids: list[str] | tuple[str, ...] = (), where: str | None = None
    ) -> tuple[list[dict[str, Any]], list[str]]:
        """Eval cases from traces (ids or prefixes, and/or those a SQL condition over the
        `traces` view picks); returns (cases, why some traces gave none)."""
        from evals.from_traces import case_from_trace

        service = self.service
        service.flush_traces()
        ids = [service.get_trace(t)[0]["trace_id"] for t in trace_ids]
        if where:
            _, rows = service.sql(f"SELECT trace_id FROM traces WHERE {where} ORDER BY start_ns")
            ids += [row[0] for row in rows if row[0] not in ids]
        if not ids:
            raise EvalError("no traces to add", "name trace ids, or pick some with --where")
        spans: dict[str, list[dict[str, Any]]] = {}
        for span in service.store.spans_of(ids):
            spans.setdefault(span["trace_id"], []).append(span)
        cases, problems = [], []
        for trace_id in ids:
            try:
                cases.append(case_from_trace(spans[trace_id], service.trace_feedback(trace_id)))
            except ValueError as exc:
                problems.append(str(exc))
        return cases, problems

    @staticmethod
    def parse_cases(text: str, what: str) -> list[dict[str, Any]]:
        """Cases written as JSONL (edited by hand before saving): a bad line is reported with its
        number, and then none is kept."""
        from evals.datasets import parse_jsonl

        parse_jsonl(text, what)
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def add_cases(self, name: str, cases: list[dict[str, Any]]) -> tuple[Path, list[str], list[str]]:
        """Append cases to dataset ``name`` (created if new); a case that asks what the dataset
        already asks is refused, as is one that is not a valid case. Returns (path, the ids
        added, why others were refused). The file is replaced whole, so a crash loses nothing."""
        from evals.datasets import parse_jsonl
        from evals.from_traces import same_input

        path = self.path(name)
        existing = self.dataset(name).cases if path.exists() else []
        known = [(c.id, c.input) for c in existing]
        lines, added, refused = [], [], []
        for data in cases:
            case_id, text = str(data.get("id", "")), str(data.get("input", ""))
            twin = next((other for other, asked in known if same_input(asked, text)), None)
            if twin is not None:
                refused.append(f"{case_id}: {name} already asks this (case {twin})")
                continue
            if any(case_id == other for other, _ in known):
                refused.append(f"{case_id}: {name} already has a case with this id")
                continue
            line = json.dumps(data, ensure_ascii=False)
            try:
                parse_jsonl(line, f"case {case_id}")
            except EvalError as exc:
                refused.append(exc.message.replace("\n  ", " "))
                continue
            lines.append(line + "\n")
            known.append((case_id, text))
            added.append(case_id)
        if lines:
            self.dir.mkdir(parents=True, exist_ok=True)
            before = path.read_text(encoding="utf-8") if path.exists() else ""
            if before and not before.endswith("\n"):
                before += "\n"
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(before + "".join(lines), encoding="utf-8")
            tmp.replace(path)
        return path, added, refused

    # -- runs -----------------------------------------------------------------------------------

    def run(
        self,
        dataset: str | None = None,
        models: list[str] | None = None,
        workflow: str | None = None,
        template: str = "{input}",
        system: str | None = None,
        judge: str | None = None,
        max_tokens: int = 128,
        concurrency: int = 4,
        limit: int | None = None,
        resume: str | None = None,
        progress: Callable[[str, int, int], None] | None = None,
        stop: threading.Event | None = None,
        retry_errors: bool = False,
        parallel: int = 4,
        ray: str | None = None,
    ) -> str:
        """Run (or resume) an eval; returns its run id. Results are written as cases finish.
        ``retry_errors`` with ``resume``: cases that ended in an error (a cloud outage, a timeout)
        run again; their old rows go first, so a kill meanwhile leaves them to the next resume.
        ``parallel``: cases of one local model in flight at once (decoded together). ``ray``: on
        a Ray cluster at this address ("": [ray] address, or a Ray of its own; None: here)."""
        from evals.runner import run_cases

        if ray is not None:  # before a run is recorded: one that cannot start leaves nothing
            from workbench.core.ray_cluster import check_ray_target

            check_ray_target(self.service.config, ray)
        if resume:
            run = self.run_row(resume)
            settings, run_id = run["settings"], run["run_id"]
            data = self.dataset(run["dataset"])
            if data.sha256 != run["dataset_sha256"]:
                raise EvalError(
                    f"dataset {run['dataset']} changed since run {run_id} started",
                    "start a new run; a resumed one must see the same cases",
                )
            if retry_errors:
                self.storage.forget_errors(run_id)
            done = self.storage.finished_cases(run_id)
        else:
            if retry_errors:
                raise UsageError(
                    "--retry-errors goes with --resume RUN_ID",
                    "workbench eval run --resume RUN_ID --retry-errors",
                )
            if not dataset or not models:
                raise UsageError(
                    "an eval needs a dataset and at least one model", "workbench eval run DATASET -m MODEL"
                )
            data = self.dataset(dataset)
            settings = {
                "models": list(dict.fromkeys(models)),
                "workflow": workflow,
                "template": template,
                "system": system,
                "judge": judge,
                "max_tokens": max_tokens,
                "limit": limit,
            }
            run_id = f"{data.name}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
            done = set()
        cases = data.cases[: settings["limit"]] if settings.get("limit") else data.cases
        subjects = self._subjects(run_id, settings)
        if not resume:
            self.storage.create_run(
                run_id,
                data.name,
                data.sha256,
                [s.label for s in subjects],
                settings,
                self._reproducibility(settings, data),
            )
        judge_ = self._judge(settings["judge"])
        writer = self.storage.writer(run_id)
        started = time.perf_counter()
        status = "failed"
        try:
            # No span around the run: each case is a trace of its own (eval.case), linked by run id.
            if ray is None:
                run_cases(subjects, cases, done, judge_, writer, progress, concurrency, stop, parallel)
            else:
                from workbench.core.ray_cluster import ray_session
                from workbench.services.ray_evals import run_on_ray

                with ray_session(self.service.config, ray, self.service.workspace.root) as connected:
                    run_on_ray(
                        connected,
                        self.service,
                        run_id,
                        settings,
                        subjects,
                        cases,
                        done,
                        writer,
                        progress,
                        concurrency,
                        stop,
                        parallel,
                    )
            status = "stopped" if stop is not None and stop.is_set() else "done"
        finally:
            writer.flush()
            self.service.flush_traces()
            self.storage.finish_run(run_id, status, time.perf_counter() - started)
        return run_id

    def _subjects(self, run_id: str, settings: dict[str, Any]):
        from evals.runner import Subject

        spec = self.service.workflows.validate(settings["workflow"]) if settings["workflow"] else None
        subjects = []
        for model in settings["models"]:
            if self.service.is_local(model):
                from local_models.catalog import resolve_model

                info = resolve_model(self.service.workspace, model)  # a bad name fails before any case runs
                if info.kind != "gguf" or not info.present:
                    raise EvalError(
                        f"{model} is not a chat model in this workspace", "see `workbench models list`"
                    )
            label = f"{settings['workflow']}@{model}" if spec else model
            subjects.append(
                Subject(
                    label,
                    model,
                    settings["workflow"],
                    self.service.is_local(model),
                    self._runner(run_id, label, model, spec, settings),
                )
            )
        return subjects

    def _runner(self, run_id: str, label: str, model: str, spec, settings: dict[str, Any]):
        from agents.spec import GenerateNode
        from evals.runner import Outcome
        from local_models.types import GenerationParams

        if spec is not None:  # the workflow's answering nodes run on the subject's model
            spec = spec.model_copy(deep=True)
            for node in spec.nodes.values():
                if isinstance(node, GenerateNode):
                    node.model = model
        params = GenerationParams(temperature=0.0, max_tokens=settings["max_tokens"], seed=0)

        def run(case: Case) -> Outcome:
            usage: list = []
            calls: list[dict[str, Any]] | None = None
            attributes = {
                "workbench.eval.run_id": run_id,
                "workbench.eval.case_id": case.id,
                "workbench.eval.subject": label,
            }
            with self.service.tracer.span("eval.case", "eval", attributes) as span:
                span.set_payload(input=case.input)
                if spec is not None:
                    state, _ = self.service.workflows.invoke(spec, case.input, usage)
                    answer = state.get("answer")
                    output = answer if isinstance(answer, str) else json.dumps(answer)
                    retrieved = (
                        [
                            {"path": c["path"], "text": c["text"]}
                            for c in state.get("context") or []
                            if isinstance(c, dict) and "path" in c
                        ]
                        if "context" in state
                        else None
                    )
                else:
                    messages = (
                        [{"role": "system", "content": settings["system"]}] if settings["system"] else []
                    ) + [{"role": "user", "content": settings["template"].replace("{input}", case.input)}]
                    asked = replace(params, tools=case.tools, tool_choice="auto") if case.tools else params
                    result = self.service.chat(model, messages, asked)
                    usage.append(result)
                    output, retrieved = result.text, None
                    if case.tools:  # its calls are its answer: shown as the JSON of them
                        calls = [
                            {
                                "name": c["function"]["name"],
                                "arguments": json.loads(c["function"]["arguments"]),
                            }
                            for c in result.tool_calls or []
                        ]
                        output = json.dumps(calls, ensure_ascii=False) if calls else output
                span.set_payload(output=output)
            return Outcome(output or "", span.trace_id, retrieved, _usage(usage), calls)

        return run

    def _judge(self, model: str | None):
        if not model:
            return None
        from evals.judges import Judge
        from local_models.types import GenerationParams

        def chat(name: str, messages: list[dict[str, str]], params: dict[str, Any]) -> str:
            generation = GenerationParams(
                temperature=params["temperature"],
                max_tokens=params["max_tokens"],
                seed=params["seed"],
                json_schema=params["json_schema"],
            )
            return self.service.chat(name, messages, generation).text

        return Judge(model, chat)

    def _reproducibility(self, settings: dict[str, Any], data: Dataset) -> dict[str, Any]:
        """What it takes to run this eval again and get the same numbers."""
        from local_models.catalog import resolve_model

        record: dict[str, Any] = {
            "dataset_sha256": data.sha256,
            "models": {},
            "workflow": None,
            "collections": {},
        }
        manifest = {}
        manifest_path = self.service.workspace.models_dir / "manifest.json"
        if manifest_path.is_file():
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        for model in settings["models"] + ([settings["judge"]] if settings["judge"] else []):
            if not self.service.is_local(model):
                record["models"][model] = {"kind": "cloud"}
                continue
            info = resolve_model(self.service.workspace, model)
            sha = (manifest.get(info.alias) or {}).get("sha256") or _sha256(info.path)
            record["models"][model] = {"path": str(info.path), "size": info.size_bytes, "sha256": sha}
        if settings["workflow"]:
            from agents.spec import GenerateNode, RetrieveNode

            text = self.service.workflows.text(settings["workflow"])
            spec = self.service.workflows.load(settings["workflow"])
            record["workflow"] = {
                "name": settings["workflow"],
                "sha256": hashlib.sha256(text.encode()).hexdigest(),
            }
            record["prompts"] = {
                n.prompt.id: n.prompt.version for n in spec.nodes.values() if isinstance(n, GenerateNode)
            }
            for node in spec.nodes.values():
                if isinstance(node, RetrieveNode):
                    record["collections"][node.collection] = self.service.collection(node.collection)[
                        "version"
                    ]
        else:
            record["prompts"] = {"template": settings["template"], "system": settings["system"]}
        config_text = (
            self.service.workspace.config_path.read_text(encoding="utf-8")
            if self.service.workspace.config_path.exists()
            else ""
        )
        record["config_sha256"] = hashlib.sha256(config_text.encode()).hexdigest()
        record["generation"] = {"temperature": 0.0, "seed": 0, "max_tokens": settings["max_tokens"]}
        return record

    # -- reading runs ---------------------------------------------------------------------------

    def runs(self, limit: int = 50) -> list[dict[str, Any]]:
        return self.storage.runs(limit)

    def run_row(self, run_id: str) -> dict[str, Any]:
        return self.storage.run_row(run_id)

    def results(self, run_id: str) -> list[dict[str, Any]]:
        return self.storage.results(self.run_row(run_id)["run_id"])

    def show(self, run_id: str) -> dict[str, Any]:
        """The run, and per subject its figures: quality against latency, tokens/s and cost."""
        from evals.metrics import summarize

        run = self.run_row(run_id)
        rows = self.results(run["run_id"])
        summaries = {}
        for subject in run["subjects"]:
            summary = summarize([r for r in rows if r["subject"] == subject])
            summary["model_size_mb"] = self._model_size(subject.split("@")[-1])
            summaries[subject] = summary
        return {"run": run, "summary": summaries, "results": rows}

    def matrix(self, run_ids: list[str]) -> dict[str, Any]:
        """Every case against every subject of ``run_ids`` (a run, and its baseline), as
        promptfoo's viewer lays it out: {"columns": [{"run_id", "subject"}], "rows": [{"case_id",
        "cells": [{"verdict", "output", "metrics"} or None]}]}, cases in the first run's order.

        A cell's verdict: "error" when the case failed to run; else by the most specific metric
        it has: tool_call, json_valid, contains or exact must be 1; with none of those, the
        judge's correctness, else F1, at least 0.5; None when it has no metric to judge by."""
        columns: list[dict[str, str]] = []
        by_case: dict[str, dict[tuple[str, str], dict]] = {}
        for run_id in run_ids:
            run = self.run_row(run_id)
            for subject in run["subjects"]:
                columns.append({"run_id": run["run_id"], "subject": subject})
            for row in self.results(run["run_id"]):
                by_case.setdefault(row["case_id"], {})[(run["run_id"], row["subject"])] = row
        rows = []
        for case_id, found in by_case.items():
            cells = []
            for column in columns:
                result = found.get((column["run_id"], column["subject"]))
                cells.append(
                    None
                    if result is None
                    else {
                        "verdict": _verdict(result),
                        "output": result["output"] or result["error"] or "",
                        "metrics": result["metrics"] or {},
                    }
                )
            rows.append({"case_id": case_id, "cells": cells})
        return {"columns": columns, "rows": rows}

    def _model_size(self, model: str) -> float | None:
        from local_models.catalog import resolve_model

        if not self.service.is_local(model):
            return None
        try:
            return round(resolve_model(self.service.workspace, model).size_bytes / 1e6, 1)
        except WorkbenchError:
            return None

    def compare(
        self, run_a: str, run_b: str, subject_a: str | None = None, subject_b: str | None = None
    ) -> dict[str, Any]:
        """Run b against run a (the baseline); ``subject_*`` picks one subject of a run."""
        from evals.compare import compare_rows

        rows_a, rows_b = self.results(run_a), self.results(run_b)
        for rows, subject, run in ((rows_a, subject_a, run_a), (rows_b, subject_b, run_b)):
            if subject is not None:
                kept = [r for r in rows if r["subject"] == subject]
                if not kept:
                    subjects = ", ".join(sorted({r["subject"] for r in rows}))
                    raise EvalError(f"run {run} has no subject {subject!r}", f"its subjects: {subjects}")
                rows[:] = kept
        comparison = compare_rows(rows_a, rows_b)
        if not comparison["pairs"]:
            raise EvalError(
                f"runs {run_a} and {run_b} share no cases of the same subject",
                "compare runs over the same dataset; pick one subject of each with --subject-a/--subject-b",
            )
        return comparison

    def gate(
        self,
        run_id: str,
        baseline: str,
        threshold: float,
        alpha: float | None = None,
        min_cases: int | None = None,
        allow_small: bool = False,
        subject_a: str | None = None,
        subject_b: str | None = None,
    ) -> dict[str, Any]:
        """The comparison of ``run_id`` against ``baseline`` and, per metric, the gate's verdict
        and why (evals/compare.py: a fall of at least ``threshold`` that the one-sided paired
        test at ``alpha`` calls real). ``failed`` lists the metrics that fail it."""
        from evals.compare import ALPHA, MIN_CASES, gate

        if threshold < 0 or not 0 < (alpha if alpha is not None else ALPHA) < 1:
            raise UsageError(
                f"threshold {threshold:g} / alpha {alpha} out of range", "use a DROP >= 0, 0 < alpha < 1"
            )
        comparison = self.compare(baseline, run_id, subject_a, subject_b)
        verdicts = gate(
            comparison,
            threshold,
            ALPHA if alpha is None else alpha,
            MIN_CASES if min_cases is None else min_cases,
            allow_small,
        )
        failed = [v["metric"] for v in verdicts if v["verdict"] == "fail"]
        return {**comparison, "metrics": verdicts, "failed": failed, "threshold": threshold}

    @staticmethod
    def regression(result: dict[str, Any], run_id: str, baseline: str) -> RegressionError:
        """The error a failed gate exits with (code 10), naming each failed metric and why."""
        reasons = "; ".join(f"{v['metric']}: {v['why']}" for v in result["metrics"] if v["verdict"] == "fail")
        return RegressionError(
            f"run {run_id} regressed against {baseline}: {reasons}",
            "see the table above, and `workbench eval compare` for the cases that changed",
        )


def _usage(results: list) -> dict[str, Any]:
    if not results:
        return {}
    ttfts = [r.ttft_s for r in results if r.ttft_s is not None]
    return {
        "model_s": sum(r.duration_s for r in results),
        "ttft_s": ttfts[0] if ttfts else None,
        "input_tokens": sum(r.input_tokens for r in results),
        "output_tokens": sum(r.output_tokens for r in results),
        "cost_usd": sum(r.cost_usd for r in results),
    }


_HASHES: dict[tuple, str] = {}


def _sha256(path: Path) -> str:
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _HASHES:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _HASHES[key] = digest.hexdigest()
    return _HASHES[key]


def _verdict(row: dict[str, Any]) -> str | None:
    """A result's pass/fail (Evals.matrix says how)."""
    if row["error"]:
        return "error"
    metrics = row["metrics"] or {}
    for name in _VERDICT_BY:
        value = metrics.get(name)
        if value is not None:
            return "pass" if value >= (1 if name in _PASS_FAIL else 0.5) else "fail"
    return None


# The metric a cell's pass/fail follows: the most specific the case has. "exact" comes after
# "contains": an answer that says "The capital is Paris." passes a case expecting "Paris".
_PASS_FAIL = ("tool_call", "json_valid", "contains", "exact")
_VERDICT_BY = (*_PASS_FAIL, "correctness", "f1")
