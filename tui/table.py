"""The app's DataTable: cells are data shown as written, and one-line cells draw fast.

A str cell in Textual's DataTable is parsed as Rich markup: a case id, path or trace name with
brackets in it would lose them, or stop the screen with a MarkupError ("[/x]"). Here every str
cell becomes a Text, shown literally.

Paging 100 traces spent most of its blocked frame in DataTable: every new cell is measured
through ``console.options`` (which asks the OS for the terminal size each time) and drawn
through Padding, Styled and ``console.render_lines``. For a one-line Text that fits its column
the answer is known without any of that: its cell length, and its segments padded to the
width. Every other cell (numbers, multi-line, too wide, headers, labels, fixed cells) takes
DataTable's own path. tests/test_table.py checks, line by line and cell by cell, that both
paths draw the same segments and measure the same widths; it guards the private methods
overridden here (textual is pinned in pyproject.toml).
"""

from __future__ import annotations

from collections.abc import Iterable

from rich.segment import Segment
from rich.style import Style
from rich.text import Span, Text
from textual.geometry import Size
from textual.widgets import DataTable
from textual.widgets.data_table import RowKey

__all__ = ["Table"]


def _plain_line(cell: object) -> bool:
    return type(cell) is Text and "\n" not in cell.plain and "\t" not in cell.plain


class Table(DataTable):
    def add_row(self, *cells, height: int | None = 1, key: str | None = None, label=None) -> RowKey:
        cells = tuple(Text(cell) if isinstance(cell, str) else cell for cell in cells)
        return super().add_row(*cells, height=height, key=key, label=label)

    def _update_dimensions(self, new_rows: Iterable[RowKey]) -> None:
        new_rows = list(new_rows)
        widths = [column.content_width for column in self.ordered_columns]
        for key in new_rows:
            if key not in self._row_locations:
                continue  # removed before the table was idle, as DataTable allows
            row = self.rows[key]
            cells = self._get_row_renderables(self._row_locations.get(key))[1]
            if row.label is not None or row.auto_height or not all(_plain_line(cell) for cell in cells):
                return super()._update_dimensions(new_rows)
            for index, cell in enumerate(cells):
                widths[index] = max(widths[index], cell.cell_len)
        for column, width in zip(self.ordered_columns, widths):
            column.content_width = width
        total_width = sum(column.get_render_width(self) for column in self.columns.values())
        header_height = self.header_height if self.show_header else 0
        self.virtual_size = Size(
            total_width + self._row_label_column_width, self._total_row_height + header_height
        )

    def _render_cell(
        self,
        row_index: int,
        column_index: int,
        base_style: Style,
        width: int,
        cursor: bool = False,
        hover: bool = False,
    ):
        if row_index < self.fixed_rows or column_index < self.fixed_columns:  # header, labels too
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        row_key = self._row_locations.get_key(row_index)
        cache_key = (
            row_key,
            self._column_locations.get_key(column_index),
            base_style,
            cursor,
            hover,
            self._show_hover_cursor,
            self._update_count,
            self._pseudo_class_state,
        )
        lines = self._cell_render_cache.get(cache_key)
        if lines is not None:
            return lines
        cell = self._get_row_renderables(row_index)[1][column_index]
        room = width - 2 * self.cell_padding
        if self.rows[row_key].height != 1 or not _plain_line(cell) or cell.cell_len > room:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        component_style, post_style = self._get_styles_to_render_cell(
            False,
            False,
            False,
            hover,
            cursor,
            self.show_cursor,
            self._show_hover_cursor,
            self.cursor_foreground_priority == "css",
            self.cursor_background_priority == "css",
        )
        pre_style = base_style + Style.from_meta({"row": row_index, "column": column_index}) + component_style
        if cell.style:  # as Rich does when it lays out a line: the base style covers the text only
            cell = Text(cell.plain, spans=[Span(0, len(cell.plain), cell.style), *cell.spans])
        pad = " " * self.cell_padding
        segments = [Segment(pad), *cell.render(self.app.console), Segment(" " * (room - cell.cell_len) + pad)]
        lines = [list(Segment.apply_style(segments, pre_style, post_style))]
        self._cell_render_cache[cache_key] = lines
        return lines
