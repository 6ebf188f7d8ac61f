"""Traces to eval cases: the input as sent, the answer as expected (a liked answer a regression
case, a disliked one a case to fix), the retrieved files as sources; duplicates refused; from the
CLI (ids, --where, --dry-run, --edit) and from the Traces screen (space picks, a drafts, ctrl+s)."""

from __future__ import annotations

import json

from textual.widgets import DataTable, Input, TextArea

from tests.conftest import run_cli
from tests.test_tui import run, settle
from tui.app import WorkbenchApp
from tui.cases import CasesEditor
from tui.screens.traces import TracesScreen
from workbench.services import Service


def rag_run(service: Service, question: str, answer: str) -> str:
    """A trace shaped as a rag workflow run writes it: root input/answer, a retrieval, a model call."""
    tracer = service.tracer
    with tracer.span("workflow.run", "workflow", {"workbench.workflow": "rag"}) as root:
        root.set_payload(input=question)
        with tracer.span("node.retrieve", "workflow", {"workbench.node_type": "retrieve"}):
            with tracer.span(
                "retrieval",
                "retrieval",
                {"workbench.retrieval.paths": ["docs/a.md", "docs/b.md", "docs/a.md"]},
            ):
                pass
        with tracer.span("llm.chat", "llm", {"gen_ai.request.model": "smollm2"}) as llm:
            llm.set_payload(
                messages=[{"role": "user", "content": f"Context: ...\n\nQuestion: {question}"}], output=answer
            )
        root.set_payload(answer=answer)
    return root.trace_id


def chat(service: Service, question: str, answer: str) -> str:
    with service.tracer.span("llm.chat", "llm", {"gen_ai.request.model": "smollm2"}) as llm:
        llm.set_payload(
            messages=[
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello"},
                {"role": "user", "content": question},
            ],
            output=answer,
        )
    return llm.trace_id


def test_traces_become_cases_from_the_cli(workspace, tmp_path):
    service = Service(workspace.root)
    liked = rag_run(service, "What is the capital of France?", "Paris is the capital.")
    disliked = chat(service, "How many legs has a spider?", "Six.")
    unrated = chat(service, "Name a primary colour.", "Red.")
    service.flush_traces()
    run_cli("traces", "rate", liked, "up", check=True)
    run_cli("traces", "rate", disliked, "down", "--note", "it is eight", check=True)

    added = run_cli("eval", "add-traces", "mine", liked[:12], disliked, unrated, check=True)
    assert added.stdout.strip().endswith("added 3 cases to " + str(workspace.root / "evals" / "mine.jsonl"))
    cases = [json.loads(line) for line in (workspace.root / "evals" / "mine.jsonl").read_text().splitlines()]
    assert cases[0] == {
        "id": f"trace-{liked[:16]}",
        "input": "What is the capital of France?",
        "expected": ["Paris is the capital."],
        "sources": ["docs/a.md", "docs/b.md"],
        "tags": ["from-trace", "regression"],
    }
    assert cases[1] == {
        "id": f"trace-{disliked[:16]}",
        "input": "How many legs has a spider?",
        "tags": ["from-trace", "to-fix"],
    }
    assert cases[2]["expected"] == ["Red."] and cases[2]["tags"] == ["from-trace", "unrated"]
    listed = run_cli("eval", "datasets", check=True).stdout
    assert "mine" in listed and "from-trace, regression, to-fix, unrated" in listed

    # The same input again is refused, and the dataset is left as it was.
    before = (workspace.root / "evals" / "mine.jsonl").read_text()
    again = run_cli("eval", "add-traces", "mine", liked)
    assert again.returncode == 64
    assert f"refused: trace-{liked[:16]}: mine already asks this (case trace-{liked[:16]})" in again.stderr
    assert (workspace.root / "evals" / "mine.jsonl").read_text() == before

    # --where picks with SQL over the traces view; --dry-run shows and saves nothing.
    shown = run_cli("eval", "add-traces", "liked", "--where", "feedback_up > 0", "--dry-run", check=True)
    assert [json.loads(line)["id"] for line in shown.stdout.splitlines()] == [f"trace-{liked[:16]}"]
    assert not (workspace.root / "evals" / "liked.jsonl").exists()

    # --edit: the expected answer is written by hand before saving (any $EDITOR).
    editor = tmp_path / "editor.sh"
    editor.write_text('#!/bin/sh\nsed -i \'s/"tags"/"expected": ["eight"], "tags"/\' "$1"\n')
    editor.chmod(0o755)
    edited = run_cli(
        "eval", "add-traces", "fixed", disliked, "--edit", env={"EDITOR": str(editor)}, check=True
    )
    assert "added 1 case" in edited.stdout
    case = json.loads((workspace.root / "evals" / "fixed.jsonl").read_text())
    assert case["expected"] == ["eight"] and case["tags"] == ["from-trace", "to-fix"]

    missing = run_cli("eval", "add-traces", "mine", "abcdef12")
    assert missing.returncode == 6 and missing.stderr.startswith("error: no trace abcdef12")
    nothing = run_cli("eval", "add-traces", "mine", "--where", "name = 'nope'")
    assert nothing.returncode != 0 and "no traces to add" in nothing.stderr
    assert "Traceback" not in missing.stderr + nothing.stderr


def test_traces_become_cases_from_the_traces_screen(workspace):
    service = Service(workspace.root)
    first = rag_run(service, "What is the capital of France?", "Paris.")
    second = chat(service, "What is 2 + 2?", "4")
    service.flush_traces()

    async def scenario():
        app = WorkbenchApp(service)
        async with app.run_test(size=(160, 50)) as pilot:
            await pilot.press("7")
            await settle(app, pilot)
            assert isinstance(app.screen, TracesScreen)
            app.screen.query_one("#traces", DataTable).focus()
            await pilot.press("space", "down", "space", "a")
            await settle(app, pilot)
            assert isinstance(app.screen, CasesEditor)
            area = app.screen.query_one("#cases-text", TextArea)
            drafted = [json.loads(line) for line in area.text.splitlines()]
            assert [c["id"] for c in drafted] == [f"trace-{second[:16]}", f"trace-{first[:16]}"]
            # A broken edit keeps the dialog open, with the edits, and says what is wrong.
            area.text = area.text.replace('"input"', '"inptu"', 1)
            await pilot.press("ctrl+s")
            await pilot.pause()
            assert isinstance(app.screen, CasesEditor) and "unknown field(s) inptu" in str(
                app.screen.query_one("#cases-error").render()
            )
            area.text = area.text.replace('"inptu"', '"input"').replace('"4"', '"four"')
            app.screen.query_one("#cases-dataset", Input).value = "picked"
            await pilot.press("ctrl+s")
            await settle(app, pilot)
            assert isinstance(app.screen, TracesScreen)

    run(scenario())
    saved = [
        json.loads(line) for line in (workspace.root / "evals" / "picked.jsonl").read_text().splitlines()
    ]
    assert [c["input"] for c in saved] == ["What is 2 + 2?", "What is the capital of France?"]
    assert saved[0]["expected"] == ["four"]
