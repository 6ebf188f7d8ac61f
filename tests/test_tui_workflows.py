"""Pilot tests of the Workflows and Export screens, running a workflow on SmolLM2."""

from __future__ import annotations

from textual.widgets import DataTable, Input, RichLog

from tests.test_tui import cells, run, settle, text_of
from tests.test_tui_models import type_into
from tui.app import WorkbenchApp
from tui.screens.export import ExportScreen
from tui.screens.traces import TracesScreen
from tui.screens.workflows import WorkflowsScreen
from workbench.services import Service


def test_workflows_screen_creates_shows_and_runs_a_workflow(model_workspace):
    service = Service(model_workspace.root)

    async def scenario():
        app = WorkbenchApp(service)
        async with app.run_test(size=(180, 50)) as pilot:
            await pilot.press("5")
            await settle(app, pilot)
            assert isinstance(app.screen, WorkflowsScreen)
            assert "No workflows yet" in text_of(app, "#wf-graph")
            await pilot.press("ctrl+n", *"helper", "enter")  # the router template is picked below
            await settle(app, pilot)
            app.screen.query_one("#wf-template").value = "router"
            await type_into(pilot, app, "#wf-new-name", "triage")
            await pilot.press("enter")
            await settle(app, pilot)
            table = app.screen.query_one("#workflows", DataTable)
            assert [cells(table, i)[0] for i in range(table.row_count)] == ["helper", "triage"]
            app.screen.show("triage")
            await settle(app, pilot)
            graph = text_of(app, "#wf-graph")
            assert "classify (route: classify by smollm2)" in graph and "if label == simple -> local" in graph

            (model_workspace.workflows_dir / "broken.yaml").write_text(
                "name: broken\nstart: nowhere\nnodes:\n  a:\n    type: nope\n"
            )
            await pilot.press("ctrl+r")
            await settle(app, pilot)
            app.screen.show("broken")
            await settle(app, pilot)
            assert "broken.yaml:5: unknown node type 'nope'" in text_of(app, "#wf-graph")

            app.screen.show("triage")
            await settle(app, pilot)
            await type_into(pilot, app, "#wf-input", "Hello there!")
            await pilot.press("enter")
            await settle(app, pilot)
            log = "\n".join(line.text for line in app.screen.query_one("#wf-log", RichLog).lines)
            assert "> redact" in log and "> classify" in log and "finished" in log
            answer = text_of(app, "#wf-answer")
            assert "trace " in answer and app.screen.trace_id
            await pilot.press("escape", "plus", "enter")  # rate the run's answer, no note
            await settle(app, pilot)
            ratings = service.trace_feedback(app.screen.trace_id)["ratings"]
            assert [(r["value"], r["note"], r["source"]) for r in ratings] == [(1.0, None, "workflows")]
            # ctrl+s stops a run at its next node: the log says where and how to resume. (Called
            # directly: a key press returns only when the app is idle, after the run.)
            field = app.screen.query_one("#wf-input", Input)
            app.screen.start_run(Input.Submitted(field, "Hello again!"))
            app.screen.action_stop()
            await settle(app, pilot)
            log = "\n".join(line.text for line in app.screen.query_one("#wf-log", RichLog).lines)
            assert "stopped at node" in log and "workbench run --resume" in log, log
            assert service.workflows.runs()[0]["status"] == "stopped"
            await pilot.press("ctrl+s")
            assert "No workflow is running." in [n.message for n in app._notifications]

            await pilot.press("escape", "ctrl+t")
            await settle(app, pilot)
            assert isinstance(app.screen, TracesScreen)

            await pilot.press("9")
            await settle(app, pilot)
            assert isinstance(app.screen, ExportScreen)
            app.screen.query_one("#export-workflow").value = "triage"
            await settle(app, pilot)
            files = app.screen.query_one("#export-files", DataTable)
            names = [cells(files, i)[0] for i in range(files.row_count)]
            assert "langgraph.json" in names and "triage_graph.py" in names
            assert not (model_workspace.exports_dir / "triage").exists(), "a preview writes nothing"
            await pilot.press("ctrl+w")
            await settle(app, pilot)
            assert (model_workspace.exports_dir / "triage" / "langgraph" / "langgraph.json").is_file()
            assert "wrote 21 files" in text_of(app, "#export-status")

    run(scenario())
    service.models.close()
