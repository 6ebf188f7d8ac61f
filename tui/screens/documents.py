"""Documents: collections with rows and versions, an ingest form with live progress and the
per-file report, and a search box showing ranked chunks with provenance and a preview."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import DataTable, Input, ProgressBar, Select, Static

from tui.markup import escape
from tui.screens.base import BaseScreen
from tui.table import Table


class DocumentsScreen(BaseScreen):
    MODE = "documents"
    PANE_TITLES = {
        "#collections": "collections",
        "#hits": "search results",
        "#hit-preview-box": "passage",
        "#ingest-path": "file or folder",
        "#ingest-collection": "into collection",
        "#search-query": "search",
        "#search-mode": "mode",
        "#search-rerank": "rerank",
    }
    BINDINGS = [Binding("ctrl+r", "refresh", "Refresh"), Binding("ctrl+f", "focus_search", "Search")]

    class Listed(Message):
        def __init__(self, collections: list[dict]) -> None:
            super().__init__()
            self.collections = collections

    class Progressed(Message):
        def __init__(self, event: dict) -> None:
            super().__init__()
            self.event = event

    class Ingested(Message):
        def __init__(self, report) -> None:
            super().__init__()
            self.report = report

    class Found(Message):
        def __init__(self, hits: list[dict]) -> None:
            super().__init__()
            self.hits = hits

    def __init__(self) -> None:
        super().__init__()
        self.hits: list[dict] = []

    def compose_body(self) -> ComposeResult:
        collections = Table(id="collections", cursor_type="row")
        collections.add_columns("collection", "rows", "files", "version", "model", "redact")
        yield collections
        with Horizontal(id="ingest-form"):
            yield Input(placeholder="file or folder to ingest", id="ingest-path")
            yield Input(placeholder="collection", id="ingest-collection")
        yield ProgressBar(id="ingest-progress", show_eta=False)
        yield Static("", id="ingest-report")
        with Horizontal(id="search-form"):
            yield Input(placeholder="search (enter)", id="search-query")
            yield Select(
                [(m, m) for m in ("hybrid", "vector", "fts")],
                value="hybrid",
                allow_blank=False,
                id="search-mode",
            )
            yield Select(
                [
                    ("rerank: collection's", "default"),
                    ("rerank: none", "none"),
                    ("rerank: sections", "sections"),
                    ("rerank: best installed", "auto"),
                ],
                value="default",
                allow_blank=False,
                id="search-rerank",
            )
        with Horizontal(id="search-results"):
            hits = Table(id="hits", cursor_type="row")
            hits.add_columns("#", "score", "path", "heading", "page")
            yield hits
            with VerticalScroll(id="hit-preview-box"):
                yield Static("", id="hit-preview")

    def on_mount(self) -> None:
        self.query_one("#ingest-progress", ProgressBar).display = False  # until an ingest runs
        self.query_one("#ingest-path", Input).focus()
        self.action_refresh()

    def action_refresh(self) -> None:
        self.list_collections()

    def on_screen_resume(self) -> None:
        # Shown again: what other screens and processes did meanwhile is on it. (Not on the
        # first showing: on_mount has just loaded it.)
        if self.shown_before:
            self.action_refresh()
        self.shown_before = True

    def action_focus_search(self) -> None:
        self.query_one("#search-query", Input).focus()

    @work(thread=True, exclusive=True, group="collections", exit_on_error=False, description="collections")
    def list_collections(self) -> None:
        self.post_message(self.Listed(self.service.list_collections()))

    def on_documents_screen_listed(self, message: Listed) -> None:
        table = self.query_one("#collections", DataTable)
        table.clear()
        for row in message.collections:
            table.add_row(
                row["name"],
                row["rows"],
                row["files"],
                row["version"],
                row["model"],
                "yes" if row["redact"] else "",
                key=row["name"],
            )
        if not message.collections:
            self.query_one("#ingest-report", Static).update(
                "No collections yet: give a folder and a collection name above, then enter."
            )
        collection = self.query_one("#ingest-collection", Input)
        if message.collections and not collection.value:
            collection.value = message.collections[0]["name"]

    @on(DataTable.RowSelected, "#collections")
    def pick_collection(self, event: DataTable.RowSelected) -> None:
        self.query_one("#ingest-collection", Input).value = str(event.row_key.value)

    @on(Input.Submitted, "#ingest-path, #ingest-collection")
    def start_ingest(self) -> None:
        path = self.query_one("#ingest-path", Input).value.strip()
        collection = self.query_one("#ingest-collection", Input).value.strip()
        if not path or not collection:
            self.notify("Give a file or folder and a collection name.", severity="warning")
            return
        bar = self.query_one("#ingest-progress", ProgressBar)
        bar.display = True
        bar.update(total=None, progress=0)
        self.query_one("#ingest-report", Static).update(f"ingesting {path} into {collection}...")
        self.ingest(collection, path)

    class Failed(Message):
        def __init__(self, error: str) -> None:
            super().__init__()
            self.error = error

    @work(thread=True, exclusive=True, group="ingest", exit_on_error=False, description="ingest")
    def ingest(self, collection: str, path: str) -> None:
        try:
            report = self.service.ingest(
                collection, path, progress=lambda e: self.post_message(self.Progressed(e))
            )
        except Exception as exc:
            # Said where the progress was, and the bar taken down: the toast alone vanished
            # and left the bar spinning for good.
            one_line = getattr(exc, "one_line", None)
            self.post_message(
                self.Failed(one_line() if callable(one_line) else f"{type(exc).__name__}: {exc}")
            )
            raise
        self.post_message(self.Ingested(report))

    def on_documents_screen_failed(self, message: Failed) -> None:
        self.query_one("#ingest-progress", ProgressBar).display = False
        self.query_one("#ingest-report", Static).update(f"[red]ingest failed: {escape(message.error)}[/red]")

    def on_documents_screen_progressed(self, message: Progressed) -> None:
        event = message.event
        if "total" in event:
            self.query_one("#ingest-progress", ProgressBar).update(
                total=max(1, event["total"]), progress=event["done"]
            )
            self.query_one("#ingest-report", Static).update(
                f"{event['phase']}: {event['done']} of {event['total']}"
            )

    def on_documents_screen_ingested(self, message: Ingested) -> None:
        report = message.report
        lines = [report.summary()]
        lines += [
            f"[{'red' if what == 'failed' else 'yellow'}]{what}[/] {escape(path)}: {escape(reason)}"
            for what, path, reason in report.details()
        ]
        bar = self.query_one("#ingest-progress", ProgressBar)
        bar.update(total=bar.total or 1, progress=bar.total or 1)
        self.query_one("#ingest-report", Static).update("\n".join(lines))
        self.list_collections()
        self.action_focus_search()

    @on(Input.Submitted, "#search-query")
    def start_search(self, event: Input.Submitted) -> None:
        collection = self.query_one("#ingest-collection", Input).value.strip()
        if not event.value.strip() or not collection:
            self.notify("Pick a collection (above) and type a query.", severity="warning")
            return
        rerank = str(self.query_one("#search-rerank", Select).value)
        self.search(
            collection,
            event.value,
            str(self.query_one("#search-mode", Select).value),
            None if rerank == "default" else rerank,
        )

    @work(thread=True, exclusive=True, group="search", exit_on_error=False, description="search")
    def search(self, collection: str, query: str, mode: str, rerank: str | None = None) -> None:
        self.post_message(self.Found(self.service.search(collection, query, mode, k=10, rerank=rerank)))

    def on_documents_screen_found(self, message: Found) -> None:
        self.hits = message.hits
        table = self.query_one("#hits", DataTable)
        table.clear()
        for rank, hit in enumerate(self.hits, start=1):
            table.add_row(
                rank, f"{hit['score']:.4f}", hit["path"], hit["headings"] or "-", hit["page"] or "-"
            )
        preview = self.query_one("#hit-preview", Static)
        preview.update("" if self.hits else "no hits")
        if self.hits:
            self._preview(0)

    @on(DataTable.RowHighlighted, "#hits")
    def highlight_hit(self, event: DataTable.RowHighlighted) -> None:
        if 0 <= event.cursor_row < len(self.hits):
            self._preview(event.cursor_row)

    def _preview(self, index: int) -> None:
        hit = self.hits[index]
        where = (
            hit["path"]
            + (f", page {hit['page']}" if hit["page"] else "")
            + f", characters {hit['start']}-{hit['end']}"
        )
        ranks = ", ".join(f"{stage} #{rank}" for stage, rank in hit.get("ranks", {}).items())
        self.query_one("#hit-preview", Static).update(
            f"[b]{escape(hit['headings'] or hit['title'])}[/b]\n{escape(where)}"
            + (f"\n[dim]ranks: {escape(ranks)}[/dim]" if ranks else "")
            + f"\n\n{escape(hit['text'])}"
        )
