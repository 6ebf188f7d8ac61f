"""Evals: datasets and runs; launching a run with a progress bar per subject; a run's figures per
subject, its cases and a case drill-down; run-vs-run diff; quality against latency and cost."""

from __future__ import annotations

import asyncio
import threading

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import DataTable, Input, Label, ProgressBar, Static, TabbedContent, TabPane
from textual_plotext import PlotextPlot

from tui.markup import escape
from tui.screens.base import BaseScreen
from tui.table import Table

_ROWS_PER_TURN = 200  # result rows added before the event loop gets a turn


_VERDICTS = {"pass": ("✓", "green"), "fail": ("✗", "red"), "error": ("!", "red"), None: ("·", "dim")}


def _matrix_cell(cell: dict | None) -> Text:
    """A matrix cell: the verdict's mark in its colour, then the start of the output."""
    if cell is None:
        return Text("not run", style="dim")
    mark, style = _VERDICTS[cell["verdict"]]
    text = Text(f"{mark} ", style=f"bold {style}")
    text.append(" ".join(cell["output"].split())[:40], style=style if cell["verdict"] != "pass" else "")
    return text


def _fmt(value) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}" if isinstance(value, float) else str(value)


class EvalsScreen(BaseScreen):
    MODE = "evals"
    PANE_TITLES = {
        "#ev-datasets": "datasets",
        "#ev-runs": "runs",
        "#ev-cases": "cases",
        "#ev-case-box": "case",
        "#ev-matrix": "cases x models",
        "#ev-cell-box": "answer",
        "#ev-models": "models",
        "#ev-workflow": "workflow",
        "#ev-judge": "judge",
    }
    BINDINGS = [
        Binding("ctrl+r", "refresh", "Refresh"),
        Binding("ctrl+b", "baseline", "Set baseline"),
        Binding("ctrl+t", "open_trace", "Open trace"),
        Binding("ctrl+e", "resume", "Resume/retry errors"),
        Binding("ctrl+s", "stop", "Stop run"),
        Binding("ctrl+o", "next_tab", "Results/Matrix/Chart/Diff"),
        Binding("f", "failures_only", "Failures only", show=False),
    ]

    class Listed(Message):
        def __init__(self, datasets: list[dict], runs: list[dict]) -> None:
            super().__init__()
            self.datasets, self.runs = datasets, runs

    class Progressed(Message):
        def __init__(self, subject: str, done: int, total: int) -> None:
            super().__init__()
            self.subject, self.done, self.total = subject, done, total

    class Shown(Message):
        def __init__(self, shown: dict, cases: dict) -> None:
            super().__init__()
            self.shown, self.cases = shown, cases  # cases: the dataset's, by id

    class Matrixed(Message):
        def __init__(self, matrix: dict) -> None:
            super().__init__()
            self.matrix = matrix

    class Compared(Message):
        def __init__(self, baseline: str, run_id: str, comparison: dict) -> None:
            super().__init__()
            self.baseline, self.run_id, self.comparison = baseline, run_id, comparison

    def __init__(self) -> None:
        super().__init__()
        self.dataset: str | None = None
        self.run_id: str | None = None
        self.baseline: str | None = None
        self.shown: dict | None = None
        self.cases: dict = {}
        self.bars: dict[str, ProgressBar] = {}
        self.trace_id: str | None = None
        self.stop_event = threading.Event()  # of the run in flight: set by ctrl+s
        self.matrix: dict | None = None
        self.listed: tuple | None = None  # the datasets and runs on the tables
        self.restoring: str | None = None  # set while rebuilt tables find their rows again
        self.failures_only = False

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="ev-main"):
            with Vertical(id="ev-side"):
                datasets = Table(id="ev-datasets", cursor_type="row")
                datasets.add_columns("dataset", "cases", "tags")
                yield datasets
                yield Input(placeholder="models, comma separated (enter runs the dataset)", id="ev-models")
                yield Input(placeholder="workflow (optional)", id="ev-workflow")
                yield Input(placeholder="judge model (optional)", id="ev-judge")
                yield Vertical(id="ev-progress")
                runs = Table(id="ev-runs", cursor_type="row")
                runs.add_columns("run", "subjects", "status", "results")
                yield runs
            with TabbedContent(id="ev-tabs"):
                with TabPane("Results", id="ev-tab-results"):
                    summary = Table(id="ev-summary", cursor_type="row")
                    yield summary
                    with Horizontal(id="ev-case-row"):
                        cases = Table(id="ev-cases", cursor_type="row")
                        cases.add_columns("case", "subject", "contains", "f1", "judge", "latency s")
                        yield cases
                        with VerticalScroll(id="ev-case-box"):
                            yield Static("", id="ev-case")
                with TabPane("Matrix", id="ev-tab-matrix"):
                    yield Static(
                        "every case against every model of the run (and of the baseline); f: failures only",
                        id="ev-matrix-note",
                    )
                    with Horizontal(id="ev-matrix-row"):
                        yield Table(id="ev-matrix", cursor_type="cell")
                        with VerticalScroll(id="ev-cell-box"):
                            yield Static("", id="ev-cell")
                with TabPane("Quality vs cost", id="ev-tab-chart"):
                    yield PlotextPlot(id="ev-chart")
                with TabPane("Diff", id="ev-tab-diff"):
                    with VerticalScroll():
                        yield Static(
                            "ctrl+b on a run makes it the baseline; then pick another run.", id="ev-diff"
                        )

    def on_mount(self) -> None:
        self.action_refresh()

    def action_refresh(self) -> None:
        self.load_lists()

    @work(thread=True, exclusive=True, group="ev-list", exit_on_error=False, description="evals")
    def load_lists(self) -> None:
        self.post_message(self.Listed(self.service.evals.datasets(), self.service.evals.runs()))

    def on_screen_resume(self) -> None:
        # Shown again: datasets added and runs made meanwhile (the CLI, another terminal) are
        # listed. Not on the first showing: on_mount has just listed them.
        if self.shown_before:
            self.load_lists()
        self.shown_before = True

    def on_evals_screen_listed(self, message: Listed) -> None:
        listed = (
            [(d["name"], d["cases"], d["problem"]) for d in message.datasets],
            [(r["run_id"], r["status"], r["results"]) for r in message.runs],
        )
        if listed == self.listed:
            return  # nothing changed: the cursors and the run on show stay as they are
        self.listed = listed
        # Rebuilt tables put their cursors on row 0, and a highlighted run is shown: until the
        # cursor is back on the run on show, those highlights are not the user's.
        self.restoring = self.run_id
        self.call_after_refresh(setattr, self, "restoring", None)
        datasets = self.query_one("#ev-datasets", DataTable)
        datasets.clear()
        for row in message.datasets:
            datasets.add_row(
                row["name"],
                row["cases"] if row["problem"] is None else "invalid",
                row["tags"],
                key=row["name"],
            )
        if message.datasets and self.dataset is None:
            self.dataset = message.datasets[0]["name"]
        runs = self.query_one("#ev-runs", DataTable)
        runs.clear()
        for row in message.runs:
            status = "interrupted" if row["status"] == "running" and not self.bars else row["status"]
            runs.add_row(row["run_id"], ", ".join(row["subjects"]), status, row["results"], key=row["run_id"])
        if not message.datasets:
            self.query_one("#ev-case", Static).update(
                f"No datasets yet: add JSONL files to {escape(str(self.service.evals.dir))} "
                "(one case per line: id, input, expected, sources, tags)."
            )
        elif not message.runs:
            self.query_one("#ev-case", Static).update(
                "No runs yet: pick a dataset, name models on the left (comma separated), enter. "
                "The figures per model, the cases and a case's answers show here."
            )
        if message.runs and self.run_id is None:
            self.show_run(message.runs[0]["run_id"])
        keys = [r["run_id"] for r in message.runs]
        if self.run_id in keys:
            runs.move_cursor(row=keys.index(self.run_id), animate=False)
        names = [d["name"] for d in message.datasets]
        if self.dataset in names:
            datasets.move_cursor(row=names.index(self.dataset), animate=False)

    @on(DataTable.RowHighlighted, "#ev-datasets")
    def pick_dataset(self, event: DataTable.RowHighlighted) -> None:
        if self.restoring is None:
            self.dataset = str(event.row_key.value)

    @on(DataTable.RowHighlighted, "#ev-runs")
    def pick_run(self, event: DataTable.RowHighlighted) -> None:
        if self.restoring is not None:
            return
        if event.row_key.value and event.row_key.value != self.run_id:
            self.show_run(str(event.row_key.value))

    # -- launching a run --------------------------------------------------------------------

    @on(Input.Submitted, "#ev-models, #ev-workflow, #ev-judge")
    def launch(self) -> None:
        models = [m.strip() for m in self.query_one("#ev-models", Input).value.split(",") if m.strip()]
        if not self.dataset or not models:
            self.notify("Pick a dataset and name at least one model.", severity="warning")
            return
        workflow = self.query_one("#ev-workflow", Input).value.strip() or None
        judge = self.query_one("#ev-judge", Input).value.strip() or None
        self._progress_bars([f"{workflow}@{model}" if workflow else model for model in models])
        self.stop_event = threading.Event()
        self.run_eval(self.dataset, models, workflow, judge, self.stop_event)

    def _progress_bars(self, labels: list[str]) -> None:
        box = self.query_one("#ev-progress", Vertical)
        box.remove_children()
        self.bars = {}
        for label in labels:
            bar = ProgressBar(total=None, show_eta=False, id=None)
            self.bars[label] = bar
            box.mount(Horizontal(Label(f"{label} ", classes="ev-bar-label"), bar, classes="ev-bar"))

    def action_resume(self) -> None:
        """Finish the selected run: its missing cases (a killed run) and those that ended in an error."""
        if self.run_id is None or self.shown is None:
            self.notify("Pick a run first.", severity="warning")
            return
        self._progress_bars(list(self.shown["run"]["subjects"]))
        self.stop_event = threading.Event()
        self.resume_eval(self.run_id, self.stop_event)

    def action_stop(self) -> None:
        """Stop the running eval after the cases in flight; ctrl+e on it later finishes it."""
        if all(w.is_finished for w in self.workers if w.group == "ev-run"):
            self.notify("No eval is running.", severity="warning")
            return
        self.stop_event.set()
        self.notify("Stopping after the cases in flight; ctrl+e on the run resumes it.")

    @work(thread=True, exclusive=True, group="ev-run", exit_on_error=False, description="eval resume")
    def resume_eval(self, run_id: str, stop: threading.Event) -> None:
        self.service.evals.run(
            resume=run_id,
            retry_errors=True,
            stop=stop,
            progress=lambda s, d, t: self.post_message(self.Progressed(s, d, t)),
        )
        self.post_message(self._shown(run_id))
        self.post_message(self._matrixed(run_id, self.baseline))
        self.post_message(self.Listed(self.service.evals.datasets(), self.service.evals.runs()))

    @work(thread=True, exclusive=True, group="ev-run", exit_on_error=False, description="eval run")
    def run_eval(
        self, dataset: str, models: list[str], workflow: str | None, judge: str | None, stop: threading.Event
    ) -> None:
        run_id = self.service.evals.run(
            dataset,
            models,
            workflow,
            judge=judge,
            max_tokens=64,
            stop=stop,
            progress=lambda s, d, t: self.post_message(self.Progressed(s, d, t)),
        )
        self.post_message(self._shown(run_id))
        self.post_message(self._matrixed(run_id, self.baseline))
        self.post_message(self.Listed(self.service.evals.datasets(), self.service.evals.runs()))

    def on_evals_screen_progressed(self, message: Progressed) -> None:
        bar = self.bars.get(message.subject)
        if bar is not None:
            bar.update(total=message.total, progress=message.done)

    # -- a run's results ----------------------------------------------------------------------

    def show_run(self, run_id: str) -> None:
        self.run_id = run_id
        self.load_run(run_id, self.baseline)

    @work(thread=True, exclusive=True, group="ev-show", exit_on_error=False, description="eval results")
    def load_run(self, run_id: str, baseline: str | None) -> None:
        self.post_message(self._shown(run_id))
        self.post_message(self._matrixed(run_id, baseline))
        if baseline and baseline != run_id:
            self.post_message(self.Compared(baseline, run_id, self.service.evals.compare(baseline, run_id)))

    def _matrixed(self, run_id: str, baseline: str | None) -> Matrixed:
        runs = [run_id] + ([baseline] if baseline and baseline != run_id else [])
        return self.Matrixed(self.service.evals.matrix(runs))

    def on_evals_screen_matrixed(self, message: Matrixed) -> None:
        self.matrix = message.matrix
        self._draw_matrix()

    def _draw_matrix(self) -> None:
        table = self.query_one("#ev-matrix", DataTable)
        table.clear(columns=True)
        if self.matrix is None:
            return
        runs = list(dict.fromkeys(c["run_id"] for c in self.matrix["columns"]))
        table.add_column("case", key="case")
        for index, column in enumerate(self.matrix["columns"]):
            label = column["subject"] + ("" if column["run_id"] == runs[0] else " (baseline)")
            table.add_column(label, key=str(index))
        shown = 0
        for row in self.matrix["rows"]:
            verdicts = [cell["verdict"] if cell else None for cell in row["cells"]]
            if self.failures_only and not any(v in ("fail", "error") for v in verdicts):
                continue
            table.add_row(row["case_id"], *[_matrix_cell(cell) for cell in row["cells"]], key=row["case_id"])
            shown += 1
        total = len(self.matrix["rows"])
        self.query_one("#ev-matrix-note", Static).update(
            f"{shown} of {total} cases{' (failures only: f shows all)' if self.failures_only else ' (f: failures only)'}"
            "; pass/fail by the case's metrics"
        )

    @on(DataTable.CellHighlighted, "#ev-matrix")
    def _matrix_cell_highlighted(self, event: DataTable.CellHighlighted) -> None:
        if self.matrix is None or event.coordinate.column == 0:
            return
        case_id = event.cell_key.row_key.value
        row = next((r for r in self.matrix["rows"] if r["case_id"] == case_id), None)
        cell = row["cells"][event.coordinate.column - 1] if row else None
        column = self.matrix["columns"][event.coordinate.column - 1]
        if cell is None:
            self.query_one("#ev-cell", Static).update("not run")
            return
        metrics = ", ".join(f"{k} {v:.2f}" for k, v in cell["metrics"].items())
        case = self.cases.get(case_id)
        lines = [f"[b]{escape(case_id)}[/b]  {escape(column['subject'])}  {cell['verdict'] or '-'}"]
        if case is not None:
            lines += [
                f"[b]input[/b] {escape(case.input)}",
                f"[b]expected[/b] {escape(' / '.join(case.expected) or '-')}",
            ]
        lines += ["", escape(cell["output"]), "", f"[dim]{escape(metrics)}[/dim]"]
        self.query_one("#ev-cell", Static).update("\n".join(lines))

    def action_failures_only(self) -> None:
        self.failures_only = not self.failures_only
        self._draw_matrix()

    def _shown(self, run_id: str) -> Shown:
        """A run's results and its dataset's cases, read in the worker, off the UI thread."""
        shown = self.service.evals.show(run_id)
        try:
            cases = {case.id: case for case in self.service.evals.dataset(shown["run"]["dataset"]).cases}
        except Exception:  # noqa: BLE001 - a dataset edited since the run: show the run without it
            cases = {}
        return self.Shown(shown, cases)

    async def on_evals_screen_shown(self, message: Shown) -> None:
        shown = message.shown
        self.shown, self.cases = shown, message.cases
        self.run_id = shown["run"]["run_id"]
        summary = self.query_one("#ev-summary", DataTable)
        summary.display = True  # hidden until there is a run to sum up
        summary.clear(columns=True)
        figures = [
            key
            for key, _ in self.service.evals.figures()
            if any(s.get(key) is not None for s in shown["summary"].values())
        ]
        summary.add_columns("subject", *figures)
        for subject, figures_of in shown["summary"].items():
            summary.add_row(subject, *[_fmt(figures_of.get(k)) for k in figures])
        self._chart(shown["summary"])
        table = self.query_one("#ev-cases", DataTable)
        table.clear()
        for index, row in enumerate(shown["results"]):
            if index and index % _ROWS_PER_TURN == 0:
                # 2,000 rows at once held the screen for 110-140 ms. Messages to this screen
                # wait for the handler to finish, so no other run's rows interleave.
                await asyncio.sleep(0.01)
            metrics = row["metrics"] or {}
            judge = "failed" if row["judge_failures"] else _fmt(metrics.get("correctness"))
            table.add_row(
                row["case_id"],
                row["subject"],
                _fmt(metrics.get("contains")),
                _fmt(metrics.get("f1")),
                judge,
                _fmt(row["latency_s"]),
                key=str(index),
            )
            if index == 0:
                self._case(0)

    @on(DataTable.RowHighlighted, "#ev-cases")
    def pick_case(self, event: DataTable.RowHighlighted) -> None:
        if self.shown and 0 <= event.cursor_row < len(self.shown["results"]):
            self._case(event.cursor_row)

    def _case(self, index: int) -> None:
        assert self.shown is not None
        row = self.shown["results"][index]
        self.trace_id = row["trace_id"]
        case = self.cases.get(row["case_id"])
        lines = [f"[b]{escape(row['case_id'])}[/b]  {escape(row['subject'])}"]
        if case is not None:
            lines += [
                f"[b]input[/b] {escape(case.input)}",
                f"[b]expected[/b] {escape(' / '.join(case.expected) or '-')}",
            ]
        others = [r for r in self.shown["results"] if r["case_id"] == row["case_id"]]
        for other in others:
            lines.append(
                f"\n[b]{escape(other['subject'])}[/b]: {escape(other['output'] or other['error'] or '')}"
            )
        if row["retrieved"]:
            lines.append(
                "\n[b]retrieved[/b] " + escape(", ".join(p.rsplit("/", 1)[-1] for p in row["retrieved"]))
            )
        for verdict in row["judge"] or []:
            lines.append(
                f"[b]judge {verdict['criterion']}[/b]: "
                + (
                    f"[red]failed[/red], raw: {escape(str(verdict['raw'])[:200])}"
                    if verdict["failed"]
                    else f"{verdict['score']:.2f} {escape(verdict.get('reason', ''))}"
                )
            )
        metrics = ", ".join(f"{k} {v:.2f}" for k, v in (row["metrics"] or {}).items())
        lines.append(
            f"\n[dim]{escape(metrics)}\ntrace {(row['trace_id'] or '-')[:16]} (ctrl+t opens it)[/dim]"
        )
        self.query_one("#ev-case", Static).update("\n".join(lines))

    def _chart(self, summary: dict) -> None:
        """Quality against latency: one point per subject (the data behind a model choice)."""
        chart = self.query_one("#ev-chart", PlotextPlot)
        plt = chart.plt
        plt.clear_data()
        plt.clear_figure()
        quality = self.service.evals.quality_metrics()
        metric = next((m for m in quality if any(s.get(m) is not None for s in summary.values())), None)
        points = [
            (s, v)
            for s, v in summary.items()
            if v.get("latency_p50_s") is not None and metric and v.get(metric) is not None
        ]
        for subject, figures in points:
            plt.scatter([figures["latency_p50_s"]], [figures[metric]], label=subject, marker="dot")
        if points:
            # Axes that start at 0 and hold every point: one point alone was drawn on a -1..1
            # axis. Quality metrics are 0..1.
            plt.xlim(0, max(f["latency_p50_s"] for _, f in points) * 1.25 or 1)
            plt.ylim(0, max(1.0, max(f[metric] for _, f in points)) * 1.05)
        plt.title(f"{metric or 'quality'} vs latency p50 (s); cost in the Results tab")
        plt.xlabel("latency p50 (s)")
        plt.ylabel(metric or "")
        chart.refresh()

    # -- run vs run -----------------------------------------------------------------------------

    def action_baseline(self) -> None:
        if self.run_id is None:
            self.notify("Pick a run first.", severity="warning")
            return
        self.baseline = self.run_id
        self.query_one("#ev-diff", Static).update(f"baseline: {escape(self.baseline)}; now pick another run.")
        self.notify(f"baseline: {self.baseline}", title="Evals")

    def on_evals_screen_compared(self, message: Compared) -> None:
        comparison = message.comparison
        lines = [
            f"[b]{escape(message.run_id)}[/b] against [b]{escape(message.baseline)}[/b]: "
            f"{comparison['pairs']} paired cases\n"
        ]
        for m in comparison["metrics"]:
            colour = "red" if m["delta"] < 0 else "green" if m["delta"] > 0 else "white"
            lines.append(
                f"{m['metric']:>13} {m['a']:.3f} -> {m['b']:.3f} [{colour}]{m['delta']:+.3f}[/{colour}] "
                f"(n {m['n']}, 95% CI {m['ci_low']:+.3f}..{m['ci_high']:+.3f}, p {m['p_text']}, {m['test']})"
            )
        lines.append(f"\n[b]{len(comparison['changed'])} cases changed[/b]")
        for case in comparison["changed"][:30]:
            moved = ", ".join(f"{k} {a:g}->{b:g}" for k, (a, b) in case["metrics"].items()) or "error"
            lines.append(f"\n{escape(case['case_id'])} [{escape(case['subject'])}] {escape(moved)}")
            lines.append(
                f"  a: {escape((case['output_a'] or '')[:160])}\n  b: {escape((case['output_b'] or '')[:160])}"
            )
        self.query_one("#ev-diff", Static).update("\n".join(lines))

    def action_next_tab(self) -> None:
        tabs = self.query_one("#ev-tabs", TabbedContent)
        order = ["ev-tab-results", "ev-tab-matrix", "ev-tab-chart", "ev-tab-diff"]
        tabs.active = order[(order.index(tabs.active) + 1) % len(order)] if tabs.active in order else order[0]

    def action_open_trace(self) -> None:
        self.open_trace(self.trace_id, "Pick a case first.")
