"""A human approval step in an agent node: a call to a tool marked `approve` stops the run (a
LangGraph interrupt, status "waiting") with the call shown; `workbench run --resume ID --approve`
runs it and the loop goes on where it was (no model call made twice), `--deny --note` gives
the model the refusal instead. The model is our loopback cloud, scripted, so the loop's turns
are known."""

from __future__ import annotations

import json

from tests.conftest import run_cli
from tests.fake_cloud import FakeCloud

TOOLS = '''
from pathlib import Path


def send_mail(to: str, body: str) -> str:
    """Send an e-mail (here: write it to outbox.txt)."""
    Path("{outbox}").write_text(f"to {{to}}: {{body}}")
    return f"sent to {{to}}"
'''

AGENT = """\
name: mailer
start: agent
nodes:
  agent:
    type: agent
    model: remote/big
    prompt:
      id: mailer
      template: "{input}"
    tools: [send_mail, calculator]
    approve: [send_mail]
    max_steps: 4
    next: end
"""


def _model(body):
    results = [m for m in body["messages"] if m["role"] == "tool"]
    if not results:
        arguments = json.dumps({"to": "ana@example.com", "body": "The report is ready."})
        return {"calls": [{"id": "call_m1", "name": "send_mail", "arguments": [arguments]}]}
    return [f"Done: {results[-1]['content']}"]


def _setup(workspace, upstream, outbox) -> None:
    (workspace.root / "tools").mkdir(exist_ok=True)
    (workspace.root / "tools" / "mail.py").write_text(TOOLS.format(outbox=outbox))
    (workspace.root / "workflows" / "mailer.yaml").write_text(AGENT)
    workspace.config_path.write_text(f'[cloud.remote]\nbase_url = "{upstream.url}"\nmodels = ["big"]\n')


def test_a_call_waits_for_approval_then_runs_once_approved(model_workspace, tmp_path):
    outbox = tmp_path / "outbox.txt"
    upstream = FakeCloud(answer=_model)
    try:
        _setup(model_workspace, upstream, outbox)
        waiting = run_cli("run", "mailer", "--input", "Tell Ana the report is ready.", "--json", timeout=120)
        assert waiting.returncode == 0, waiting.stderr
        outcome = json.loads(waiting.stdout)
        thread = outcome["thread_id"]
        (ask,) = outcome["waiting"]["asks"]
        assert ask["tool"] == "send_mail" and json.loads(ask["arguments"])["to"] == "ana@example.com"
        assert not outbox.exists(), "nothing ran before the approval"
        listed = json.loads(run_cli("workflows", "runs", "--json").stdout)
        assert next(r for r in listed if r["thread_id"] == thread)["status"] == "waiting"

        unanswered = run_cli("run", "--resume", thread)
        assert unanswered.returncode != 0
        assert f"run {thread} waits for approval of send_mail(" in unanswered.stderr
        assert "--approve (or --deny" in unanswered.stderr

        approved = run_cli("run", "--resume", thread, "--approve", "--json", timeout=120)
        assert approved.returncode == 0, approved.stderr
        state = json.loads(approved.stdout)["state"]
    finally:
        upstream.close()
    assert outbox.read_text() == "to ana@example.com: The report is ready."
    assert state["answer"] == "Done: sent to ana@example.com"
    assert state["observations"] == [
        {"tool": "send_mail", "input": ask["arguments"], "output": "sent to ana@example.com"}
    ]
    assert len(upstream.requests) == 2, "the model was asked once before the approval and once after"
    assert state["steps"] == 2


def test_a_denied_call_tells_the_model_why(model_workspace, tmp_path):
    outbox = tmp_path / "outbox.txt"
    upstream = FakeCloud(answer=_model)
    try:
        _setup(model_workspace, upstream, outbox)
        waiting = run_cli("run", "mailer", "--input", "Tell Ana.", timeout=120)
        assert "waiting for approval: send_mail(" in waiting.stderr
        thread = waiting.stderr.split("--resume ")[1].split()[0]
        denied = run_cli("run", "--resume", thread, "--deny", "--note", "not today", "--json", timeout=120)
        assert denied.returncode == 0, denied.stderr
        state = json.loads(denied.stdout)["state"]
        again = run_cli("run", "--resume", thread, "--approve")
    finally:
        upstream.close()
    refusal = "denied: the user did not approve this call (not today)"
    assert not outbox.exists()
    assert state["answer"] == f"Done: {refusal}"
    assert upstream.requests[1]["body"]["messages"][-1]["content"] == refusal
    assert again.returncode != 0 and "waits for no approval" in again.stderr


def test_approve_names_tools_of_the_node():
    import pytest

    from agents.checks import parse_spec
    from workbench.core.errors import SpecError

    with pytest.raises(SpecError) as caught:
        parse_spec(AGENT.replace("approve: [send_mail]", "approve: [rm_rf]"), "workflows/mailer.yaml")
    assert [str(p) for p in caught.value.problems] == [
        "workflows/mailer.yaml:11: 'rm_rf' is not among the node's tools (at nodes.agent.approve.0)"
    ]


def test_a_run_with_no_one_to_ask_denies_the_call(model_workspace, tmp_path):
    """An eval case or a workflow answering as a model runs without checkpoints: no one can
    approve, so the call is denied and the model told so; nothing waits for ever."""
    from workbench.services import Service

    outbox = tmp_path / "outbox.txt"
    upstream = FakeCloud(answer=_model)
    try:
        _setup(model_workspace, upstream, outbox)
        service = Service(model_workspace.root)
        state, _ = service.workflows.invoke(service.workflows.load("mailer"), "Tell Ana.")
    finally:
        upstream.close()
    assert state["answer"].startswith(
        "Done: denied: the user did not approve this call (no one to approve it"
    )
    assert not outbox.exists()


def test_the_workflows_screen_asks_for_approval_and_shows_the_tool_calls(model_workspace, tmp_path):
    from textual.widgets import RichLog

    from tests.test_tui import run, settle, text_of
    from tests.test_tui_models import type_into
    from tui.app import WorkbenchApp
    from tui.approval import ApprovalDialog
    from tui.screens.workflows import WorkflowsScreen
    from workbench.services import Service

    outbox = tmp_path / "outbox.txt"
    upstream = FakeCloud(answer=_model)
    _setup(model_workspace, upstream, outbox)
    service = Service(model_workspace.root)

    async def scenario():
        app = WorkbenchApp(service)
        async with app.run_test(size=(160, 48)) as pilot:
            await pilot.press("5")
            await settle(app, pilot)
            assert isinstance(app.screen, WorkflowsScreen)
            app.screen.show("mailer")
            await type_into(pilot, app, "#wf-input", "Tell Ana the report is ready.")
            await pilot.press("enter")
            await settle(app, pilot)
            assert isinstance(app.screen, ApprovalDialog)
            calls = text_of(app, "#approval-calls")
            assert "send_mail" in calls and '"to": "ana@example.com"' in calls
            await pilot.press(*"not today", "ctrl+n")
            await settle(app, pilot)
            assert isinstance(app.screen, WorkflowsScreen)
            log = "\n".join(line.text for line in app.screen.query_one("#wf-log", RichLog).lines)
            assert "waiting for approval: send_mail" in log and "denied" in log
            assert "tool send_mail" in log and "(not today)" in log
            assert "Done: denied: the user did not approve this call (not today)" in text_of(
                app, "#wf-answer"
            )

    try:
        run(scenario())
    finally:
        upstream.close()
    assert not outbox.exists()


def test_a_waiting_run_through_the_gateway_is_answered_through_it(model_workspace, tmp_path):
    """With the workspace's gateway up, `workbench run` goes through it (/workbench/run): the
    run waits there, and `--resume ID --approve` answers it there."""
    from tests.test_server import free_port

    outbox = tmp_path / "outbox.txt"
    upstream = FakeCloud(answer=_model)
    port = free_port()
    try:
        _setup(model_workspace, upstream, outbox)
        run_cli("serve", "--port", str(port), "--background", check=True)
        waiting = run_cli("run", "mailer", "--input", "Tell Ana.", "--json", timeout=120)
        assert waiting.returncode == 0, waiting.stderr
        outcome = json.loads(waiting.stdout)
        assert outcome["waiting"]["asks"][0]["tool"] == "send_mail" and not outbox.exists()
        approved = run_cli("run", "--resume", outcome["thread_id"], "--approve", "--json", timeout=120)
    finally:
        run_cli("serve", "--stop")
        upstream.close()
    assert approved.returncode == 0, approved.stderr
    assert json.loads(approved.stdout)["state"]["answer"] == "Done: sent to ana@example.com"
    assert outbox.exists()
    from workbench.services import Service

    _, rows = Service(model_workspace.root).sql("SELECT count(*) FROM spans WHERE name = 'gateway.run'")
    assert rows[0][0] == 2, "the run and its resume went through the gateway"
