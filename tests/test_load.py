"""Load: 100,000 traces paged in the Traces screen; a 1,000-case eval; the app open while a CLI
ingest and a CLI eval write to the same workspace, every count checked afterwards."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from textual.widgets import DataTable, Input

from tests.conftest import BIN
from tests.fake_cloud import FakeCloud
from tests.test_tui import cells, settle, text_of
from tui.app import WorkbenchApp
from workbench.core.tracing import attributes as A
from workbench.services import Service

ROOT = Path(__file__).resolve().parent.parent
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
            assert cells(table, 0)[3] == "5"  # spans of the newest trace
            await pilot.press("right_curly_bracket")  # the last page
            await settle(app, pilot)
            assert "99,901-100,000 of 100,000" in text_of(app, "#page")
            assert table.row_count == 100 and cells(table, 99)[1] == "demo.run0", "the oldest comes last"
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
            assert {cells(table, i)[1] for i in range(table.row_count)} == {"demo.run3"}

    asyncio.run(scenario())


def test_the_app_a_cli_ingest_and_a_1000_case_eval_at_once(model_workspace, tmp_path):
    """Three processes on one workspace: the app browsing (headless), `workbench ingest` and a
    1,000-case `workbench eval run` against the loopback cloud. No lock error anywhere, and
    afterwards every count is exact: 1,000 results, 1,000 case traces, every file's chunks."""
    cloud = FakeCloud(delay=0.002)
    try:
        model_workspace.config_path.write_text(
            f'[cloud.remote]\nbase_url = "{cloud.url}"\nmodels = ["big"]\n'
        )
        cases = [
            {"id": f"q{i:04d}", "input": f"Question {i}: what is the capital of France?", "expected": "Paris"}
            for i in range(1000)
        ]
        (model_workspace.evals_dir / "load.jsonl").write_text("".join(json.dumps(c) + "\n" for c in cases))
        corpus = tmp_path / "corpus"
        corpus.mkdir()
        for i in range(120):
            (corpus / f"note{i:03d}.md").write_text(
                f"# Note {i}\n\nThe lighthouse keeper wrote entry {i} about the {i % 9} storms.\n\n"
                f"## Later\n\nShips passed by: {', '.join(str(n) for n in range(i % 40))}.\n"
            )
        env = {**os.environ, "WORKBENCH_HOME": str(model_workspace.root)}
        app = subprocess.Popen(
            [sys.executable, "-m", "tests.proc_helpers", "app", str(model_workspace.root)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        ingest = subprocess.Popen(
            [str(BIN / "workbench"), "ingest", str(corpus), "-c", "notes", "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        evaluation = subprocess.Popen(
            [str(BIN / "workbench"), "eval", "run", "load", "-m", "remote/big", "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        ingested, ingest_err = ingest.communicate(timeout=600)
        evaluated, eval_err = evaluation.communicate(timeout=600)
        (model_workspace.root / "stop-app").touch()
        browsed, app_err = app.communicate(timeout=120)
    finally:
        cloud.close()
    assert ingest.returncode == 0, ingest_err
    assert evaluation.returncode == 0, eval_err
    assert app.returncode == 0, app_err
    for err in (ingest_err, eval_err, app_err):
        assert "Traceback" not in err and "lock" not in err.lower(), err
    assert "errors=[]" in browsed and int(browsed.split("rounds=")[1].split()[0]) > 0, browsed

    service = Service(model_workspace.root)
    run_id = json.loads(evaluated)["run_id"]
    results = service.evals.results(run_id)
    assert len(results) == 1000 and len({r["case_id"] for r in results}) == 1000
    assert service.evals.run_row(run_id)["status"] == "done"
    assert service.evals.show(run_id)["summary"]["remote/big"]["contains"] == 1.0
    traces = service.sql(
        f"SELECT count(DISTINCT trace_id) FROM spans WHERE name = 'eval.case' "
        f"AND json_extract_string(attributes, '$.\"workbench.eval.run_id\"') = '{run_id}'"
    )[1]
    assert traces == [(1000,)], "every case is a trace, none lost"
    assert len({r["trace_id"] for r in results}) == 1000

    notes = service.collection("notes")
    assert notes["files"] == 120 and len(json.loads(ingested)["added"]) == 120
    reference = service.ingest("reference", str(corpus))  # the same corpus with nothing else running
    assert notes["rows"] == reference.rows
    rows = service.collections.table("notes").search().select(["id"]).limit(100_000).to_arrow()
    assert len(set(rows["id"].to_pylist())) == rows.num_rows == notes["rows"], "no duplicate chunk"
    hits = service.search("notes", "lighthouse keeper storms", k=3)
    assert hits and "note" in hits[0]["path"]
