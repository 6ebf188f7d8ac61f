"""The passages an answer from a collection was given, with their text: where its citations
[1], [2] point."""

from __future__ import annotations

from rich.console import Group
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


class SourcesScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,ctrl+o", "dismiss", "Close")]

    def __init__(self, sources: list[dict]) -> None:
        super().__init__()
        self.sources = sources

    def compose(self) -> ComposeResult:
        parts: list = [Text("Passages given to the answer (escape closes)", style="bold"), Text("")]
        for source in self.sources:
            heading = f" > {source['heading']}" if source["heading"] else ""
            head = Text.assemble((f"[{source['number']}] ", "bold"), (source["path"] + heading, "cyan"))
            head.append(f"  score {source['score']:.4g}", style="dim")
            head.append(
                "  cited" if source["cited"] else "  not cited", style="green" if source["cited"] else "dim"
            )
            parts += [head, Text(source.get("text", "")), Text("")]
        with VerticalScroll(id="sources-box"):
            yield Static(Group(*parts), id="sources")
