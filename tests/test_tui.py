"""Pilot tests: drive the app as a user does and assert on what the screens show."""

from __future__ import annotations

import asyncio
import gc
import io
import time

import duckdb
from rich.console import Console
from rich.text import Text
from textual.content import Content
from textual.widgets import DataTable, Input, Static, Tree
from textual.worker import WorkerCancelled

from tui.app import WorkbenchApp
from tui.screens.evals import EvalsScreen
from tui.screens.help import HelpScreen
from tui.screens.traces import TracesScreen
from workbench.core.tracing import attributes as A
from workbench.core.tracing.migrations import LATEST, migrate
from workbench.services import Service


def run(coro):
    return asyncio.run(coro)


async def settle(app, pilot) -> None:
    """Wait for workers and for the messages they posted, instead of sleeping. A worker that a
    newer one of its exclusive group cancelled (a second highlight while a plan was read) is not
    waited for: the newer one is."""
    for _ in range(3):
        for worker in list(app.workers):
            try:
                await worker.wait()
            except WorkerCancelled:
                pass
        await pilot.pause()


def cells(table, index: int) -> list:
    """A row's cells as shown: the app's tables keep str cells as rich Text."""
    return [cell.plain if isinstance(cell, Text) else cell for cell in table.get_row_at(index)]


def text_of(app, selector: str) -> str:
    """What a Static shows, as plain text (rendered when it holds a Rich renderable)."""
    widget = app.screen.query_one(selector, Static)
    shown = widget.content
    if isinstance(shown, (str, Text, Content)):
        return str(widget.render())
    console = Console(width=max(widget.size.width, 40), file=io.StringIO(), color_system=None)
    with console.capture() as capture:
        console.print(shown)
    return capture.get()


def seed(service: Service, count: int = 3) -> list[str]:
    ids = []
    for i in range(count):
        with service.tracer.span(f"demo.run{i}", "workflow") as root:
            with service.tracer.span(
                "llm.chat", "llm", {A.REQUEST_MODEL: "gemma" if i == 0 else "smollm2", A.INPUT_TOKENS: 5}
            ) as llm:
                llm.set_payload(output=f"answer {i}")
        ids.append(root.trace_id)
    service.flush_traces()
    return ids


def test_home_shows_workspace_and_doctor(workspace):
    service = Service(workspace.root)

    async def scenario():
        app = WorkbenchApp(service)
        async with app.run_test(size=(160, 50)) as pilot:
            await settle(app, pilot)
            status = text_of(app, "#status")
            assert str(workspace.root) in status and "0 of 3 present" in status
            doctor = text_of(app, "#doctor")
            assert "trace store" in doctor and "llama.cpp" in doctor and "duckdb" in doctor
            # Next follows the workspace: an empty one starts with models, documents, a question
            assert "workbench models fetch" in status and "ingest a folder" in status
            assert "ask a model something" in status and "traces    0" in status
            # ... and Home is current again when shown again after work elsewhere
            with service.tracer.span("test.work", "internal"):
                pass
            service.flush_traces()
            await pilot.press("2")
            await settle(app, pilot)
            await pilot.press("escape", "1")  # Documents puts the cursor in its path field
            await settle(app, pilot)
            status = text_of(app, "#status")
            assert "traces    1" in status and "7  traces" in status, status
            assert "ask a model something" not in status

    run(scenario())


def test_traces_screen_table_tree_and_filter(workspace):
    service = Service(workspace.root)
    ids = seed(service)

    async def scenario():
        app = WorkbenchApp(service)
        async with app.run_test(size=(160, 50)) as pilot:
            await pilot.press("7")
            await settle(app, pilot)
            assert isinstance(app.screen, TracesScreen)
            table = app.screen.query_one("#traces", DataTable)
            assert table.row_count == 3
            assert [cells(table, i)[1] for i in range(3)] == ["demo.run2", "demo.run1", "demo.run0"]
            assert "1-3 of 3" in text_of(app, "#page")
            # the highlighted (newest) trace's span tree
            tree = app.screen.query_one("#spans", Tree)
            assert ids[2][:16] in str(tree.root.label)
            child = tree.root.children[0]
            assert "demo.run2" in str(child.label) and "llm.chat" in str(child.children[0].label)
            # enter opens the tree; moving onto a span shows its attributes and payload
            await pilot.press("enter")
            await pilot.press("down", "down")
            await pilot.pause()
            detail = text_of(app, "#span-detail")
            assert "gen_ai.request.model" in detail and "answer 2" in detail
            # filter by model
            app.screen.query_one("#f-model", Input).value = "gemma"
            await pilot.pause(0.4)
            await settle(app, pilot)
            assert table.row_count == 1 and cells(table, 0)[1] == "demo.run0"

    run(scenario())


def test_traces_are_paged(workspace):
    service = Service(workspace.root)
    seed(service, 130)

    async def scenario():
        app = WorkbenchApp(service)
        async with app.run_test(size=(160, 50)) as pilot:
            await pilot.press("7")
            await settle(app, pilot)
            table = app.screen.query_one("#traces", DataTable)
            assert table.row_count == 100 and "1-100 of 130" in text_of(app, "#page")
            await pilot.press("right_square_bracket")
            await settle(app, pilot)
            assert table.row_count == 30 and "101-130 of 130" in text_of(app, "#page")
            assert cells(table, 29)[1] == "demo.run0"  # the oldest comes last
            await pilot.press("right_square_bracket")  # past the end: stays
            await settle(app, pilot)
            assert "101-130 of 130" in text_of(app, "#page")
            await pilot.press("left_square_bracket")
            await settle(app, pilot)
            assert cells(table, 0)[1] == "demo.run129"

    run(scenario())


def test_navigation_help_and_an_empty_screen(workspace):
    service = Service(workspace.root)

    async def scenario():
        app = WorkbenchApp(service)
        async with app.run_test(size=(160, 50)) as pilot:
            await settle(app, pilot)
            await pilot.press("6")
            await settle(app, pilot)
            assert isinstance(app.screen, EvalsScreen)
            assert "No datasets yet" in str(app.screen.query_one("#ev-case", Static).render())
            await pilot.press("8")
            await settle(app, pilot)
            assert app.screen.query_one("#models", DataTable).row_count == 3
            await pilot.press("question_mark")
            assert isinstance(app.screen, HelpScreen)
            await pilot.press("escape")
            assert not isinstance(app.screen, HelpScreen)
            # inside a text field a digit or q is text; alt+q (also what Escape then q, typed
            # fast, arrives as) quits
            await pilot.press("7")
            await settle(app, pilot)
            field = app.screen.query(Input).first()
            field.focus()
            await pilot.press("7", "q")
            assert isinstance(app.screen, TracesScreen) and field.value == "7q"
            # Escape then a digit typed fast (or read late by a busy terminal) arrives as alt+digit
            await pilot.press("alt+6")
            await settle(app, pilot)
            assert isinstance(app.screen, EvalsScreen)
            await pilot.press("7")
            await settle(app, pilot)
            assert isinstance(app.screen, TracesScreen) and not isinstance(app.screen.focused, Input)
            field.focus()
            await pilot.press("alt+q")
            await pilot.pause()
            assert app.return_code == 0, "alt+q quit the app"

    run(scenario())


def test_store_error_becomes_a_notification_not_a_crash(workspace):
    service = Service(workspace.root)
    con = duckdb.connect(str(workspace.traces_path))
    migrate(con)
    con.execute("INSERT INTO schema_migrations (version, name) VALUES (?, 'future')", [LATEST + 5])
    con.close()

    async def scenario():
        app = WorkbenchApp(service)
        async with app.run_test(size=(160, 50)) as pilot:
            await pilot.press("7")
            await settle(app, pilot)
            messages = [n.message for n in app._notifications]
            assert any("newer workbench" in m for m in messages), messages
            assert app.is_running

    run(scenario())


def test_full_garbage_collections_wait_for_a_pause_in_typing(workspace):
    """A full collection stalls the event loop (45-110 ms with a page of traces on screen):
    while keys arrive or a worker runs none runs; once the app is idle, it runs one."""
    full: list[float] = []

    def watch(phase: str, info: dict) -> None:
        if phase == "stop" and info["generation"] == 2:
            full.append(time.monotonic())

    before = gc.get_threshold()

    async def scenario():
        app = WorkbenchApp(Service(workspace.root))
        async with app.run_test(size=(160, 50)) as pilot:
            await settle(app, pilot)
            assert gc.get_threshold()[2] > before[2], "automatic full collections made rarer"
            gc.callbacks.append(watch)
            try:
                for _ in range(10):
                    gc.collect(1)  # each counts towards the next full collection
                for _ in range(8):  # 1.6 s of keys, never 1 s apart
                    await pilot.press("down")
                    typed = time.monotonic()
                    await pilot.pause(0.2)
                assert full == [], "no full collection while keys arrive"
                await pilot.pause(2.5)  # idle for 1 s, then the next check (every 0.5 s)
                assert full and full[0] - typed >= 0.9, "one ran once the user paused"

                full.clear()
                for _ in range(10):
                    gc.collect(1)
                worker = app.run_worker(lambda: time.sleep(2.0), thread=True)  # as an ingest would
                await pilot.pause(1.8)
                assert full == [], "none while a worker runs, though nobody types"
                await worker.wait()
                await pilot.pause(1.5)
                assert full, "one ran once the worker was done"
            finally:
                gc.callbacks.remove(watch)
        assert gc.get_threshold() == before, "the interpreter's setting is restored on exit"

    run(scenario())


def test_save_screenshot_goes_into_the_workspace(workspace, monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home-without-downloads"))
    service = Service(workspace.root)

    async def scenario():
        app = WorkbenchApp(service)
        async with app.run_test(size=(100, 30)) as pilot:
            await settle(app, pilot)
            await app.run_action("screenshot")
            await settle(app, pilot)
            saved = list((workspace.root / "screenshots").glob("*.svg"))
            assert len(saved) == 1 and "<svg" in saved[0].read_text()[:400]
            assert any(str(saved[0]) in n.message for n in app._notifications)

    run(scenario())


def test_export_in_a_workspace_without_workflows_says_so_and_nothing_else(workspace):
    from textual.widgets import Select

    service = Service(workspace.root)

    async def scenario():
        app = WorkbenchApp(service)
        async with app.run_test(size=(160, 48)) as pilot:
            await pilot.press("9")
            await settle(app, pilot)
            app.screen.query_one("#export-target", Select).value = "litellm"  # a Select.Changed
            await settle(app, pilot)
            await pilot.press("ctrl+w")
            await settle(app, pilot)
            status = str(app.screen.query_one("#export-status", Static).render())
            assert "No workflows yet" in status, status
            messages = [n.message for n in app._notifications]
            assert "Pick a workflow first." in messages, messages
            assert not any("Select.NULL" in m or "not a workflow" in m for m in messages), messages

    run(scenario())
