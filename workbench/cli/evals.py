"""`workbench eval`: datasets, runs, results, run-vs-run comparison and regression gates."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from workbench.cli._context import Context, ray_option
from workbench.cli._output import format_when, render_table
from workbench.core.errors import UsageError

__all__ = ["eval_group"]


@click.group("eval")
def eval_group() -> None:
    """Evals: datasets in <workspace>/evals, runs of models and workflows over them."""


@eval_group.command("datasets")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def eval_datasets(obj: Context, as_json: bool) -> None:
    """The datasets of this workspace, with their case counts (or what is wrong with them)."""
    rows = obj.service.evals.datasets()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    elif not rows:
        click.echo(
            f"no datasets yet: add JSONL files to {obj.service.evals.dir}, or `workbench eval import FILE.csv`"
        )
    else:
        for row in rows:
            row["cases"] = row["cases"] if row["problem"] is None else f"invalid: {row['problem']}"
        click.echo(render_table(rows, ["name", "cases", "tags"]))


@eval_group.command("import")
@click.argument("csv_file", type=click.Path(dir_okay=False))
@click.option("--name", help="Dataset name (default: the file's name).")
@click.pass_obj
def eval_import(obj: Context, csv_file: str, name: str | None) -> None:
    """Import a CSV (columns: input, and optionally id, expected, sources, tags) as a dataset."""
    path, count = obj.service.evals.import_csv(csv_file, name)
    click.echo(f"imported {count} cases into {path}")


@eval_group.command("add-traces")
@click.argument("dataset")
@click.argument("trace_ids", nargs=-1)
@click.option("--where", help='Pick traces with SQL over the traces view, e.g. "feedback_up > 0".')
@click.option("--edit", is_flag=True, help="Edit the cases in $EDITOR before they are saved.")
@click.option("--dry-run", is_flag=True, help="Print the cases as JSONL; save nothing.")
@click.pass_obj
def eval_add_traces(
    obj: Context, dataset: str, trace_ids: tuple[str, ...], where: str | None, edit: bool, dry_run: bool
) -> None:
    """Turn traces into eval cases of DATASET (created if new): the input as sent, the answer as
    expected (a liked answer: a regression case; a disliked one: a case to fix, with no expected
    answer until you write one), the retrieved files as expected sources."""
    evals = obj.service.evals
    cases, problems = evals.cases_from_traces(trace_ids, where)
    for problem in problems:
        click.echo(f"skipped: {problem}", err=True)
    text = "".join(json.dumps(case, ensure_ascii=False) + "\n" for case in cases)
    if dry_run:
        click.echo(text, nl=False)
        return
    if edit and cases:
        edited = click.edit(text, extension=".jsonl")
        if edited is None:
            click.echo("not saved: the editor was closed without saving", err=True)
            return
        cases = evals.parse_cases(edited, "the edited cases")
    path, added, refused = evals.add_cases(dataset, cases)
    for reason in refused:
        click.echo(f"refused: {reason}", err=True)
    click.echo(f"added {len(added)} case{'s' * (len(added) != 1)} to {path}")
    if not added:
        raise UsageError("no case was added", "see the reasons above")


def _gate_options(command):
    """The regression gate's options, shared by `eval run --baseline` and `eval compare`."""
    options = [
        click.option(
            "--fail-on-regression",
            type=float,
            metavar="DROP",
            help="Exit 10 when a metric fell by DROP or more (e.g. 0.02) and the fall is real (see --alpha).",
        ),
        click.option(
            "--alpha",
            type=float,
            default=0.05,
            show_default=True,
            help="With --fail-on-regression: a fall counts only when the one-sided paired test's p is under this.",
        ),
        click.option(
            "--min-cases",
            type=int,
            default=10,
            show_default=True,
            help="With --fail-on-regression: fewer paired cases fail the gate as 'not enough cases'.",
        ),
        click.option(
            "--allow-small", is_flag=True, help="Judge a gate with fewer than --min-cases cases anyway."
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@eval_group.command("run")
@click.argument("dataset", required=False)
@click.option(
    "--model", "-m", "models", multiple=True, help="Model to evaluate (repeatable): alias or ENDPOINT/MODEL."
)
@click.option(
    "--workflow", "-w", help="Run each case through this workflow, its generate nodes on each model."
)
@click.option("--template", default="{input}", show_default=True, help="Prompt template without a workflow.")
@click.option("--system", help="System prompt without a workflow.")
@click.option("--judge", help="Model that judges correctness and groundedness (JSON-constrained).")
@click.option("--max-tokens", default=128, show_default=True)
@click.option("--concurrency", default=4, show_default=True, help="Cloud requests at once.")
@click.option(
    "--parallel",
    default=4,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Cases of one local model decoded together.",
)
@click.option("--limit", type=int, help="Only the first N cases.")
@click.option("--resume", metavar="RUN_ID", help="Finish an interrupted run, skipping its finished cases.")
@click.option(
    "--retry-errors", is_flag=True, help="With --resume: run the cases that ended in an error again."
)
@ray_option("Run the cases")
@click.option("--baseline", metavar="RUN_ID", help="Compare against this run when done.")
@_gate_options
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def eval_run(
    obj: Context,
    dataset: str | None,
    models: tuple[str, ...],
    workflow: str | None,
    template: str,
    system: str | None,
    judge: str | None,
    max_tokens: int,
    concurrency: int,
    parallel: int,
    limit: int | None,
    resume: str | None,
    retry_errors: bool,
    ray: str | None,
    baseline: str | None,
    fail_on_regression: float | None,
    alpha: float,
    min_cases: int,
    allow_small: bool,
    as_json: bool,
) -> None:
    """Run MODELS (x WORKFLOW) over DATASET; results go to traces.duckdb beside the traces
    (run by the workspace's running gateway when there is one)."""
    if fail_on_regression is not None and not baseline:
        raise UsageError("--fail-on-regression needs --baseline RUN_ID", "name the run to compare against")
    if "{input}" not in template:
        raise UsageError("the template has no {input}", 'for example --template "Answer briefly: {input}"')
    from workbench.server.client import client_for
    from workbench.server.protocol.workbench import EvalRequest

    bars = _Bars(enabled=not as_json and sys.stderr.isatty())
    request = EvalRequest(
        dataset=dataset,
        models=list(models),
        workflow=workflow,
        template=template,
        system=system,
        judge=judge,
        max_tokens=max_tokens,
        concurrency=concurrency,
        limit=limit,
        resume=resume,
        retry_errors=retry_errors,
        parallel=parallel,
    )
    # A Ray run is driven from here: the cluster, not the gateway, holds its models. Through a
    # gateway, the run's models are loaded there, and their requests join the gateway's.
    client = client_for(obj.workspace, lambda: obj.service, in_process=ray is not None, ray=ray)
    run_id = client.eval_run(request, bars.update)
    bars.close()
    shown = obj.service.evals.show(run_id)
    errors = sum(1 for r in shown["results"] if r["error"])
    if errors:
        click.echo(
            f"{errors} case(s) ended in an error (see `workbench eval show {run_id} --cases`); run them "
            f"again with: workbench eval run --resume {run_id} --retry-errors",
            err=True,
        )
    if baseline and fail_on_regression is not None:
        comparison = obj.service.evals.gate(
            run_id, baseline, fail_on_regression, alpha, min_cases, allow_small
        )
    else:
        comparison = obj.service.evals.compare(baseline, run_id) if baseline else None
    if as_json:
        click.echo(
            json.dumps(
                {"run_id": run_id, "summary": shown["summary"], "comparison": comparison},
                indent=2,
                default=str,
            )
        )
    else:
        click.echo(f"run {run_id}: {shown['run']['status']}, {len(shown['results'])} results")
        _print_summary(shown["summary"], obj.service.evals.figures())
        if comparison:
            click.echo(f"\nagainst {baseline}:")
            _print_comparison(comparison, changed=5)
    if fail_on_regression is not None and comparison is not None:
        _enforce(obj, comparison, run_id, baseline)


class _Bars:
    """One progress line per subject on stderr, on a terminal."""

    def __init__(self, enabled: bool) -> None:
        self.enabled, self.state = enabled, {}

    def update(self, subject: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        self.state[subject] = (done, total)
        line = "  ".join(f"{s} {d}/{t}" for s, (d, t) in self.state.items())
        sys.stderr.write("\r" + line[-150:])
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled and self.state:
            sys.stderr.write("\n")


def _print_summary(summary: dict[str, dict[str, Any]], figures: list[tuple[str, str]]) -> None:
    present = [
        (key, label) for key, label in figures if any(s.get(key) is not None for s in summary.values())
    ]
    rows = [
        {"subject": subject, **{label: s.get(key) for key, label in present}}
        for subject, s in summary.items()
    ]
    click.echo(render_table(rows, ["subject"] + [label for _, label in present]))


def _enforce(obj: Context, gated: dict[str, Any], run_id: str, baseline: str) -> None:
    if gated["failed"]:
        raise obj.service.evals.regression(gated, run_id, baseline)  # exit 10
    click.echo(
        f"gate passed: no metric fell by {gated['threshold']:g} or more for real against {baseline}", err=True
    )


def _print_comparison(comparison: dict[str, Any], changed: int) -> None:
    rows = []
    gated = "failed" in comparison
    for m in comparison["metrics"]:
        row = {
            "metric": m["metric"],
            "n": m["n"],
            "a": m["a"],
            "b": m["b"],
            "delta": f"{m['delta']:+.3f}",
            "95% ci": f"{m['ci_low']:+.3f}..{m['ci_high']:+.3f}",
            "p": m["p_text"],
            "test": m["test"],
        }
        if gated:
            row.update({"p (fall)": m["p_fall_text"], "verdict": m["verdict"].upper(), "why": m["why"]})
        rows.append(row)
    columns = ["metric", "n", "a", "b", "delta", "95% ci", "p", "test"]
    columns += ["p (fall)", "verdict", "why"] if gated else []
    click.echo(render_table(rows, columns))
    for name in comparison.get("missing_metrics", []):
        click.echo(f"{name}: in the baseline, absent from the new run", err=True)
    if comparison.get("missing_cases"):
        click.echo(f"{comparison['missing_cases']} baseline case(s) are missing from the new run", err=True)
    cases = comparison["changed"]
    if cases:
        click.echo(
            f"\n{len(cases)} cases changed" + (f" (first {changed}):" if len(cases) > changed else ":")
        )
        for case in cases[:changed]:
            moved = ", ".join(f"{k} {a:g}->{b:g}" for k, (a, b) in case["metrics"].items()) or "error"
            click.echo(f"  {case['case_id']} [{case['subject']}] {moved}")
            click.echo(f"    a: {_short(case['output_a'])}\n    b: {_short(case['output_b'])}")


def _short(text: str | None, width: int = 110) -> str:
    text = " ".join((text or "-").split())
    return text if len(text) <= width else text[: width - 3] + "..."


@eval_group.command("list")
@click.option("--limit", default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def eval_list(obj: Context, limit: int, as_json: bool) -> None:
    """Recent eval runs."""
    rows = obj.service.evals.runs(limit)
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    for row in rows:
        row["started"] = format_when(row["created_ns"])
        row["subjects"] = ", ".join(row["subjects"])
        row["status"] = "interrupted" if row["status"] == "running" else row["status"]
    click.echo(
        render_table(rows, ["run_id", "dataset", "subjects", "status", "results", "started", "wall_s"])
    )


@eval_group.command("show")
@click.argument("run_id")
@click.option("--cases", is_flag=True, help="Also each case: output, metrics, judge verdicts, trace.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def eval_show(obj: Context, run_id: str, cases: bool, as_json: bool) -> None:
    """A run's figures per subject: quality against latency, tokens/s, cost and model size."""
    shown = obj.service.evals.show(run_id)
    if as_json:
        click.echo(json.dumps(shown, indent=2, default=str))
        return
    run = shown["run"]
    click.echo(f"run {run['run_id']} on {run['dataset']}: {run['status']}, wall {run['wall_s'] or 0:.1f} s")
    click.echo(f"reproducibility: {json.dumps(run['reproducibility'])}\n")
    _print_summary(shown["summary"], obj.service.evals.figures())
    if cases:
        for row in shown["results"]:
            metrics = ", ".join(f"{k} {v:.2f}" for k, v in (row["metrics"] or {}).items())
            click.echo(
                f"\n{row['case_id']} [{row['subject']}] {metrics}  trace {(row['trace_id'] or '-')[:16]}"
            )
            click.echo(f"  {_short(row['output'] or row['error'])}")
            for verdict in row["judge"] or []:
                click.echo(
                    f"  judge {verdict['criterion']}: "
                    + (
                        f"FAILED, raw: {_short(verdict['raw'], 80)}"
                        if verdict["failed"]
                        else f"{verdict['score']:.2f} ({_short(verdict.get('reason'), 70)})"
                    )
                )


@eval_group.command("compare")
@click.argument("run_a")
@click.argument("run_b")
@click.option("--subject-a", help="One subject of run A (when it has several).")
@click.option("--subject-b", help="One subject of run B.")
@click.option("--changed", default=10, show_default=True, help="How many changed cases to show.")
@_gate_options
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def eval_compare(
    obj: Context,
    run_a: str,
    run_b: str,
    subject_a: str | None,
    subject_b: str | None,
    changed: int,
    fail_on_regression: float | None,
    alpha: float,
    min_cases: int,
    allow_small: bool,
    as_json: bool,
) -> None:
    """RUN_B against RUN_A: per-metric deltas with paired tests, and the cases that changed;
    with --fail-on-regression, the gate's verdict per metric (exit 10 on a regression)."""
    if fail_on_regression is None:
        comparison = obj.service.evals.compare(run_a, run_b, subject_a, subject_b)
    else:
        comparison = obj.service.evals.gate(
            run_b, run_a, fail_on_regression, alpha, min_cases, allow_small, subject_a, subject_b
        )
    if as_json:
        click.echo(json.dumps(comparison, indent=2, default=str))
    else:
        click.echo(f"{comparison['pairs']} paired cases")
        _print_comparison(comparison, changed)
    if fail_on_regression is not None:
        _enforce(obj, comparison, run_b, run_a)
