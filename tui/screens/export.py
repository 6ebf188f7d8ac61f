"""Export: pick a workflow and a target, preview the files it would write, then write them."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import DataTable, Select, Static

from tui.markup import escape
from tui.screens.base import BaseScreen
from tui.table import Table

TARGETS = ("langgraph", "litellm", "vllm", "otel")


class ExportScreen(BaseScreen):
    MODE = "export"
    PANE_TITLES = {
        "#export-files": "files",
        "#export-preview-box": "preview",
        "#export-workflow": "workflow",
        "#export-target": "target",
    }
    BINDINGS = [Binding("ctrl+r", "refresh", "Refresh"), Binding("ctrl+w", "write", "Write files")]

    class Listed(Message):
        def __init__(self, names: list[str]) -> None:
            super().__init__()
            self.names = names

    class Previewed(Message):
        def __init__(self, files: dict[str, str]) -> None:
            super().__init__()
            self.files = files

    class Written(Message):
        def __init__(self, paths: list) -> None:
            super().__init__()
            self.paths = paths

    def __init__(self) -> None:
        super().__init__()
        self.files: dict[str, str] = {}

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="export-form"):
            yield Select([], prompt="workflow", id="export-workflow")
            yield Select([(t, t) for t in TARGETS], value="langgraph", allow_blank=False, id="export-target")
            yield Static("ctrl+w writes the files", id="export-hint")
        with Horizontal(id="export-main"):
            table = Table(id="export-files", cursor_type="row")
            table.add_columns("file", "lines")
            yield table
            with VerticalScroll(id="export-preview-box"):
                yield Static("", id="export-preview")
        yield Static("", id="export-status")

    def on_mount(self) -> None:
        self.action_refresh()

    def action_refresh(self) -> None:
        self.list_workflows()

    @work(thread=True, exclusive=True, group="export-list", exit_on_error=False, description="workflows")
    def list_workflows(self) -> None:
        self.post_message(self.Listed(self.service.workflows.names()))

    def on_export_screen_listed(self, message: Listed) -> None:
        select = self.query_one("#export-workflow", Select)
        select.set_options([(n, n) for n in message.names])
        if message.names:
            select.value = message.names[0]
        else:
            self.query_one("#export-status", Static).update(
                "No workflows yet: create one on the Workflows screen (5)."
            )

    @on(Select.Changed)
    def changed(self) -> None:
        select = self.query_one("#export-workflow", Select)
        if select.is_blank():  # no workflow in this workspace yet (the value is Select.NULL)
            return
        workflow = select.value
        self.query_one("#export-status", Static).update("preparing a preview...")
        self.preview(str(workflow), str(self.query_one("#export-target", Select).value))

    @work(
        thread=True, exclusive=True, group="export-preview", exit_on_error=False, description="export preview"
    )
    def preview(self, workflow: str, target: str) -> None:
        self.post_message(self.Previewed(self.service.workflows.preview(workflow, target)))

    def on_export_screen_previewed(self, message: Previewed) -> None:
        self.files = message.files
        table = self.query_one("#export-files", DataTable)
        table.clear()
        for name, text in self.files.items():
            table.add_row(name, text.count("\n"), key=name)
        self.query_one("#export-status", Static).update(f"{len(self.files)} files; ctrl+w writes them")
        if self.files:
            self._show(next(iter(self.files)))

    @on(DataTable.RowHighlighted, "#export-files")
    def highlight(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value in self.files:
            self._show(str(event.row_key.value))

    def _show(self, name: str) -> None:
        self.query_one("#export-preview", Static).update(
            f"[b]{escape(name)}[/b]\n\n{escape(self.files[name])}"
        )

    def action_write(self) -> None:
        select = self.query_one("#export-workflow", Select)
        workflow = select.value
        if select.is_blank():
            self.notify("Pick a workflow first.", severity="warning")
            return
        self.write(str(workflow), str(self.query_one("#export-target", Select).value))

    @work(thread=True, exclusive=True, group="export-write", exit_on_error=False, description="export")
    def write(self, workflow: str, target: str) -> None:
        self.post_message(self.Written(self.service.workflows.export(workflow, target)))

    def on_export_screen_written(self, message: Written) -> None:
        folder = message.paths[0].parent if message.paths else "-"
        self.query_one("#export-status", Static).update(
            f"wrote {len(message.paths)} files under {escape(str(folder))}"
        )
        self.notify(f"wrote {len(message.paths)} files", title="Export")
