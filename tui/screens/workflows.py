"""Workflows: the specs of the workspace, the graph of the selected one (or its problems in
place), a run panel with live node-by-node progress, the streamed answer and its trace."""

from __future__ import annotations

import threading

from rich.markup import escape as log_escape  # RichLog writes: Rich's parser
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import DataTable, Input, RichLog, Select, Static

from tui.markup import escape
from tui.rating import RATING_BINDINGS, Rating
from tui.screens.base import BaseScreen
from tui.table import Table
from workbench.core.errors import RunStopped

TEMPLATES = ("rag", "router", "agent")


class WorkflowsScreen(Rating, BaseScreen):
    MODE = "workflows"
    PANE_TITLES = {
        "#workflows": "workflows",
        "#wf-graph-box": "graph",
        "#wf-log": "run log",
        "#wf-answer-box": "answer",
        "#wf-new-name": "new workflow",
        "#wf-template": "template",
        "#wf-input": "input",
    }
    RATING_SOURCE = "workflows"
    BINDINGS = [
        Binding("ctrl+r", "refresh", "Refresh"),
        Binding("ctrl+n", "focus_new", "New"),
        Binding("ctrl+t", "open_trace", "Open trace"),
        Binding("ctrl+s", "stop", "Stop run"),
        *RATING_BINDINGS,
    ]

    class Listed(Message):
        def __init__(self, rows: list[dict]) -> None:
            super().__init__()
            self.rows = rows

    class Shown(Message):
        def __init__(self, name: str, lines: list[str], problems: list[str]) -> None:
            super().__init__()
            self.name, self.lines, self.problems = name, lines, problems

    class Event(Message):
        def __init__(self, event: dict) -> None:
            super().__init__()
            self.event = event

    class Finished(Message):
        def __init__(self, outcome: dict) -> None:
            super().__init__()
            self.outcome = outcome

    class Stopped(Message):
        def __init__(self, error: RunStopped) -> None:
            super().__init__()
            self.error = error

    def __init__(self) -> None:
        super().__init__()
        self.selected: str | None = None
        self.trace_id: str | None = None
        self._tokens: list[str] = []
        self.stop_event = threading.Event()  # of the run in flight: set by ctrl+s

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="wf-main"):
            with Vertical(id="wf-side"):
                table = Table(id="workflows", cursor_type="row")
                table.add_columns("workflow", "nodes", "valid")
                yield table
                with Horizontal(id="wf-new"):
                    yield Input(placeholder="new workflow name", id="wf-new-name")
                    yield Select(
                        [(t, t) for t in TEMPLATES], value="rag", allow_blank=False, id="wf-template"
                    )
            with VerticalScroll(id="wf-graph-box"):
                yield Static("", id="wf-graph")
        yield Input(placeholder="input for the selected workflow (enter runs it)", id="wf-input")
        with Horizontal(id="wf-run"):
            yield RichLog(id="wf-log", wrap=True, markup=True)
            with VerticalScroll(id="wf-answer-box"):
                yield Static("", id="wf-answer")

    def on_mount(self) -> None:
        self.action_refresh()
        self.query_one("#workflows", DataTable).focus()

    def action_refresh(self) -> None:
        self.list_workflows()
        if self.selected is not None:  # its spec may have been edited meanwhile
            self.load_graph(self.selected)

    def action_focus_new(self) -> None:
        self.query_one("#wf-new-name", Input).focus()

    def action_open_trace(self) -> None:
        self.open_trace(self.trace_id, "Run a workflow first.")

    @work(thread=True, exclusive=True, group="workflows", exit_on_error=False, description="workflows")
    def list_workflows(self) -> None:
        self.post_message(self.Listed(self.service.workflows.list()))

    def on_workflows_screen_listed(self, message: Listed) -> None:
        table = self.query_one("#workflows", DataTable)
        table.clear()
        for row in message.rows:
            table.add_row(
                row["name"],
                row["nodes"] or "-",
                "yes" if row["valid"] else f"no ({row['problems']})",
                key=row["name"],
            )
        if not message.rows:
            self.query_one("#wf-graph", Static).update(
                "No workflows yet: type a name under the list, pick a template (rag, router, agent), enter."
            )
        elif self.selected is None:
            self.show(message.rows[0]["name"])

    @on(DataTable.RowHighlighted, "#workflows")
    def highlight(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value and event.row_key.value != self.selected:
            self.show(str(event.row_key.value))

    @on(DataTable.RowSelected, "#workflows")
    def select(self, event: DataTable.RowSelected) -> None:
        self.query_one("#wf-input", Input).focus()

    def show(self, name: str) -> None:
        self.selected = name
        self.load_graph(name)

    @work(thread=True, exclusive=True, group="graph", exit_on_error=False, description="workflow graph")
    def load_graph(self, name: str) -> None:
        problems = self.service.workflows.check(name)
        lines: list[str] = []
        if not any(p.line for p in problems):  # only workspace problems: the graph itself is fine
            try:
                view = self.service.workflows.describe(name)
                lines = [view["description"], ""] + view["outline"]
            except Exception:  # noqa: BLE001 - its problems are shown instead
                lines = []
        self.post_message(self.Shown(name, lines, [str(p) for p in problems]))

    def on_workflows_screen_shown(self, message: Shown) -> None:
        if message.name != self.selected:
            return
        text = [f"[b]{escape(message.name)}[/b]"] + [escape(line) for line in message.lines]
        if message.problems:
            text += ["", "[red]problems:[/red]"] + [f"[red]{escape(p)}[/red]" for p in message.problems]
        self.query_one("#wf-graph", Static).update("\n".join(text))

    @on(Input.Submitted, "#wf-new-name")
    def create(self, event: Input.Submitted) -> None:
        name = event.value.strip()
        if not name:
            return
        event.input.value = ""
        self.create_workflow(name, str(self.query_one("#wf-template", Select).value))

    @work(thread=True, exclusive=True, group="create", exit_on_error=False, description="new workflow")
    def create_workflow(self, name: str, template: str) -> None:
        path = self.service.workflows.new(name, template)
        self.app.call_from_thread(self.notify, f"created {path}", title="Workflow")
        self.selected = None
        self.post_message(self.Listed(self.service.workflows.list()))
        self.app.call_from_thread(self.show, name)

    @on(Input.Submitted, "#wf-input")
    def start_run(self, event: Input.Submitted) -> None:
        if self.selected is None or not event.value.strip():
            self.notify("Pick a workflow and type its input.", severity="warning")
            return
        self.query_one("#wf-log", RichLog).clear()
        self.query_one("#wf-answer", Static).update("")
        self._tokens = []
        self.stop_event.set()  # a run still going (a thread cannot be cancelled) ends at its next node
        self.stop_event = threading.Event()
        self.run_workflow(self.selected, event.value, self.stop_event)

    def action_stop(self) -> None:
        """Stop the run at its next node (the answer being generated is cut short, not kept)."""
        if all(w.is_finished for w in self.workers if w.group == "run"):
            self.notify("No workflow is running.", severity="warning")
            return
        self.stop_event.set()

    @work(thread=True, exclusive=True, group="run", exit_on_error=False, description="workflow run")
    def run_workflow(
        self,
        name: str | None,
        text: str | None,
        stop: threading.Event,
        thread_id: str | None = None,
        decision: dict | None = None,
    ) -> None:
        try:
            outcome = self.service.workflows.run(
                name,
                text,
                thread_id,
                emit=lambda e: self.post_message(self.Event(e)),
                stop=stop,
                decision=decision,
            )
        except RunStopped as exc:
            self.post_message(self.Stopped(exc))
            return
        self.post_message(self.Finished(outcome))

    def on_workflows_screen_stopped(self, message: Stopped) -> None:
        self.query_one("#wf-log", RichLog).write(
            f"[yellow]{log_escape(message.error.message)}[/yellow]\n[dim]{log_escape(message.error.hint)}[/dim]"
        )

    def on_workflows_screen_event(self, message: Event) -> None:
        from workbench.services.workflows import describe_update

        event, log = message.event, self.query_one("#wf-log", RichLog)
        if event["event"] == "run_start":
            log.write(f"[b]run {log_escape(event['thread_id'])}[/b]")
        elif event["event"] == "node_start":
            self._tokens = []
            log.write(f"[cyan]> {log_escape(event['node'])}[/cyan] ({event['type']})")
        elif event["event"] == "token":
            self._tokens.append(event["text"])
            self.query_one("#wf-answer", Static).update(escape("".join(self._tokens)))
        elif event["event"] == "node_end":
            summary = describe_update(event["update"])
            log.write(f"  done in {event['ms']:.0f} ms" + (f": {log_escape(summary)}" if summary else ""))
        elif event["event"] == "tool":
            output = " ".join(event["output"].split())
            log.write(
                f"  [magenta]tool {log_escape(event['tool'])}[/magenta]({log_escape(event['arguments'])}) "
                f"-> {log_escape(output[:160])}"
            )

    def on_workflows_screen_finished(self, message: Finished) -> None:
        state, outcome = message.outcome["state"], message.outcome
        self.trace_id = outcome["trace_id"]
        if outcome.get("waiting"):
            self.ask_approval(outcome["thread_id"], outcome["waiting"])
            return
        answer = state.get("answer")
        lines = [escape(answer if isinstance(answer, str) else str(answer))]
        if state.get("escalation_reason"):
            to = state.get("escalated_to")
            lines.append(
                f"\n[yellow]{'escalated to ' + escape(to) if to else 'not escalated'}: "
                f"{escape(state['escalation_reason'])}[/yellow]"
            )
        lines.append(
            f"\n[dim]thread {escape(outcome['thread_id'])} - trace {self.trace_id[:16]} (ctrl+t opens it; + or - rates the answer)[/dim]"
        )
        self.query_one("#wf-answer", Static).update("\n".join(lines))
        self.query_one("#wf-log", RichLog).write("[green]finished[/green]")

    def ask_approval(self, thread_id: str, waiting: dict) -> None:
        from tui.approval import ApprovalDialog

        asks = ", ".join(ask["tool"] for ask in waiting["asks"])
        self.query_one("#wf-log", RichLog).write(f"[yellow]waiting for approval: {log_escape(asks)}[/yellow]")

        def decided(decision: dict | None) -> None:
            log = self.query_one("#wf-log", RichLog)
            if decision is None:
                log.write(
                    f"[dim]the run waits: workbench run --resume {log_escape(thread_id)} --approve|--deny[/dim]"
                )
                return
            log.write("[green]approved[/green]" if decision["approved"] else "[red]denied[/red]")
            self.stop_event = threading.Event()
            self.run_workflow(None, None, self.stop_event, thread_id, decision)

        self.app.push_screen(ApprovalDialog(thread_id, waiting), decided)

    def rating_target(self) -> tuple[str | None, str, list[str] | None]:
        return self.trace_id, "the run's answer", None
