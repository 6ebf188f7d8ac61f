"""Pilot tests for the app as a daily driver (#31): keys that work from inside text fields, a
layout that keeps its controls at 100x30 and 80x24, a chat surface that renders Markdown and
takes a system prompt, and a Traces screen whose panes follow the selection and the store."""

from __future__ import annotations

import pytest
from textual.widgets import DataTable, Input, Select, Static, TabbedContent, TabPane, Tree

from tests.test_tui import run, seed, settle, text_of
from tui.app import WorkbenchApp
from tui.jump import JumpScreen
from tui.screens.base import NAVIGATION
from tui.screens.help import WIDTH as HELP_WIDTH
from tui.screens.help import HelpScreen
from tui.screens.traces import REFRESH_S
from tui.screens.usage import _every_day
from tui.sources import SourcesScreen
from workbench.core.tracing import attributes as A
from workbench.services import Service


def test_ctrl_g_jumps_to_any_screen_from_inside_a_text_field(workspace):
    async def scenario():
        app = WorkbenchApp(Service(workspace.root))
        async with app.run_test(size=(160, 48)) as pilot:
            await pilot.press("3")
            await settle(app, pilot)
            field = app.screen.query_one("#chat-input", Input)
            assert app.focused is field, "the Playground's field takes the keys"
            await pilot.press("4", "2")  # digits in a field are text
            assert app.current_mode == "playground" and field.value == "42"
            await pilot.press("ctrl+g")
            assert isinstance(app.screen, JumpScreen)
            await pilot.press("7")
            await settle(app, pilot)
            assert app.current_mode == "traces"
            await pilot.press("ctrl+g", "x")  # a key that names no screen goes nowhere
            await pilot.pause()
            assert app.current_mode == "traces" and not isinstance(app.screen, JumpScreen)
            await pilot.press("ctrl+g", "3")
            await settle(app, pilot)
            assert app.current_mode == "playground" and app.focused is field and field.value == "42"

    run(scenario())


@pytest.mark.parametrize("size", [(100, 30), (80, 24)])
def test_every_screen_keeps_its_controls_on_a_small_terminal(workspace, size):
    """At 100x30 the tab bar ended at "9" and the Playground's k and mode were off screen."""
    width, height = size

    async def scenario():
        app = WorkbenchApp(Service(workspace.root))
        async with app.run_test(size=size) as pilot:
            for key, mode, _ in NAVIGATION:
                await pilot.press("escape", key)
                await settle(app, pilot)
                assert app.current_mode == mode
                bar = str(app.screen.query_one("#navbar").render())
                assert all(f" {k} " in bar for k, _, _ in NAVIGATION), f"{mode}: {bar!r}"
                for widget in app.screen.query("Input, Select, Button"):
                    if widget.display and widget.region.area:
                        assert widget.region.right <= width, f"{mode}: {widget} cut at the right edge"
            await pilot.press("escape", "3")
            await settle(app, pilot)
            for field in ("#chat-k", "#chat-mode", "#chat-tools", "#chat-system", "#chat-input"):
                region = app.screen.query_one(field).region
                assert region.area and region.right <= width and region.bottom <= height, field

    run(scenario())


def test_playground_renders_markdown_and_sends_the_system_prompt(local_and_cloud, cloud):
    cloud.answer = lambda body: ["# Steps\n\n", "Use **bold** words and:\n\n", "```python\nprint(42)\n```\n"]

    async def scenario():
        app = WorkbenchApp(local_and_cloud)
        async with app.run_test(size=(160, 48)) as pilot:
            await pilot.press("3")
            await settle(app, pilot)
            app.screen.query_one("#chat-model", Select).value = "remote/big"
            app.screen.query_one("#chat-system", Input).value = "Answer in Markdown."
            app.screen.query_one("#chat-input", Input).focus()
            await pilot.press(*"How?", "enter")
            await settle(app, pilot)
            shown = text_of(app, "#chat-transcript")
            assert "Steps" in shown and "bold" in shown and "print(42)" in shown
            assert "**" not in shown and "```" not in shown and "# Steps" not in shown, shown
            sent = cloud.requests[-1]["body"]["messages"]
            assert sent[0] == {"role": "system", "content": "Answer in Markdown."}
            assert sent[-1] == {"role": "user", "content": "How?"}
            assert [t["role"] for t in app.screen.history] == ["user", "assistant"], "no system turn kept"

    run(scenario())


def test_traces_panes_follow_the_selection_and_new_traces_appear(workspace):
    service = Service(workspace.root)
    first, second, _ = seed(service)
    with service.tracer.span("chat", "chat") as root:
        with service.tracer.span(
            "llm.chat", "llm", {A.REQUEST_MODEL: "smollm2", A.TIME_TO_FIRST_TOKEN: 16.480005099999744}
        ) as llm:
            llm.set_payload(
                messages=[
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "Line one\nline two"},
                ],
                output="The answer\nin two lines",
            )
    chat = root.trace_id
    service.flush_traces()

    async def scenario():
        app = WorkbenchApp(service)
        async with app.run_test(size=(160, 48)) as pilot:
            await pilot.press("7")
            await settle(app, pilot)
            screen = app.screen
            table = screen.query_one("#traces", DataTable)
            assert table.row_count == 4 and screen.trace_id == chat
            assert "waterfall" in text_of(app, "#span-detail") and "█" in text_of(app, "#span-detail")
            tree = screen.query_one("#spans", Tree)
            tree.focus()
            await pilot.press("down", "down")  # chat, then llm.chat
            await pilot.pause()
            detail = text_of(app, "#span-detail")
            assert "llm.chat" in detail and "16.48 s" in detail and "16.480005" not in detail
            assert "Line one\n" in detail.replace("    ", "") and "\\n" not in detail, detail
            assert "system" in detail and "Be brief." in detail

            # another trace highlighted: the detail pane no longer holds the chat's span
            table.focus()
            await pilot.press("down")
            await settle(app, pilot)
            assert screen.trace_id != chat
            detail = text_of(app, "#span-detail")
            assert "Be brief." not in detail and "waterfall" in detail
            assert str(tree.root.label).startswith(f"trace {screen.trace_id[:16]}")

            # a trace written elsewhere shows up without `r`; the cursor stays on its trace
            highlighted = screen.trace_id
            with service.tracer.span("late.run", "workflow"):
                pass
            service.flush_traces()
            await pilot.pause(REFRESH_S + 0.5)
            await settle(app, pilot)
            assert table.row_count == 5 and screen.trace_id == highlighted
            assert table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value == highlighted

            # search over prompt and answer text
            screen.query_one("#f-text", Input).focus()
            await pilot.press(*"two lines")
            await pilot.pause(0.5)
            await settle(app, pilot)
            assert table.row_count == 1 and screen.trace_id == chat
            assert {first, second}.isdisjoint({chat})

    run(scenario())


def test_the_palette_runs_main_actions_and_help_opens_on_the_current_screen(workspace):
    async def scenario():
        app = WorkbenchApp(Service(workspace.root))
        async with app.run_test(size=(160, 48)) as pilot:
            await settle(app, pilot)
            await pilot.press("ctrl+p")
            await pilot.pause()
            await pilot.press(*"pull a model", "enter")
            await settle(app, pilot)
            assert app.current_mode == "models" and app.focused.id == "hub-query"

            await pilot.press("ctrl+p")
            await pilot.pause()
            await pilot.press(*"ingest a file", "enter")
            await settle(app, pilot)
            assert app.current_mode == "documents" and app.focused.id == "ingest-path"

            await pilot.press("escape", "7", "question_mark")
            await pilot.pause()
            assert isinstance(app.screen, HelpScreen)
            tabs = app.screen.query_one(TabbedContent)
            assert tabs.active == "help-traces", "help opens on the screen it was asked from"
            shown = str(app.screen.query_one("#help-traces Static").render())
            assert "text (in a prompt or answer)" in shown
            for pane in app.screen.query(TabPane):  # every line fits the box: no ragged wraps
                text = str(pane.query_one(Static).render())
                assert max(len(line) for line in text.splitlines()) <= HELP_WIDTH, pane.id
            await pilot.press("escape")
            assert not isinstance(app.screen, HelpScreen)

    run(scenario())


def test_a_usage_chart_of_one_day_draws_a_week_of_days():
    """One day of calls drew one bar across the whole chart; days without calls are zeros."""
    days = _every_day([{"day": "2026-12-06", "cloud_cost_usd": 0.5, "local_cost_usd": 0.0, "calls": 3}])
    assert [d["label"] for d in days] == ["11-30", "12-01", "12-02", "12-03", "12-04", "12-05", "12-06"]
    assert [d["calls"] for d in days] == [0] * 6 + [3] and days[-1]["cloud_cost_usd"] == 0.5
    gap = _every_day(
        [
            {"day": "2026-11-20", "cloud_cost_usd": 0.0, "local_cost_usd": 0.0, "calls": 1},
            {"day": "2026-12-06", "cloud_cost_usd": 0.0, "local_cost_usd": 0.0, "calls": 2},
        ]
    )
    assert len(gap) == 17 and [d["calls"] for d in gap if d["calls"]] == [1, 2]


def test_compare_columns_follow_their_answers_to_the_end(local_and_cloud, cloud):
    """Each column scrolled to the end of the text before the newest piece, so a growing answer
    sat a line or more above its end."""
    cloud.answer = lambda body: [f"line {n}\n\n" for n in range(60)]

    async def scenario():
        app = WorkbenchApp(local_and_cloud)
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.press("4")
            await settle(app, pilot)
            app.screen.query_one("#cmp-models", Input).value = "remote/big, smollm2"
            app.screen.query_one("#cmp-prompt", Input).focus()
            await pilot.press(*"Say hi.", "enter")
            await settle(app, pilot)
            column = app.screen.query_one("#cmp-col-0")
            assert "line 59" in text_of(app, "#cmp-text-0")
            assert column.max_scroll_y > 0 and column.scroll_y == column.max_scroll_y

    run(scenario())


def test_playground_regenerates_edits_and_resends_and_opens_the_cited_passages(
    local_and_cloud, cloud, tmp_path
):
    answers = iter(range(1, 100))
    cloud.answer = lambda body: [f"Answer {next(answers)}, see [1]."]
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "colours.md").write_text("# Colours\n\nThe workbench's logo is teal and amber.\n")
    local_and_cloud.ingest("notes", str(notes))

    def sent() -> list[tuple[str, str]]:
        return [(m["role"], m["content"]) for m in cloud.requests[-1]["body"]["messages"]]

    async def scenario():
        app = WorkbenchApp(local_and_cloud)
        async with app.run_test(size=(160, 48)) as pilot:
            await pilot.press("3")
            await settle(app, pilot)
            screen = app.screen
            screen.query_one("#chat-model", Select).value = "remote/big"
            screen.query_one("#chat-input", Input).focus()
            await pilot.press(*"Q1", "enter")
            await settle(app, pilot)
            assert [t["content"] for t in screen.history] == ["Q1", "Answer 1, see [1]."]

            await pilot.press("ctrl+r")  # regenerate: the same question, a new answer in place
            await settle(app, pilot)
            assert [t["content"] for t in screen.history] == ["Q1", "Answer 2, see [1]."]
            assert sent() == [("user", "Q1")]

            await pilot.press("up")  # edit and resend: the last question back in the field
            assert screen.query_one("#chat-input", Input).value == "Q1"
            await pilot.press(*" and more", "enter")
            await settle(app, pilot)
            assert [t["content"] for t in screen.history] == ["Q1 and more", "Answer 3, see [1]."]
            assert sent() == [("user", "Q1 and more")]

            # from a collection: ctrl+o opens the passages the citations point to, with their text
            screen.query_one("#chat-collection", Select).value = "notes"
            await pilot.press(*"What colour is the logo?", "enter")
            await settle(app, pilot)
            assert "cited" in text_of(app, "#chat-figures")
            await pilot.press("ctrl+o")
            await pilot.pause()
            assert isinstance(app.screen, SourcesScreen)
            shown = text_of(app, "#sources")
            assert "[1]" in shown and "colours.md" in shown and "teal and amber" in shown and "cited" in shown
            await pilot.press("escape")
            assert not isinstance(app.screen, SourcesScreen)

    run(scenario())


def test_documents_and_models_are_current_when_shown_again(model_workspace, tmp_path):
    """A collection made elsewhere (the CLI, another screen) showed only after ctrl+r."""
    service = Service(model_workspace.root)
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "a.md").write_text("# A\n\nSome text to find.\n")

    async def scenario():
        app = WorkbenchApp(service)
        async with app.run_test(size=(160, 48)) as pilot:
            await pilot.press("2")
            await settle(app, pilot)
            table = app.screen.query_one("#collections", DataTable)
            assert table.row_count == 0
            await pilot.press("escape", "1")
            await settle(app, pilot)
            service.ingest("notes", str(notes))
            await pilot.press("escape", "2")
            await settle(app, pilot)
            assert table.row_count == 1 and str(table.get_row_at(0)[0]) == "notes"

    run(scenario())
    service.models.close()


def test_evals_lists_datasets_added_meanwhile_when_shown_again(workspace):
    service = Service(workspace.root)
    (service.evals.dir / "first.jsonl").write_text('{"id": "a", "input": "hi", "expected": "hello"}\n')

    async def scenario():
        app = WorkbenchApp(service)
        async with app.run_test(size=(160, 48)) as pilot:
            await pilot.press("6")
            await settle(app, pilot)
            datasets = app.screen.query_one("#ev-datasets", DataTable)
            assert datasets.row_count == 1
            await pilot.press("escape", "1")
            await settle(app, pilot)
            (service.evals.dir / "second.jsonl").write_text('{"id": "b", "input": "yo", "expected": "hey"}\n')
            await pilot.press("escape", "6")
            await settle(app, pilot)
            names = [str(datasets.get_row_at(i)[0]) for i in range(datasets.row_count)]
            assert sorted(names) == ["first", "second"]
            assert app.screen.dataset == "first", "the dataset picked before stays picked"

    run(scenario())
