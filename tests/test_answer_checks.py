"""The signs that an answer is unreliable (workbench/services/answer_checks.py), on answers of
the kinds the small local models give, and the Playground showing them with the ways forward."""

from __future__ import annotations

from textual.widgets import Input

from tests.test_tui import run, settle, text_of
from tests.test_tui_models import type_into
from tui.app import WorkbenchApp
from workbench.services import Service
from workbench.services.answer_checks import doubts, ways_forward


def test_doubts_name_what_looks_wrong_and_nothing_else():
    cited = {"sources": [{"cited": True}, {"cited": False}]}
    assert doubts("Green tea is steeped at 80 degrees [1].", "stop", cited) == []
    assert doubts("The answer is", "length", {}) == ["cut off at the token limit"]
    assert doubts("Kata " + "mendatang " * 12, "stop", {}) == ["repeats 'mendatang'"]
    (looping,) = doubts("I think " + "the cache is kept. " * 5, "stop", {})
    assert looping in ("repeats 'the cache is kept'", "repeats 'is kept the cache'"), looping
    assert doubts("libffi_call_me() does it [5].", "stop", {"sources": [{"cited": False}]}) == [
        "cites none of the passages it was given"
    ]
    assert doubts("Paris.", "stop", {}, mean_logprob=-3.1) == [
        "the model was unsure (mean log-probability -3.10)"
    ]
    assert doubts("A list: one, two, three, four, five.", "stop", {}, mean_logprob=-0.4) == []


def test_ways_forward_offer_what_the_workspace_has():
    assert ways_forward("smollm2", ["smollm2"]) == [
        "a bigger local model: 8 Models, search the Hub, p to pull the quant that fits"
    ]
    ways = ways_forward("smollm2", ["smollm2", "openai/gpt-4o-mini", "auto"])
    assert ways[0].startswith("`auto`") and "openai/gpt-4o-mini" in ways[1]


def test_the_playground_flags_a_cut_off_answer_with_the_ways_forward(model_workspace):
    service = Service(model_workspace.root)

    async def scenario():
        app = WorkbenchApp(service)
        async with app.run_test(size=(160, 48)) as pilot:
            await pilot.press("3")
            await settle(app, pilot)
            app.screen.query_one("#chat-temperature", Input).value = "0"
            app.screen.query_one("#chat-max-tokens", Input).value = "3"
            await type_into(pilot, app, "#chat-input", "Tell me a long story")
            await pilot.press("enter")
            await settle(app, pilot)
            figures = text_of(app, "#chat-figures")
            assert "this answer looks unreliable: cut off at the token limit" in figures, figures
            assert "a bigger local model: 8 Models, search the Hub" in figures

    run(scenario())
    service.models.close()
