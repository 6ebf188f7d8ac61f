"""Jump mode (as Posting's): ctrl+g, then a screen's key, from anywhere, even inside a text field
where the digits themselves are text."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from tui.markup import escape
from tui.screens.base import NAVIGATION


class JumpScreen(ModalScreen[str | None]):
    """Which screen to go to: its key picks it, escape (or any other key) goes nowhere."""

    BINDINGS = [
        *(Binding(key, f"go('{mode}')", title, show=False) for key, mode, title in NAVIGATION),
        Binding("escape,ctrl+g", "go(None)", "Stay", show=False),
    ]

    def __init__(self, current: str) -> None:
        super().__init__()
        self.current = current

    def compose(self) -> ComposeResult:
        lines = [
            f"  [b]{key}[/b]  {escape(title)}" + ("  [dim](here)[/dim]" if mode == self.current else "")
            for key, mode, title in NAVIGATION
        ]
        with Vertical(id="jump-box"):
            yield Static("[b]Go to[/b]  (escape stays)\n\n" + "\n".join(lines))

    def action_go(self, mode: str | None) -> None:
        self.dismiss(mode)

    def on_key(self, event) -> None:
        # A key that picks nothing closes the overlay, rather than reaching the field below.
        if event.key not in {key for key, _, _ in NAVIGATION} | {"escape", "ctrl+g"}:
            event.stop()
            self.dismiss(None)
