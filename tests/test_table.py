"""Table draws and measures exactly as Textual's DataTable does, only faster.

Table overrides two private DataTable methods, so these tests are what would catch a textual
upgrade that changes how a cell is drawn: both tables get the same rows and every line on
screen and every cell (with and without cursor and hover) must be the same segments.
"""

from __future__ import annotations

import asyncio

from rich.segment import Segment
from rich.text import Text
from textual.app import App, ComposeResult
from textual.widgets import DataTable

from tui.table import Table

COLUMNS = ("when", "name", "status", "n", "note")


def rows() -> list[tuple]:
    out = []
    for i in range(60):
        status = Text("error" if i % 5 == 0 else "ok", style="red" if i % 5 == 0 else "green")
        name = Text(f"demo[/run{i}] [b]x[/b]" if i % 3 else "日本語のトレース 🚀")
        if i % 4 == 0:
            name.stylize("bold", 0, 4)  # a span inside the text, beside the base style
        note = (
            "a plain str cell"
            if i % 7 == 0
            else Text("two\nlines")
            if i % 11 == 0
            else Text("tab\there")
            if i % 13 == 0
            else Text("")
        )
        out.append((Text(f"11-23 10:{i:02d}"), name, status, Text(str(i)), note))
    return out


class Tables(App):
    CSS = "DataTable { height: 1fr; }"

    def compose(self) -> ComposeResult:
        for table in (
            Table(id="fast", cursor_type="row", zebra_stripes=True),
            DataTable(id="plain", cursor_type="row", zebra_stripes=True),
        ):
            table.add_columns(*COLUMNS)
            for index, row in enumerate(rows()):
                table.add_row(*row, key=str(index))
            yield table


def simplified(lines) -> list[list[Segment]]:
    return [list(Segment.simplify(line)) for line in lines]


async def drawn(pilot, table: DataTable, lines: int) -> list[list[Segment]]:
    """The table's first lines, drawn while it has the focus (which styles the header)."""
    table.focus()
    await pilot.pause(0.1)
    return [list(table.render_line(y)) for y in range(lines)]


def test_fast_table_draws_every_line_as_datatable_does():
    async def scenario():
        app = Tables()
        async with app.run_test(size=(100, 60)) as pilot:
            fast, plain = app.query_one("#fast", Table), app.query_one("#plain", DataTable)
            for table in (fast, plain):
                table.move_cursor(row=3)
            await pilot.pause(0.2)
            assert fast.virtual_size == plain.virtual_size
            assert [c.content_width for c in fast.ordered_columns] == [
                c.content_width for c in plain.ordered_columns
            ]
            assert fast.size == plain.size and fast.size.height > 20
            screens = [await drawn(pilot, table, table.size.height) for table in (fast, plain)]
            for y, (ours, theirs) in enumerate(zip(*screens)):
                assert ours == theirs, f"line {y} differs"

            base = fast.rich_style
            compared = 0
            for row in range(len(rows())):
                for column, spec in enumerate(fast.ordered_columns):
                    width = spec.get_render_width(fast)
                    for cursor in (False, True):
                        for hover in (False, True):
                            style = fast._get_row_style(row, base)
                            fast._cell_render_cache.clear()
                            ours = fast._render_cell(row, column, style, width, cursor, hover)
                            fast._cell_render_cache.clear()
                            theirs = DataTable._render_cell(fast, row, column, style, width, cursor, hover)
                            assert simplified(ours) == simplified(theirs), (row, column, cursor, hover)
                            compared += 1
            assert compared == 60 * len(COLUMNS) * 4

    asyncio.run(scenario())


def test_fast_table_pages_like_datatable():
    """clear() and a new page of rows: the widths shrink and grow as DataTable's do."""

    async def scenario():
        app = Tables()
        async with app.run_test(size=(100, 40)) as pilot:
            fast, plain = app.query_one("#fast", Table), app.query_one("#plain", DataTable)
            for table in (fast, plain):
                table.clear()
                table.add_row(
                    Text("x"), Text("a much longer name than before"), Text("ok"), Text("1"), Text("")
                )
            await pilot.pause(0.2)
            assert fast.virtual_size == plain.virtual_size
            assert [c.content_width for c in fast.ordered_columns] == [
                c.content_width for c in plain.ordered_columns
            ]
            assert await drawn(pilot, fast, 3) == await drawn(pilot, plain, 3)
            assert fast.get_row_at(0)[1].plain == "a much longer name than before"

    asyncio.run(scenario())


def test_str_cells_are_shown_as_written_not_as_markup():
    """A case id, path or trace name with brackets: DataTable would drop [b] and fail on [/x]."""

    class One(App):
        def compose(self) -> ComposeResult:
            table = Table(id="one")
            table.add_columns("id", "n")
            table.add_row("q[/x] and [b]bold[/b]", 3, key="k")
            yield table

    async def scenario():
        app = One()
        async with app.run_test(size=(60, 6)) as pilot:
            await pilot.pause(0.1)
            table = app.query_one(Table)
            assert table.get_row_at(0)[0].plain == "q[/x] and [b]bold[/b]" and table.get_row_at(0)[1] == 3
            assert "q[/x] and [b]bold[/b]" in table.render_line(1).text

    asyncio.run(scenario())
