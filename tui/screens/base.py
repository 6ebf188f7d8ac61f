"""What every screen shares: the navigation bar across the top, the footer of key bindings."""

from __future__ import annotations

from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, Select

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


# Shorter names when the full ones do not fit the terminal's width (100 columns cut "0 Usage"
# off), then the keys alone: every screen's key stays on the bar at any width.
SHORT_TITLES = {
    "documents": "Docs",
    "playground": "Chat",
    "compare": "Cmp",
    "workflows": "Flows",
    "traces": "Trace",
    "models": "Model",
    "export": "Exp",
}
JUMP_HINT = "ctrl+g go"


def navigation_line(current: str, width: int) -> Text:
    """The navigation bar's text for a terminal ``width`` columns wide: the widest of full
    titles, short titles, or keys alone that fits, with the jump key's hint when there is room."""
    layouts = (
        [(key, mode, f" {key} {title} ") for key, mode, title in NAVIGATION],
        [(key, mode, f" {key} {SHORT_TITLES.get(mode, title)} ") for key, mode, title in NAVIGATION],
        [(key, mode, f" {key} ") for key, mode, _ in NAVIGATION],
    )
    for parts in layouts:
        if sum(len(label) + 1 for _, _, label in parts) - 1 <= width:
            break
    line = Text()
    for index, (_, mode, label) in enumerate(parts):
        if index:
            line.append(" ")
        line.append(label, style="reverse" if mode == current else "")
    if line.cell_len + len(JUMP_HINT) + 2 <= width:
        line.append(" " * (width - line.cell_len - len(JUMP_HINT) - 1))
        line.append(JUMP_HINT, style="dim")
    return line


class NavBar(Widget):
    """The screens and their keys; the current one highlighted."""

    def __init__(self, current: str) -> None:
        super().__init__(id="navbar")
        self.current = current

    def render(self) -> Text:
        return navigation_line(self.current, self.size.width)


def set_border_title(widget, title: str) -> None:
    """The title in a pane's or field's border (a Select draws its border on its inner box)."""
    if isinstance(widget, Select):
        widget = widget.query_one("SelectCurrent")
    widget.border_title = title


class BaseScreen(Screen):
    MODE = "home"
    PANE_TITLES: dict[str, str] = {}  # selector -> the title in the pane's border
    shown_before = False  # whether the screen has been shown (and resumed) once already

    def compose_body(self) -> ComposeResult:
        yield from ()

    def compose(self) -> ComposeResult:
        yield NavBar(self.MODE)
        yield from self.compose_body()
        yield Footer()

    @on(events.Mount)
    def _title_panes(self) -> None:
        for selector, title in self.PANE_TITLES.items():
            set_border_title(self.query_one(selector), title)

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
