"""Pilot tests for the screens that talk to real models: Playground and Compare, with SmolLM2 on
llama.cpp and a loopback cloud endpoint."""

from __future__ import annotations

from textual.widgets import DataTable, Input, Select

from tests.fake_cloud import ANSWER
from tests.test_tui import cells, run, settle, text_of
from tui.app import WorkbenchApp
from tui.rating import RateNote
from tui.screens.compare import CompareScreen
from tui.screens.playground import PlaygroundScreen
from workbench.services import Service


async def type_into(pilot, app, selector: str, text: str) -> None:
    app.screen.query_one(selector, Input).focus()
    await pilot.press(*text)


def test_playground_streams_a_chat_with_its_figures(local_and_cloud):
    async def scenario():
        app = WorkbenchApp(local_and_cloud)
        async with app.run_test(size=(160, 50)) as pilot:
            await pilot.press("3")
            await settle(app, pilot)
            assert isinstance(app.screen, PlaygroundScreen)
            select = app.screen.query_one("#chat-model", Select)
            assert select.value == "smollm2", "the first local model is picked"
            app.screen.query_one("#chat-temperature", Input).value = "0"
            app.screen.query_one("#chat-max-tokens", Input).value = "16"
            await type_into(pilot, app, "#chat-input", "Hi")
            await pilot.press("enter")
            await settle(app, pilot)
            transcript = text_of(app, "#chat-transcript")
            answer = app.screen.history[-1]
            assert answer["role"] == "assistant" and answer["content"].strip()
            assert "you: Hi" in transcript and answer["content"].strip()[:20] in transcript
            figures = text_of(app, "#chat-figures")
            assert "smollm2 on cpu" in figures and "tok/s" in figures and "trace " in figures

            # Out of the chat field, + rates the answer, with a note; in the field it is text.
            await pilot.press("escape", "plus")
            await pilot.pause()
            assert isinstance(app.screen, RateNote)
            await pilot.press(*"to the point", "enter")
            await settle(app, pilot)
            assert isinstance(app.screen, PlaygroundScreen)
            first_trace = app.screen.trace_id
            ratings = local_and_cloud.trace_feedback(first_trace)["ratings"]
            assert [(r["value"], r["note"], r["source"]) for r in ratings] == [
                (1.0, "to the point", "playground")
            ]
            await type_into(pilot, app, "#chat-input", "1+1-1")
            assert app.screen.query_one("#chat-input", Input).value == "1+1-1"
            app.screen.query_one("#chat-input", Input).value = ""

            # A second turn carries the first one; then the cloud model answers the same chat.
            select.value = "remote/big"
            await type_into(pilot, app, "#chat-input", "More")
            await pilot.press("enter")
            await settle(app, pilot)
            assert [turn["role"] for turn in app.screen.history] == ["user", "assistant"] * 2
            assert app.screen.history[-1]["content"] == "".join(ANSWER)
            assert "remote/big" in text_of(app, "#chat-figures")

            await pilot.press("ctrl+l")
            assert app.screen.history == [] and "New chat" in text_of(app, "#chat-transcript")
            # Escape leaves the text field, so that a digit switches screens again.
            await pilot.press("escape", "7")
            assert app.screen.MODE == "traces"

    run(scenario())


def test_compare_streams_side_by_side_and_shows_errors_in_place(local_and_cloud):
    async def scenario():
        app = WorkbenchApp(local_and_cloud)
        async with app.run_test(size=(160, 50)) as pilot:
            await pilot.press("4")
            await settle(app, pilot)
            assert isinstance(app.screen, CompareScreen)
            models = app.screen.query_one("#cmp-models", Input)
            assert models.value == "smollm2, gemma3-270m", "prefilled with two local models"
            models.value = "smollm2, remote/big, nope"
            await type_into(pilot, app, "#cmp-prompt", "Hello")
            await pilot.press("enter")
            await settle(app, pilot)
            columns = app.screen.query(".cmp-column")
            assert len(columns) == 3
            local, cloud, missing = (text_of(app, f"#cmp-text-{i}") for i in range(3))
            assert local.startswith("smollm2\n") and len(local) > len("smollm2\n")
            assert cloud == "remote/big\n" + "".join(ANSWER)
            assert "tok/s" in text_of(app, "#cmp-fig-0") and "tok/s" in text_of(app, "#cmp-fig-1")
            assert "no model named 'nope'" in text_of(app, "#cmp-fig-2")

            # Out of the prompt field, - rates one model's answer, chosen in the dialog.
            await pilot.press("escape", "minus")
            await pilot.pause()
            assert isinstance(app.screen, RateNote)
            # by keys alone: the answer to rate first, tab, the note, enter
            assert app.focused is app.screen.query_one("#rate-subject", Select)
            await pilot.press("enter", "down", "enter")
            await pilot.pause()
            assert app.screen.query_one("#rate-subject", Select).value == "remote/big"
            await pilot.press("tab", *"too long", "enter")
            await settle(app, pilot)
            ratings = local_and_cloud.trace_feedback(app.screen.trace_id)["ratings"]
            assert [(r["value"], r["subject"], r["note"], r["source"]) for r in ratings] == [
                (-1.0, "remote/big", "too long", "compare")
            ]

            models.value = "smollm2"
            await type_into(pilot, app, "#cmp-prompt", "!")
            await pilot.press("enter")
            await pilot.pause()
            assert any("2 to 4 models" in n.message for n in app._notifications)
            assert len(app.screen.query(".cmp-column")) == 3, "the last results stay"

    run(scenario())


def test_playground_without_models_says_how_to_get_some(workspace):
    service = Service(workspace.root)

    async def scenario():
        app = WorkbenchApp(service)
        async with app.run_test(size=(160, 50)) as pilot:
            await pilot.press("3")
            await settle(app, pilot)
            assert "workbench models fetch" in text_of(app, "#chat-transcript")
            await type_into(pilot, app, "#chat-input", "Hi")
            await pilot.press("enter")
            await pilot.pause()
            assert any("Pick a model" in n.message for n in app._notifications)
            assert app.screen.query_one("#chat-input", Input).value == "Hi", "nothing typed is lost"

    run(scenario())


def test_models_screen_catalog_plan_load_cloud_and_offline(model_workspace, monkeypatch):
    secret = "sk-test-DO-NOT-SHOW-1234567890"
    monkeypatch.setenv("WB_TEST_KEY_SET", secret)
    monkeypatch.delenv("WB_TEST_KEY_UNSET", raising=False)
    model_workspace.config_path.write_text(
        '[cloud.hosted]\nbase_url = "https://api.example.com/v1"\napi_key_env = "WB_TEST_KEY_SET"\n'
        'models = ["m1"]\n[cloud.other]\nkind = "anthropic"\nbase_url = "https://api.example.org/v1"\n'
        'api_key_env = "WB_TEST_KEY_UNSET"\nmodels = ["m2"]\n[cloud.mine]\nbase_url = "http://127.0.0.1:9/v1"\n'
    )
    service = Service(model_workspace.root)

    async def scenario():
        app = WorkbenchApp(service)
        async with app.run_test(size=(200, 50)) as pilot:
            await pilot.press("8")
            await settle(app, pilot)
            table = app.screen.query_one("#models", DataTable)
            rows = {cells(table, i)[0]: cells(table, i) for i in range(table.row_count)}
            assert rows["smollm2"][5:9] == ["llama", "Q4_1", "135M", "8192"], "read from the GGUF header"
            assert rows["minilm"][1] == "embedding"
            assert "smollm2 at 4096 tokens" in text_of(app, "#model-plan")
            assert "llama.cpp: " in text_of(app, "#gpu-status") and "offline mode: off" in text_of(
                app, "#gpu-status"
            )

            cloud = app.screen.query_one("#cloud", DataTable)
            endpoints = {cells(cloud, i)[0]: cells(cloud, i) for i in range(cloud.row_count)}
            assert endpoints["hosted"][4] == "$WB_TEST_KEY_SET set"
            assert endpoints["other"][4] == "$WB_TEST_KEY_UNSET MISSING"
            assert endpoints["mine"][4] == "none needed"
            assert all(row[5] == "yes" for row in endpoints.values())

            await pilot.press("l")
            await settle(app, pilot)
            assert service.loaded_models() == ["smollm2"]
            assert cells(table, 0)[3] == "yes"
            await pilot.press("u")
            await settle(app, pilot)
            assert service.loaded_models() == [] and cells(table, 0)[3] == ""

            await pilot.press("o")
            await settle(app, pilot)
            assert service.offline and "offline = true" in model_workspace.config_path.read_text()
            endpoints = {cells(cloud, i)[0]: cells(cloud, i) for i in range(cloud.row_count)}
            assert endpoints["hosted"][5] == "blocked offline" and endpoints["mine"][5] == "yes"
            assert "offline mode: on" in text_of(app, "#gpu-status")
            await pilot.press("o")
            await settle(app, pilot)
            assert not service.offline and "offline = false" in model_workspace.config_path.read_text()
            assert "[cloud.mine]" in model_workspace.config_path.read_text(), "the rest of the file is kept"

            shown = " ".join(str(cell) for row in endpoints.values() for cell in row)
            assert secret not in shown

    run(scenario())
    service.models.close()


def test_documents_screen_ingests_with_progress_and_searches(model_workspace, tmp_path):
    from tests import docs_corpus
    from tui.screens.documents import DocumentsScreen

    corpus = tmp_path / "corpus"
    docs_corpus.build(corpus)
    service = Service(model_workspace.root)

    async def scenario():
        app = WorkbenchApp(service)
        async with app.run_test(size=(180, 50)) as pilot:
            await pilot.press("2")
            await settle(app, pilot)
            assert isinstance(app.screen, DocumentsScreen)
            assert "No collections yet" in text_of(app, "#ingest-report")
            await type_into(pilot, app, "#ingest-path", str(corpus / "docs"))
            await type_into(pilot, app, "#ingest-collection", "kb")
            await pilot.press("enter")
            await settle(app, pilot)
            report = text_of(app, "#ingest-report")
            assert "3 added" in report and "in kb" in report
            table = app.screen.query_one("#collections", DataTable)
            assert cells(table, 0)[:3] == ["kb", service.collection("kb")["rows"], 3]
            assert app.focused is app.screen.query_one("#search-query", Input), "ready to search"
            await pilot.press(*"fog horn storm", "enter")
            await settle(app, pilot)
            hits = app.screen.query_one("#hits", DataTable)
            assert hits.row_count >= 1 and str(cells(hits, 0)[2]).endswith("manual.md")
            preview = text_of(app, "#hit-preview")
            assert "Lighthouse manual > Storm procedure" in preview and "fog horn" in preview
            assert "ranks: vector #" in preview and "fusion #" in preview, "why it made the cut"
            # Reranked with the built-in reranker: its rank is shown too.
            app.screen.query_one("#search-rerank", Select).value = "sections"
            app.screen.query_one("#search-query", Input).focus()
            await pilot.press("enter")
            await settle(app, pilot)
            assert "rerank #1" in text_of(app, "#hit-preview")

            await type_into(pilot, app, "#ingest-path", "/nowhere")
            await pilot.press("enter")
            await settle(app, pilot)
            assert any("does not exist" in n.message for n in app._notifications), "an error, not a crash"
            # ... and said where the progress was, the bar taken down (it spun on before)
            assert "ingest failed: " in text_of(app, "#ingest-report") and "does not exist" in text_of(
                app, "#ingest-report"
            )
            assert not app.screen.query_one("#ingest-progress").display

    run(scenario())


def test_a_new_request_in_the_playground_cancels_the_one_in_flight(local_and_cloud):
    import json

    async def scenario():
        app = WorkbenchApp(local_and_cloud)
        async with app.run_test(size=(160, 50)) as pilot:
            await pilot.press("3")
            await settle(app, pilot)
            screen = app.screen
            screen.query_one("#chat-temperature", Input).value = "0"
            screen.query_one("#chat-max-tokens", Input).value = "2000"
            await type_into(pilot, app, "#chat-input", "Write a long story about a dragon.")
            await pilot.press("enter")
            for _ in range(600):  # until the first answer streams
                await pilot.pause(0.05)
                if screen.answer:
                    break
            assert screen.answer, "the first answer never started"
            await type_into(pilot, app, "#chat-input", "Hi")
            await pilot.press("enter")
            await settle(app, pilot)
            turns = screen.history
            assert [t["role"] for t in turns] == ["user", "assistant", "user", "assistant"]
            assert turns[2]["content"] == "Hi" and turns[3]["content"].strip()
            assert "Hi" not in turns[1]["content"]
            # rendered as Markdown: the same words, wrapped to the pane
            assert " ".join(turns[3]["content"].split()[:4]) in " ".join(
                text_of(app, "#chat-transcript").split()
            )

    run(scenario())
    local_and_cloud.flush_traces()
    _, rows = local_and_cloud.sql("SELECT attributes FROM spans WHERE name = 'llm.chat' ORDER BY start_ns")
    finished = [json.loads(attributes)["gen_ai.response.finish_reasons"] for (attributes,) in rows]
    assert finished[0] == ["cancelled"], "the first answer stopped decoding when the second was sent"
    assert finished[1] != ["cancelled"] and len(finished) == 2


def test_a_stopped_answer_stays_on_screen_marked_and_is_not_sent_again(model_workspace):
    service = Service(model_workspace.root)
    sent: list[list[dict]] = []
    chat = service.chat

    def recording(model, messages, *args, **kwargs):
        sent.append([dict(m) for m in messages])
        return chat(model, messages, *args, **kwargs)

    service.chat = recording

    async def scenario():
        app = WorkbenchApp(service)
        async with app.run_test(size=(160, 48)) as pilot:
            await pilot.press("3")
            await settle(app, pilot)
            app.screen.query_one("#chat-temperature", Input).value = "0"
            app.screen.query_one("#chat-max-tokens", Input).value = "2000"
            await type_into(pilot, app, "#chat-input", "Tell a long story about the sea")
            await pilot.press("enter")
            for _ in range(600):  # until the first words are on the screen (a loaded machine: slow)
                await pilot.pause(0.05)
                if app.screen.answer:
                    break
            assert app.screen.pending, "still answering: 2,000 tokens take a while"
            field = app.screen.query_one("#chat-input", Input)
            field.value = "Hi"  # at once, rather than typed: the answer must still be running
            field.focus()
            await pilot.press("enter")  # a new message stops the answer in flight
            await settle(app, pilot)
            history = app.screen.history
            assert [t["role"] for t in history] == ["user", "assistant", "user", "assistant"]
            assert history[1].get("stopped") and not history[3].get("stopped")
            assert "(stopped, not sent again" in text_of(app, "#chat-transcript")
            assert [m["content"] for m in sent[-1]] == ["Tell a long story about the sea", "Hi"]
            # ctrl+y keeps it after all: the next turn sends it back
            await pilot.press("ctrl+y")
            assert "stopped, not sent again" not in text_of(app, "#chat-transcript")
            assert [t["content"] for t in app.screen._sent()][1] == history[1]["content"]
            # and the trace says so: the stopped answer's trace reads cancelled, not ok
            service.flush_traces()
            stopped, total = service.list_traces(10, 0, {"status": "cancelled"})
            assert total == 1 and stopped[0]["status"] == "cancelled"

    run(scenario())
    service.models.close()
