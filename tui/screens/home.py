"""Home: workspace status and the doctor's summary."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import Static

from tui.markup import escape
from tui.screens.base import BaseScreen

MARKS = {"ok": ("ok", "green"), "warn": ("WARN", "yellow"), "fail": ("FAIL", "red")}


class HomeScreen(BaseScreen):
    MODE = "home"
    BINDINGS = [Binding("r", "refresh", "Refresh")]

    class Loaded(Message):
        def __init__(self, status: dict, checks: list) -> None:
            super().__init__()
            self.status = status
            self.checks = checks

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="home"):
            yield Static("Loading workspace status...", id="status", classes="panel")
            with VerticalScroll(classes="panel"):
                yield Static("Running doctor...", id="doctor")

    def on_mount(self) -> None:
        self.action_refresh()

    def on_screen_resume(self) -> None:
        # Shown again after work elsewhere: counts and next steps as they are now.
        self.action_refresh()

    def action_refresh(self) -> None:
        self.load()

    @work(thread=True, exclusive=True, group="home", exit_on_error=False, description="doctor")
    def load(self) -> None:
        status = self.service.status()
        status["next"] = self.service.next_steps(status)
        checks = self.service.doctor()
        self.post_message(self.Loaded(status, checks))

    def on_home_screen_loaded(self, message: Loaded) -> None:
        status, traces = message.status, message.status["traces"]
        self.query_one("#status", Static).update(
            f"[b]Workspace[/b]\n{status['workspace']}\n\n"
            f"config    {status['config']}\n"
            f"offline   {'on' if status['offline'] else 'off'}\n"
            f"models    {status['models_present']} of {status['models_known']} present\n"
            f"collections {'-' if status['collections'] is None else status['collections']}\n"
            f"traces    {traces['traces']} ({traces['spans']} spans)\n\n"
            "[b]Next[/b]\n"
            + "\n".join(escape(step) for step in status["next"])
            + "\n?  help   ctrl+p  commands"
        )
        # A grid per group: a long detail wraps inside its own column, not back under the marks.
        parts: list = [Text("Doctor", style="bold")]
        grid = None
        group = None
        for check in message.checks:
            if check.group != group:
                group = check.group
                parts += [Text(""), Text(group, style="bold")]
                grid = Table.grid(padding=(0, 1))
                grid.add_column(width=4, no_wrap=True)
                grid.add_column(no_wrap=True)
                grid.add_column(ratio=1)
                parts.append(grid)
            mark, style = MARKS[check.status]
            assert grid is not None
            grid.add_row(Text(mark, style=style), check.name, check.detail)
        self.query_one("#doctor", Static).update(Group(*parts))
