"""Usage: what the stack cost and how it behaved over a window, from the spans (services/usage.py).

The report runs in a worker (a few hundred ms at a million spans); the screen shows the headline
figures, cost per day as a chart, and one table per figure. `s` shows the SQL behind them.
"""

from __future__ import annotations

from datetime import date, timedelta

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import DataTable, Select, Static
from textual_plotext import PlotextPlot

from tui.markup import escape
from tui.screens.base import BaseScreen
from tui.table import Table

WINDOWS = (("24 hours", "24h"), ("7 days", "7d"), ("30 days", "30d"), ("90 days", "90d"))
GROUPINGS = ("day", "model", "endpoint", "workflow", "key")
TABLES = ("by", "latency", "escalation_reasons", "refusals", "errors", "workflows", "compute")


class UsageScreen(BaseScreen):
    MODE = "usage"
    PANE_TITLES = {
        "#usage-headline": "summary",
        "#usage-chart": "cost per day",
        "#usage-since": "window",
        "#usage-group": "group",
    }
    BINDINGS = [
        Binding("r", "refresh", "Refresh"),
        Binding("s", "toggle_sql", "SQL"),
    ]

    class Loaded(Message):
        def __init__(self, report) -> None:
            super().__init__()
            self.report = report

    def __init__(self) -> None:
        super().__init__()
        self.report = None
        self.showing_sql = False

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="usage-form"):
            yield Select(WINDOWS, value="7d", allow_blank=False, id="usage-since")
            yield Select(
                [(f"by {g}", g) for g in GROUPINGS], value="day", allow_blank=False, id="usage-group"
            )
            yield Static("", id="usage-status")
        with Horizontal(id="usage-top"):
            yield Static("loading...", id="usage-headline")
            yield PlotextPlot(id="usage-chart")
        with VerticalScroll(id="usage-tables"):
            for name in TABLES:
                yield Static("", id=f"usage-title-{name}", classes="usage-title")
                yield Table(id=f"usage-{name}", zebra_stripes=True, cursor_type="row")
            yield Static("", id="usage-sql")

    def on_mount(self) -> None:
        self.query_one("#usage-sql", Static).display = False
        self.load()

    def action_refresh(self) -> None:
        self.load()

    @on(Select.Changed)
    def _changed(self, event: Select.Changed) -> None:
        self.load()

    @work(thread=True, exclusive=True, group="usage", exit_on_error=False, description="usage report")
    def load(self) -> None:
        since = self.query_one("#usage-since", Select).value
        by = self.query_one("#usage-group", Select).value
        self.app.call_from_thread(self.query_one("#usage-status", Static).update, "computing...")
        report = self.service.usage.report(str(since), str(by))
        self.post_message(self.Loaded(report))

    def on_usage_screen_loaded(self, message: Loaded) -> None:
        from workbench.services.usage import headline

        report = self.report = message.report
        lines = [f"[b]{label:<10}[/b] {escape(text)}" for label, text in headline(report)]
        lines += [f"[yellow]warning: {escape(w)}[/yellow]" for w in report.warnings]
        self.query_one("#usage-headline", Static).update("\n".join(lines))
        self.query_one("#usage-status", Static).update(f"computed in {report.elapsed_ms:.0f} ms")
        for name in TABLES:
            figure = report.figures[name]
            self.query_one(f"#usage-title-{name}", Static).update(f"[b]{escape(figure.title)}[/b]")
            table = self.query_one(f"#usage-{name}", DataTable)
            table.clear(columns=True)
            columns = figure.columns
            table.add_columns(*columns)
            for row in figure.rows:
                table.add_row(*(_cell(row[c]) for c in columns))
            if not figure.rows:
                table.add_row(*(["-"] * len(columns)))
        self._chart(report)
        self.query_one("#usage-sql", Static).update(
            "\n\n".join(f"-- {escape(f.title)}\n{escape(f.sql)};" for f in report.figures.values())
        )

    def _chart(self, report) -> None:
        """Cost per day, cloud and local, as bars."""
        chart = self.query_one("#usage-chart", PlotextPlot)
        plt = chart.plt
        plt.clear_data()
        plt.clear_figure()
        rows = _every_day(report.figures["cost_per_day"].rows)
        days = [r["label"] for r in rows]
        cloud = [float(r["cloud_cost_usd"]) for r in rows]
        local = [float(r["local_cost_usd"]) for r in rows]
        if any(local):  # local models are free unless priced: one series is then the whole story
            plt.stacked_bar(days, [cloud, local], labels=["cloud", "local"])
            plt.title("cost per day (USD)")
        elif any(cloud):
            plt.bar(days, cloud)
            plt.title("cloud cost per day (USD)")
        elif any(r["calls"] for r in rows):  # nothing spent: an axis of zeros says less than the work
            plt.bar(days, [int(r["calls"]) for r in rows])
            plt.title("no cloud spend; model calls per day")
        # Labels we choose, as many as fit (6 columns each) in the chart's share of the terminal
        # (2 of 5): plotext's own pick, and the chart's size while the screen lays out, varied
        # between draws of the same data.
        room = max(self.app.size.width * 2 // 5 - 14, 6) // 6
        step = max(1, -(-len(days) // room))
        if rows:
            plt.xticks(list(range(1, len(days) + 1))[::step], days[::step])
        chart.refresh()

    def action_toggle_sql(self) -> None:
        """Show the SQL behind every figure instead of the tables (and back)."""
        self.showing_sql = not self.showing_sql
        for name in TABLES:
            self.query_one(f"#usage-title-{name}").display = not self.showing_sql
            self.query_one(f"#usage-{name}").display = not self.showing_sql
        self.query_one("#usage-sql", Static).display = self.showing_sql


MIN_DAYS = 7


def _every_day(rows: list[dict]) -> list[dict]:
    """One bar per calendar day, days without calls as zeros, at least a week ending on the last
    day with calls: one day's data alone drew a single bar across the whole chart."""
    if not rows:
        return []
    found = {date.fromisoformat(str(r["day"])[:10]): r for r in rows}
    last = max(found)
    first = min(min(found), last - timedelta(days=MIN_DAYS - 1))
    empty = {"cloud_cost_usd": 0.0, "local_cost_usd": 0.0, "calls": 0}
    days = []
    for offset in range((last - first).days + 1):
        day = first + timedelta(days=offset)
        days.append({**empty, **found.get(day, {}), "label": day.strftime("%m-%d")})
    return days


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
