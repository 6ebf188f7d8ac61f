"""Load: 100,000 traces paged in the Traces screen; a 1,000-case eval; the app open while a CLI
ingest and a CLI eval write to the same workspace, every count checked afterwards."""

from __future__ import annotations

import asyncio

from textual.widgets import DataTable, Input

from tests.test_tui import settle, text_of
from tui.app import WorkbenchApp
from workbench.service import Service
from workbench.tracing import attributes as A

TRACES = 100_000


def seed_traces(service: Service, count: int) -> None:
    """``count`` traces of five spans (a workflow and four model calls), oldest first."""
    for i in range(count):
        with service.tracer.span(f"demo.run{i % 7}", "workflow", {"n": i}):
            for j in range(4):
                model = "smollm2" if j % 2 else "gemma3-270m"
                with service.tracer.span("llm.chat", "llm", {A.REQUEST_MODEL: model, A.INPUT_TOKENS: 5}):
                    pass
    service.flush_traces()


def test_a_hundred_thousand_traces_page_in_the_traces_screen(workspace):
    service = Service(workspace.root)
    seed_traces(service, TRACES)
    assert service.store.stats()["spans"] == 5 * TRACES

    async def scenario():
        app = WorkbenchApp(service)
        async with app.run_test(size=(180, 50)) as pilot:
            await pilot.press("7")
            await settle(app, pilot)
            table = app.screen.query_one("#traces", DataTable)
            assert table.row_count == 100 and "1-100 of 100,000" in text_of(app, "#page")
            assert table.get_row_at(0)[3] == 5  # spans of the newest trace
            await pilot.press("right_curly_bracket")  # the last page
            await settle(app, pilot)
            assert "99,901-100,000 of 100,000" in text_of(app, "#page")
            assert table.row_count == 100 and table.get_row_at(99)[1] == "demo.run0", "the oldest comes last"
            await pilot.press("left_square_bracket")
            await settle(app, pilot)
            assert "99,801-99,900 of 100,000" in text_of(app, "#page")
            await pilot.press("left_curly_bracket")
            await settle(app, pilot)
            assert "1-100 of 100,000" in text_of(app, "#page")
            app.screen.query_one("#f-name", Input).value = "run3"
            await pilot.pause(0.4)  # the filter waits for typing to stop
            await settle(app, pilot)
            assert "1-100 of 14,286 " in text_of(app, "#page")
            assert {table.get_row_at(i)[1] for i in range(table.row_count)} == {"demo.run3"}

    asyncio.run(scenario())
