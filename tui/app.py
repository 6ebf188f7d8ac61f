"""The app shell: navigation across the screens, command palette, help, error notifications."""

from __future__ import annotations

import gc
import os
import sys
import time
from collections.abc import Iterable

from textual import events
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from tui.commands import ActionsProvider
from tui.jump import JumpScreen
from tui.screens.base import NAVIGATION
from tui.screens.compare import CompareScreen
from tui.screens.documents import DocumentsScreen
from tui.screens.evals import EvalsScreen
from tui.screens.export import ExportScreen
from tui.screens.help import HelpScreen
from tui.screens.home import HomeScreen
from tui.screens.models import ModelsScreen
from tui.screens.playground import PlaygroundScreen
from tui.screens.traces import TracesScreen
from tui.screens.usage import UsageScreen
from tui.screens.workflows import WorkflowsScreen
from workbench.core.errors import WorkbenchError

__all__ = ["WorkbenchApp", "run_app"]

# A full collection (generation 2) walks every long-lived object: 45-110 ms once a page of
# traces is on screen, long enough to hold a key press. The app makes them rare and runs them
# when the app is idle instead: nobody has typed or clicked for a moment and no worker runs
# (tests/test_tui.py; bench/bench_load.py and bench_startup.py measure the frames).
_FULL_COLLECTION_EVERY = 100  # generation-1 collections between automatic full ones; Python: 10
_IDLE_S = 1.0


class WorkbenchApp(App):
    TITLE = "Workbench"
    CSS_PATH = "app.tcss"
    COMMANDS = App.COMMANDS | {ActionsProvider}
    # Screens get -narrow below 100 columns and -short below 32 rows (app.tcss trims for them).
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (32, "-tall")]
    MODES = {
        "home": HomeScreen,
        "documents": DocumentsScreen,
        "playground": PlaygroundScreen,
        "compare": CompareScreen,
        "workflows": WorkflowsScreen,
        "evals": EvalsScreen,
        "traces": TracesScreen,
        "models": ModelsScreen,
        "export": ExportScreen,
        "usage": UsageScreen,
    }
    BINDINGS = [
        *(Binding(key, f"switch_mode('{mode}')", title, show=key in "17") for key, mode, title in NAVIGATION),
        Binding("escape", "leave_field", "Leave field", show=False),
        # Jump mode: works inside text fields too, where a digit is text (priority: before them).
        Binding("ctrl+g", "jump", "Go to", show=False, priority=True),
        Binding("question_mark,f1", "help", "Help"),
        Binding("q", "quit", "Quit"),
        # Escape then q typed fast (within ESCDELAY, 100 ms) reaches the app as alt+q: it means
        # the same, even from a text field, so it goes before the field sees it (priority).
        Binding("alt+q", "quit", show=False, priority=True),
        # Likewise Escape then a digit: leave the field and go to that screen.
        *(
            Binding(f"alt+{key}", f"leave_and_go('{mode}')", show=False, priority=True)
            for key, mode, _ in NAVIGATION
        ),
    ]

    def __init__(self, service) -> None:
        super().__init__()
        self.service = service
        service.isolate_heavy_work()

    def on_mount(self) -> None:
        # Objects alive at start-up stay alive: keep them out of the collector's full passes,
        # which otherwise walk them all and pause the event loop for 100 ms and more.
        gc.freeze()
        self._gc_threshold = gc.get_threshold()
        gc.set_threshold(*self._gc_threshold[:2], _FULL_COLLECTION_EVERY)
        self._last_input = time.monotonic()
        self.set_interval(0.5, self._collect_when_idle)
        self._terminal = _terminal_path()
        if self._terminal is not None:
            self.set_interval(2.0, self._exit_when_terminal_gone)
        self.switch_mode("home")
        for warning in self.service.trace_warnings():
            self.notify(warning, title="Trace store", severity="warning", timeout=10)

    def on_unmount(self) -> None:
        gc.set_threshold(*self._gc_threshold)
        gc.unfreeze()  # let the interpreter tear everything down as usual on the way out

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, (events.Key, events.MouseEvent)):
            self._last_input = time.monotonic()
        await super().on_event(event)

    def _collect_when_idle(self) -> None:
        # Idle: nobody typing, and no worker streaming, ingesting or loading a page (a
        # collection then would stall the progress it shows). get_count()[2]: collections of
        # generation 1 since the last full one; 10 is when Python would consider one.
        if gc.get_count()[2] < 10 or time.monotonic() - self._last_input < _IDLE_S:
            return
        if not any(worker.is_running for worker in self.workers):
            gc.collect()

    def _exit_when_terminal_gone(self) -> None:
        # Started under `make run`, the app outlived a closed terminal (make took the hang-up
        # signal, the app never got it) and spun a core reading a tty that no longer exists.
        if self._terminal is not None and not os.path.exists(self._terminal):
            self.exit()

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Help", "Keys and where to go next", self.action_help)

    def action_leave_field(self) -> None:
        """Escape out of a text field so the one-key bindings (digits, q, ?) work again."""
        self.screen.set_focus(None)

    def action_leave_and_go(self, mode: str) -> None:
        self.action_leave_field()
        self.switch_mode(mode)

    def action_jump(self) -> None:
        if isinstance(self.screen, JumpScreen):
            return
        current = self.current_mode

        def chosen(mode: str | None) -> None:
            if mode is not None and mode != current:
                self.switch_mode(mode)  # the field keeps its focus for when the user comes back

        self.push_screen(JumpScreen(current), chosen)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.current_mode))

    def action_screenshot(self, filename: str | None = None, path: str | None = None) -> None:
        """The palette's "Save screenshot": into the workspace's screenshots/ folder, made when
        needed (Textual's default, ~/Downloads, failed where that folder does not exist)."""
        from pathlib import Path

        folder = Path(path) if path else self.service.workspace.root / "screenshots"
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self.notify(f"cannot save a screenshot in {folder}: {exc.strerror}", severity="error")
            return
        before = set(folder.glob("*.svg"))
        self.deliver_screenshot(filename, str(folder))
        saved = sorted(set(folder.glob("*.svg")) - before)
        if saved:
            self.notify(f"screenshot saved: {saved[-1]}")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        self.report_worker_state(event)

    def report_worker_state(self, event: Worker.StateChanged) -> None:
        """One place that turns a failed worker into a notification, never a traceback."""
        if event.state != WorkerState.ERROR:
            return
        error = event.worker.error
        if isinstance(error, WorkbenchError):
            self.notify(error.one_line(), title=error.title, severity="error", timeout=10)
        else:
            self.notify(
                f"{type(error).__name__}: {error} (a bug: please report it)",
                title="Unexpected error",
                severity="error",
                timeout=10,
            )


def _terminal_path() -> str | None:
    try:
        return os.ttyname(sys.__stdin__.fileno()) if sys.__stdin__ is not None else None
    except OSError:  # not a terminal (a test harness): nothing to watch
        return None


def run_app(service) -> None:
    WorkbenchApp(service).run()
