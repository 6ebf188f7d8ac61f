"""The approval prompt of a workflow run that waits: an agent node called a tool marked
`approve`. The calls are shown with their arguments; ctrl+y runs them, ctrl+n denies them (the
note, if any, goes to the model), escape leaves the run waiting (`workbench run --resume ID`)."""

from __future__ import annotations

import json

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from tui.markup import escape

__all__ = ["ApprovalDialog"]


class ApprovalDialog(ModalScreen[dict | None]):
    BINDINGS = [
        Binding("ctrl+y", "decide(True)", "Approve"),
        Binding("ctrl+n", "decide(False)", "Deny"),
        Binding("escape", "later", "Later"),
    ]

    def __init__(self, thread_id: str, waiting: dict) -> None:
        super().__init__()
        self.thread_id, self.waiting = thread_id, waiting

    def compose(self) -> ComposeResult:
        calls = []
        for ask in self.waiting["asks"]:
            try:
                arguments = json.dumps(json.loads(ask["arguments"] or "{}"), indent=2, ensure_ascii=False)
            except ValueError:
                arguments = str(ask["arguments"])
            calls.append(f"[b]{escape(ask['tool'])}[/b]\n{escape(arguments)}")
        with Vertical(id="approval-box"):
            yield Static(
                f"Node [b]{escape(self.waiting['node'])}[/b] wants to call (approve or deny):",
                id="approval-title",
            )
            yield Static("\n\n".join(calls), id="approval-calls")
            yield Input(placeholder="a note for the model (optional)", id="approval-note")
            with Horizontal(id="approval-buttons"):
                yield Button("Approve (ctrl+y)", id="approve", variant="success")
                yield Button("Deny (ctrl+n)", id="deny", variant="error")
            yield Static(
                f"escape: decide later; the run waits (workbench run --resume {escape(self.thread_id)})",
                classes="note",
            )

    def on_mount(self) -> None:
        self.query_one("#approval-note", Input).focus()

    @on(Button.Pressed, "#approve")
    def approve(self) -> None:
        self.action_decide(True)

    @on(Button.Pressed, "#deny")
    def deny(self) -> None:
        self.action_decide(False)

    def action_decide(self, approved: bool) -> None:
        note = self.query_one("#approval-note", Input).value.strip()
        self.dismiss({"approved": approved, "note": note})

    def action_later(self) -> None:
        self.dismiss(None)
