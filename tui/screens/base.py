"""What every screen shares: the navigation bar across the top, the footer of key bindings."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer, Static

NAVIGATION = (
    ("1", "home", "Home"),
    ("2", "documents", "Documents"),
    ("3", "playground", "Playground"),
    ("4", "compare", "Compare"),
    ("5", "workflows", "Workflows"),
    ("6", "evals", "Evals"),
    ("7", "traces", "Traces"),
    ("8", "models", "Models"),
    ("9", "export", "Export"),
    ("0", "usage", "Usage"),
)


class NavBar(Static):
    """The screens and their keys; the current one highlighted."""

    def __init__(self, current: str) -> None:
        parts = []
        for key, mode, title in NAVIGATION:
            label = f" {key} {title} "
            parts.append(f"[reverse]{label}[/reverse]" if mode == current else label)
        super().__init__(" ".join(parts), id="navbar")


class BaseScreen(Screen):
    MODE = "home"

    def compose_body(self) -> ComposeResult:
        yield from ()

    def compose(self) -> ComposeResult:
        yield NavBar(self.MODE)
        yield from self.compose_body()
        yield Footer()

    def on_worker_state_changed(self, event) -> None:
        # Worker messages do not bubble: hand them to the app's one error handler.
        self.app.report_worker_state(event)

    @property
    def service(self):
        return self.app.service

    def open_trace(self, trace_id: str | None, missing: str) -> None:
        """Show ``trace_id`` in the Traces screen (ctrl+t on the screens that make answers), or
        say what to do first."""
        if not trace_id:
            self.notify(missing, severity="warning")
            return
        self.app.switch_mode("traces")
        self.app.screen.load_trace(trace_id)

    def push_keeping_focus(self, screen, callback) -> None:
        """Push a dialog; once it closes, focus goes back where it was before ``callback`` runs
        (a resumed screen with nothing focused focuses its first field, which would take the
        next key as text)."""
        focused = self.focused

        def closed(answer) -> None:
            self.set_focus(focused)
            callback(answer)

        self.app.push_screen(screen, closed)
