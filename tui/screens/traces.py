"""Traces: recent traces paged from DuckDB, filters, and the span tree of the selected trace."""

from __future__ import annotations

import json
import time

from rich.console import Group
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import DataTable, Input, Select, Static, Tree

from tui.cases import CasesEditor
from tui.rating import RATING_BINDINGS, Rating
from tui.screens.base import BaseScreen
from tui.table import Table
from tui.trace_view import STATUS_STYLES, span_detail, waterfall

PAGE_SIZE = 100
REFRESH_S = 3.0
COLUMNS = (
    "start",
    "name",
    "status",
    "spans",
    "ms",
    "models",
    "tokens in/out",
    "cost $",
    "feedback",
    "trace id",
)


class TracesScreen(Rating, BaseScreen):
    MODE = "traces"
    PANE_TITLES = {
        "#traces": "traces",
        "#spans": "spans",
        "#span-pane": "detail",
        "#f-name": "name",
        "#f-model": "model",
        "#f-text": "text",
    }
    RATING_SOURCE = "traces"
    AUTO_FOCUS = "#traces"  # the table, not the first filter field, when the screen comes back
    BINDINGS = [
        Binding("right_square_bracket", "page(1)", "Next page"),
        Binding("left_square_bracket", "page(-1)", "Prev page"),
        Binding("left_curly_bracket", "first_page", "First page", show=False),
        Binding("right_curly_bracket", "last_page", "Last page", show=False),
        Binding("r", "refresh", "Refresh"),
        Binding("slash", "focus_filter", "Filter"),
        *RATING_BINDINGS,
        Binding("space", "mark", "Mark"),
        Binding("a", "add_cases", "To dataset"),
    ]

    class PageLoaded(Message):
        def __init__(self, rows: list[dict], total: int, offset: int) -> None:
            super().__init__()
            self.rows, self.total, self.offset = rows, total, offset

    class TraceLoaded(Message):
        def __init__(self, trace_id: str, spans: list[dict]) -> None:
            super().__init__()
            self.trace_id, self.spans = trace_id, spans

    def __init__(self) -> None:
        super().__init__()
        self.page_offset = 0
        self.trace_total = 0
        self.trace_id: str | None = None  # the highlighted trace
        self.shown_trace: str | None = None  # the trace in the span tree and the detail pane
        self.spans: list[dict] = []
        self.page_keys: list[tuple] = []  # what the table shows, to skip redrawing the same page
        self.marked: list[str] = []  # traces picked (space) to become eval cases
        self._filter_timer = None

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="filters"):
            yield Input(placeholder="contains", id="f-name")
            yield Input(placeholder="contains", id="f-model")
            yield Input(placeholder="in a prompt or answer", id="f-text")
            yield Select(
                [("ok", "ok"), ("error", "error"), ("cancelled", "cancelled")],
                prompt="any status",
                id="f-status",
            )
            yield Static("", id="page")
        table = Table(id="traces", cursor_type="row", zebra_stripes=True)
        table.add_columns(*COLUMNS)
        yield table
        with Horizontal(id="trace-detail"):
            yield Tree("select a trace", id="spans")
            with VerticalScroll(id="span-pane"):
                yield Static("", id="span-detail")

    def on_mount(self) -> None:
        self.query_one("#traces", DataTable).focus()
        self.load_page()
        # New traces appear by themselves while the first page is on screen (25 ms a page at
        # 500,000 spans, in a worker); a page that did not change is not redrawn.
        self.set_interval(REFRESH_S, self._refresh_when_shown)

    def on_screen_resume(self) -> None:
        self.load_page()

    def _refresh_when_shown(self) -> None:
        if self.is_current and self.page_offset == 0 and self._filter_timer is None:
            self.load_page()

    def filters(self) -> dict[str, str]:
        status = self.query_one("#f-status", Select).value
        return {
            "name": self.query_one("#f-name", Input).value.strip(),
            "model": self.query_one("#f-model", Input).value.strip(),
            "text": self.query_one("#f-text", Input).value.strip(),
            "status": status if isinstance(status, str) else "",
        }

    # -- loading (in workers: DuckDB never runs on the UI thread) ----------------------------

    @work(thread=True, exclusive=True, group="traces-page", exit_on_error=False, description="load traces")
    def load_page(self) -> None:
        offset = self.page_offset
        rows, total = self.service.list_traces(PAGE_SIZE, offset, self.filters())
        self.post_message(self.PageLoaded(rows, total, offset))

    @work(thread=True, group="cases", exit_on_error=False, description="draft cases")
    def draft_cases(self, trace_ids: list[str]) -> None:
        cases, problems = self.service.evals.cases_from_traces(trace_ids)
        text = "".join(json.dumps(case, ensure_ascii=False) + "\n" for case in cases)
        self.app.call_from_thread(self._edit_cases, text, len(cases), problems)

    def _edit_cases(self, text: str, count: int, problems: list[str]) -> None:
        if not count:
            self.notify(
                "; ".join(problems) or "no case to draft", title="Traces to dataset", severity="warning"
            )
            return
        self.push_keeping_focus(CasesEditor(text, count, problems), self._cases_edited)

    def _cases_edited(self, answer: tuple[str, list[dict]] | None) -> None:
        if answer is not None:
            self.save_cases(*answer)

    @work(thread=True, group="cases", exit_on_error=False, description="add cases")
    def save_cases(self, dataset: str, cases: list[dict]) -> None:
        path, added, refused = self.service.evals.add_cases(dataset, cases)
        message = f"added {len(added)} case{'s' * (len(added) != 1)} to {path.name}"
        message += "".join(f"\nrefused: {reason}" for reason in refused)
        self.app.call_from_thread(
            self.notify, message, title="Traces to dataset", severity="warning" if refused else "information"
        )
        self.marked = []

    def load_trace(self, trace_id: str) -> None:
        """Show ``trace_id``'s spans; until they come, the panes say so rather than keep the last
        trace's (the detail pane always belongs to the trace highlighted)."""
        self.trace_id = trace_id
        if trace_id == self.shown_trace:
            return
        if not self.is_mounted:  # opened from another screen before this one was built
            self.call_after_refresh(self.load_trace, trace_id)
            return
        self.shown_trace = None
        self.query_one("#spans", Tree).root.set_label(f"loading trace {trace_id[:16]}...")
        self.query_one("#spans", Tree).clear()
        self.query_one("#span-detail", Static).update("")
        self._fetch_trace(trace_id)

    @work(thread=True, exclusive=True, group="trace", exit_on_error=False, description="load trace")
    def _fetch_trace(self, trace_id: str) -> None:
        self.post_message(self.TraceLoaded(trace_id, self.service.get_trace(trace_id)))

    def on_traces_screen_page_loaded(self, message: PageLoaded) -> None:
        self.trace_total = message.total
        table = self.query_one("#traces", DataTable)
        page_keys = [
            (r["trace_id"], r["spans"], r["status"], r["feedback_up"], r["feedback_down"])
            for r in message.rows
        ]
        if page_keys == self.page_keys and message.offset == self.page_offset:
            return  # the same page: keep the cursor and the panes as they are
        self.page_keys = page_keys
        table.clear()
        for row in message.rows:
            # Every cell text (spans too): Table draws a row of one-line texts on its fast path.
            status = Text(row["status"], style=STATUS_STYLES.get(row["status"], "green"))
            table.add_row(
                time.strftime("%m-%d %H:%M:%S", time.localtime(row["start_ns"] / 1e9)),
                row["name"],
                status,
                str(row["spans"]),
                f"{row['duration_ms']:.1f}",
                row["models"] or "-",
                f"{row['input_tokens'] or 0}/{row['output_tokens'] or 0}",
                f"{row['cost_usd']:.5f}" if row["cost_usd"] else "-",
                f"+{row['feedback_up']}/-{row['feedback_down']}"
                if row["feedback_up"] or row["feedback_down"]
                else "",
                row["trace_id"][:16],
                key=row["trace_id"],
            )
        last = min(message.offset + PAGE_SIZE, message.total)
        first = message.offset + 1 if message.total else 0
        self.query_one("#page", Static).update(f"{first:,}-{last:,} of {message.total:,}  [ ] {{ }}")
        if not message.rows:
            self.query_one("#spans", Tree).root.set_label("no traces match")
        # What + / - and a act on is the row under the cursor now, not one a filter or a page
        # change took off the table.
        keys = [row["trace_id"] for row in message.rows]
        if self.trace_id in keys:  # new rows above it: the cursor stays on the same trace
            table.move_cursor(row=keys.index(self.trace_id), animate=False)
        else:
            self.trace_id = keys[min(table.cursor_row, len(keys) - 1)] if keys else None

    def on_traces_screen_trace_loaded(self, message: TraceLoaded) -> None:
        if message.trace_id != self.trace_id:
            return  # a trace the user has already moved past
        tree = self.query_one("#spans", Tree)
        tree.clear()
        spans = message.spans
        self.shown_trace, self.spans = message.trace_id, spans
        tree.root.set_label(f"trace {spans[0]['trace_id'][:16]} ({len(spans)} spans)")
        tree.root.data = None
        ids = {s["span_id"] for s in spans}
        nodes = {}
        for span in spans:  # spans come ordered by start time, so parents come first
            parent = nodes.get(span["parent_id"]) if span["parent_id"] in ids else None
            ms = (span["end_ns"] - span["start_ns"]) / 1e6
            label = Text(f"{span['name']} [{span['kind']}] {ms:,.1f} ms")
            if span["status"] in STATUS_STYLES:
                label.stylize(STATUS_STYLES[span["status"]])
            nodes[span["span_id"]] = (parent or tree.root).add(label, data=span, expand=True)
        for node in nodes.values():
            node.allow_expand = bool(node.children)
        tree.root.expand()
        self._show_waterfall()

    def _show_waterfall(self) -> None:
        if self.spans:
            # name, bar and duration share the pane (less a scrollbar's 2 columns), narrow or wide
            room = self.query_one("#span-pane", VerticalScroll).size.width - 2
            names = max(12, min(26, room // 3))
            bars = max(room - names - 13, 8)
            self.query_one("#span-detail", Static).update(
                Group(
                    Text("waterfall (enter on a span: its detail)", style="bold"),
                    waterfall(self.spans, bars, names),
                )
            )

    # -- events -------------------------------------------------------------------------------

    @on(DataTable.RowHighlighted, "#traces")
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value:
            self.load_trace(event.row_key.value)

    @on(DataTable.RowSelected, "#traces")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        self.query_one("#spans", Tree).focus()

    @on(Tree.NodeHighlighted, "#spans")
    def _span_highlighted(self, event: Tree.NodeHighlighted) -> None:
        span = event.node.data
        if span:
            self.query_one("#span-detail", Static).update(span_detail(span))
        else:  # the trace itself: where its time went
            self._show_waterfall()

    @on(Input.Changed)
    @on(Select.Changed)
    def _filter_changed(self) -> None:
        # Wait for a pause in typing rather than query DuckDB on every key.
        if self._filter_timer is not None:
            self._filter_timer.stop()
        self._filter_timer = self.set_timer(0.25, self._apply_filters)

    def _apply_filters(self) -> None:
        self._filter_timer = None
        self.page_offset = 0
        self.load_page()

    def action_page(self, step: int) -> None:
        offset = self.page_offset + step * PAGE_SIZE
        if 0 <= offset < max(self.trace_total, 1):
            self.page_offset = offset
            self.load_page()

    def action_first_page(self) -> None:
        self.page_offset = 0
        self.load_page()

    def action_last_page(self) -> None:
        self.page_offset = max(self.trace_total - 1, 0) // PAGE_SIZE * PAGE_SIZE
        self.load_page()

    def action_refresh(self) -> None:
        self.load_page()

    def rating_target(self) -> tuple[str | None, str, list[str] | None]:
        """`+`/`-` rate the highlighted trace's answer; the feedback column shows it."""
        return self.trace_id, "this trace's answer", None

    def after_rating(self) -> None:
        self.load_page()

    def action_mark(self) -> None:
        """Pick the highlighted trace (again: put it back) for `a`, which makes them eval cases."""
        if self.trace_id is None:
            return
        if self.trace_id in self.marked:
            self.marked.remove(self.trace_id)
        else:
            self.marked.append(self.trace_id)
        self.notify(
            f"{len(self.marked)} traces picked: a turns them into eval cases", title="Traces to dataset"
        )

    def action_add_cases(self) -> None:
        picked = self.marked or ([self.trace_id] if self.trace_id else [])
        if not picked:
            self.notify("Highlight a trace first (space picks several).", severity="warning")
            return
        self.draft_cases(list(picked))

    def action_focus_filter(self) -> None:
        self.query_one("#f-name", Input).focus()
