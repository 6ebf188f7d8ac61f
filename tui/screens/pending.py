"""Screens whose issue is not done yet say so plainly."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Static

from tui.screens.base import BaseScreen


class PendingScreen(BaseScreen):
    def __init__(self, mode: str, title: str, arrives_with: str) -> None:
        super().__init__(name=mode)
        self.MODE = mode
        self.title_text = title
        self.arrives_with = arrives_with

    def compose_body(self) -> ComposeResult:
        yield Static(
            f"[b]{self.title_text}[/b]\n\nNot built yet: this screen arrives with "
            f"{self.arrives_with}.\n\nWhat works today: Home, Documents, Playground, Compare, "
            f"Traces and Models. Press ? for help.",
            classes="pending",
        )
