"""Models: the workspace's catalog. Loading, planning and chat arrive with issue #3."""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Static

from tui.screens.base import BaseScreen


class ModelsScreen(BaseScreen):
    MODE = "models"
    BINDINGS = [Binding("r", "refresh", "Refresh")]

    class Loaded(Message):
        def __init__(self, models: list) -> None:
            super().__init__()
            self.models = models

    def compose_body(self) -> ComposeResult:
        table = DataTable(id="models", cursor_type="row")
        table.add_columns("alias", "kind", "present", "size MB", "source", "path")
        yield table
        yield Static(
            "Fetch the default models with `workbench models fetch`; register any GGUF file "
            "or sentence-transformers folder with `workbench models register PATH`.\n"
            "Loading, GPU offload planning and chat arrive with issue #3.",
            classes="note",
        )

    def on_mount(self) -> None:
        self.action_refresh()

    def action_refresh(self) -> None:
        self.load()

    @work(thread=True, exclusive=True, group="models", exit_on_error=False, description="models")
    def load(self) -> None:
        self.post_message(self.Loaded(self.service.list_models()))

    def on_models_screen_loaded(self, message: Loaded) -> None:
        table = self.query_one("#models", DataTable)
        table.clear()
        for model in message.models:
            table.add_row(model.alias, model.kind, "yes" if model.present else "no",
                          f"{model.size_bytes / 1e6:.1f}", model.source, str(model.path))  # fmt: skip
