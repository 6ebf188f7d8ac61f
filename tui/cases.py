"""Traces to eval cases from the Traces screen: the cases the service drafts from the picked
traces, shown as JSONL to edit (the expected answer above all), then added to a dataset."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static, TextArea

from tui.markup import escape
from workbench.core.errors import WorkbenchError

__all__ = ["CasesEditor"]


class CasesEditor(ModalScreen[tuple[str, list[dict]] | None]):
    """Edit drafted cases; ctrl+s checks and saves them into the named dataset, escape drops them."""

    BINDINGS = [Binding("ctrl+s", "save", "Save", priority=True), Binding("escape", "cancel", "Cancel")]

    def __init__(self, text: str, count: int, problems: list[str], dataset: str = "from-traces") -> None:
        super().__init__()
        self.text, self.count, self.problems, self.dataset = text, count, problems, dataset

    def compose(self) -> ComposeResult:
        with Vertical(id="cases-box"):
            yield Static(
                f"[b]{self.count} case{'s' * (self.count != 1)} from traces[/b]: edit them (one JSON "
                "object a line; `expected` is what a right answer contains), then ctrl+s adds them "
                "to the dataset below; escape drops them.",
                id="cases-title",
            )
            yield Input(self.dataset, placeholder="dataset name", id="cases-dataset")
            yield TextArea(self.text, id="cases-text", soft_wrap=True)
            skipped = "\n".join(f"skipped: {escape(p)}" for p in self.problems)
            yield Static(skipped, id="cases-error")

    def on_mount(self) -> None:
        self.query_one("#cases-text", TextArea).focus()

    def action_save(self) -> None:
        name = self.query_one("#cases-dataset", Input).value.strip()
        text = self.query_one("#cases-text", TextArea).text
        try:
            # Parsing a few lines is instant: checked here, so a mistake keeps the dialog open
            # with the edits in it.
            cases = self.app.service.evals.parse_cases(text, "the edited cases")  # type: ignore[attr-defined]
        except WorkbenchError as exc:
            self.query_one("#cases-error", Static).update(f"[red]{escape(exc.one_line())}[/red]")
            return
        if not name:
            self.query_one("#cases-error", Static).update("[red]name the dataset to add them to[/red]")
            return
        self.dismiss((name, cases))

    def action_cancel(self) -> None:
        self.dismiss(None)
