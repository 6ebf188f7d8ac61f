"""Feedback on answers: ratings stored as scores on the trace (who, when, from where, a note),
shown in `traces list/show` and the Traces screen, and exported with the trace as OTLP events."""

from __future__ import annotations

import json

from textual.widgets import DataTable

from tests.conftest import run_cli
from tests.test_tui import cells, run, settle
from tui.app import WorkbenchApp
from tui.screens.traces import COLUMNS, TracesScreen
from workbench.services import Service


def answered(service: Service) -> str:
    with service.tracer.span("demo.answer", "workflow") as root:
        with service.tracer.span("llm.chat", "llm", {"gen_ai.request.model": "smollm2"}) as llm:
            llm.set_payload(output="Paris.")
    service.flush_traces()
    return root.trace_id


def test_rate_from_the_cli_list_show_and_export(workspace, monkeypatch):
    monkeypatch.setenv("WORKBENCH_USER", "ada")
    trace_id = answered(Service(workspace.root))
    first = run_cli("traces", "rate", trace_id[:10], "up", "--note", "right and short", check=True)
    assert first.stdout.strip() == f"rated {trace_id[:16]} up: 1 up, 0 down"
    assert (
        run_cli("traces", "rate", trace_id[:10], "down", check=True).stdout.strip().endswith("1 up, 1 down")
    )

    listing = run_cli("traces", "list", check=True).stdout
    assert "FEEDBACK" in listing and "+1/-1" in listing
    shown = run_cli("traces", "show", trace_id[:10], check=True).stdout
    assert "rated up by ada (cli," in shown and shown.rstrip().count("rated ") == 2
    assert "right and short" in shown

    document = json.loads(run_cli("traces", "export", trace_id, check=True).stdout)
    spans = document["resourceSpans"][0]["scopeSpans"][0]["spans"]
    root = next(s for s in spans if not s["parentSpanId"])
    assert [e["name"] for e in root["events"]] == ["workbench.feedback", "workbench.feedback"]
    first_event = {a["key"]: a["value"] for a in root["events"][0]["attributes"]}
    assert first_event["workbench.feedback.value"] == {"doubleValue": 1.0}
    assert first_event["workbench.feedback.note"] == {"stringValue": "right and short"}
    assert first_event["workbench.feedback.author"] == {"stringValue": "ada"}
    assert all("events" not in s for s in spans if s["parentSpanId"])

    # Mistakes are one clear line each: a verdict that is not up/down, a trace that is not there.
    bad = run_cli("traces", "rate", trace_id[:10], "meh")
    assert bad.returncode == 2 and "'meh' is not one of 'up', 'down'" in bad.stderr
    missing = run_cli("traces", "rate", "abcdef12", "up")
    assert missing.returncode == 6 and missing.stderr.startswith("error: no trace abcdef12")
    assert Service(workspace.root).trace_feedback(trace_id)["up"] == 1


def test_rate_the_highlighted_trace_in_the_traces_screen(workspace):
    service = Service(workspace.root)
    trace_id = answered(service)

    async def scenario():
        app = WorkbenchApp(service)
        async with app.run_test(size=(180, 50)) as pilot:
            await pilot.press("7")
            await settle(app, pilot)
            assert isinstance(app.screen, TracesScreen)
            table = app.screen.query_one("#traces", DataTable)
            feedback = COLUMNS.index("feedback")
            assert cells(table, 0)[feedback] == ""
            await pilot.press("plus", *"right", "enter")
            await settle(app, pilot)
            assert cells(table, 0)[feedback] == "+1/-0"
            await pilot.press("minus", "enter", "minus", "enter", "minus", "escape")  # the last one dropped
            await settle(app, pilot)
            assert cells(table, 0)[feedback] == "+1/-2"

    run(scenario())
    ratings = service.trace_feedback(trace_id)["ratings"]
    assert [r["value"] for r in ratings] == [1.0, -1.0, -1.0] and {r["source"] for r in ratings} == {"traces"}
    assert [r["note"] for r in ratings] == ["right", None, None]
