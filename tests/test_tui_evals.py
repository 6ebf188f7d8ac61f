"""Pilot test of the Evals screen: launch a run with a progress bar per model, read its figures,
drill into a case, diff two runs."""

from __future__ import annotations

import json

from textual.widgets import DataTable, ProgressBar

from tests.test_evals import evals  # noqa: F401 - the fixture
from tests.test_tui import cells, run, settle, text_of
from tests.test_tui_models import type_into
from tui.app import WorkbenchApp
from tui.screens.evals import EvalsScreen
from tui.screens.traces import TracesScreen


def test_evals_screen_runs_shows_and_diffs(evals, monkeypatch):  # noqa: F811
    # Rows go into the table a few at a time with the event loop served between (2,000 at once
    # held it for 110-140 ms); 3 per turn here, so the 8 rows take three turns.
    monkeypatch.setattr("tui.screens.evals._ROWS_PER_TURN", 3)

    async def scenario():
        app = WorkbenchApp(evals)
        async with app.run_test(size=(200, 55)) as pilot:
            await pilot.press("6")
            await settle(app, pilot)
            assert isinstance(app.screen, EvalsScreen)
            datasets = app.screen.query_one("#ev-datasets", DataTable)
            assert cells(datasets, 0)[:2] == ["small", 4]
            await type_into(pilot, app, "#ev-models", "remote/big, smollm2")
            await pilot.press("enter")
            await settle(app, pilot)
            bars = list(app.screen.query(ProgressBar))
            assert len(bars) == 2 and all(bar.progress == bar.total == 4 for bar in bars)
            summary = app.screen.query_one("#ev-summary", DataTable)
            rows = {cells(summary, i)[0]: cells(summary, i) for i in range(summary.row_count)}
            contains = [str(c.label) for c in summary.columns.values()].index("contains")
            assert set(rows) == {"remote/big", "smollm2"} and rows["remote/big"][contains] == "1"
            cases = app.screen.query_one("#ev-cases", DataTable)
            assert cases.row_count == 8
            shown = app.screen.shown["results"]
            assert [cells(cases, i)[:2] for i in range(8)] == [[r["case_id"], r["subject"]] for r in shown]
            detail = text_of(app, "#ev-case")
            assert "input" in detail and "remote/big" in detail and "smollm2" in detail and "trace " in detail
            first = app.screen.run_id
            await pilot.press("escape", "ctrl+o")
            await settle(app, pilot)
            assert app.screen.query_one("#ev-tabs").active == "ev-tab-matrix"
            # every case against both models, pass/fail marked from the case's metrics
            matrix = app.screen.query_one("#ev-matrix", DataTable)
            assert [str(c.label) for c in matrix.columns.values()] == ["case", "remote/big", "smollm2"]
            assert matrix.row_count == 4
            # the cases' pass/fail metric: contains (c1-c3), json_valid (c4, a JSON schema case)
            contains = {
                (r["case_id"], r["subject"]): (r["metrics"] or {}).get(
                    "contains", (r["metrics"] or {}).get("json_valid")
                )
                for r in shown
            }
            for i in range(4):
                case, big, small = cells(matrix, i)
                assert big.startswith(("✓ " if contains[(case, "remote/big")] == 1 else "✗ ") + "The capital")
                assert small[0] == ("✓" if contains[(case, "smollm2")] == 1 else "✗")
            failing = {case for (case, _), value in contains.items() if value == 0}
            await pilot.press("f")
            await pilot.pause()
            assert {cells(matrix, i)[0] for i in range(matrix.row_count)} == failing
            assert all(
                "✗" in (cells(matrix, i)[1][0] + cells(matrix, i)[2][0]) for i in range(matrix.row_count)
            )
            await pilot.press("f", "ctrl+o")
            await settle(app, pilot)
            assert app.screen.query_one("#ev-tabs").active == "ev-tab-chart"
            # the axes start at 0 and hold the points (quality 0..1), not a -1..1 frame
            plt = app.screen.query_one("#ev-chart").plt
            drawn = plt.uncolorize(plt.build())
            assert "0.00┤" in drawn and "-1" not in drawn, drawn

            await pilot.press("ctrl+b")
            await type_into(pilot, app, "#ev-models", "smollm2")
            app.screen.query_one("#ev-models").value = "smollm2"
            await pilot.press("enter")
            await settle(app, pilot)
            second = app.screen.run_id
            assert second != first
            app.screen.show_run(second)
            await settle(app, pilot)
            diff = text_of(app, "#ev-diff")
            assert f"{second}" in diff and "paired cases" in diff and "contains" in diff
            # the matrix puts the baseline's models beside the run's
            labels = [str(c.label) for c in app.screen.query_one("#ev-matrix", DataTable).columns.values()]
            assert labels == ["case", "smollm2", "remote/big (baseline)", "smollm2 (baseline)"]

            # a case that ended in an error (the cloud failed every attempt) is run again by ctrl+e
            evals.store.write(
                [
                    (
                        "UPDATE eval_results SET error = 'remote: HTTP 500 (3 attempts)', output = NULL "
                        "WHERE run_id = ? AND case_id = 'c2'",
                        [first],
                    )
                ]
            )
            app.screen.show_run(first)
            await settle(app, pilot)
            summary = app.screen.query_one("#ev-summary", DataTable)
            errors = [str(c.label) for c in summary.columns.values()].index("errors")
            assert [cells(summary, i)[errors] for i in range(summary.row_count)] == ["1", "1"]
            await pilot.press("escape", "ctrl+e")
            await settle(app, pilot)
            fixed = {(r["subject"], r["case_id"]): r for r in evals.evals.results(first)}
            assert len(fixed) == 8 and all(r["error"] is None for r in fixed.values())
            assert fixed[("remote/big", "c2")]["output"], "the failed case ran again"

            await pilot.press("escape", "ctrl+t")
            await settle(app, pilot)
            assert isinstance(app.screen, TracesScreen)

    run(scenario())


def test_a_running_eval_stops_from_the_screen_and_resumes_later(evals):  # noqa: F811
    # Twelve cases of about a second each: the stop lands long before the last one.
    cases = [
        {"id": f"s{i}", "input": f"Count from one to {20 + i}.", "expected": "twenty"} for i in range(12)
    ]
    (evals.workspace.evals_dir / "long.jsonl").write_text("".join(json.dumps(c) + "\n" for c in cases))

    async def scenario():
        app = WorkbenchApp(evals)
        async with app.run_test(size=(200, 55)) as pilot:
            await pilot.press("6")
            await settle(app, pilot)
            datasets = app.screen.query_one("#ev-datasets", DataTable)
            datasets.move_cursor(row=[cells(datasets, i)[0] for i in range(datasets.row_count)].index("long"))
            await pilot.pause()
            assert app.screen.dataset == "long"
            await type_into(pilot, app, "#ev-models", "smollm2")
            await pilot.press("enter", "escape", "ctrl+s")
            await settle(app, pilot)
            shown = app.screen.shown
            assert shown["run"]["status"] == "stopped"
            assert len(shown["results"]) < 12, "the run stopped before its last case"
            await pilot.press("escape", "ctrl+e")
            await settle(app, pilot)
            shown = app.screen.shown
            assert shown["run"]["status"] == "done" and len(shown["results"]) == 12
            assert len({r["case_id"] for r in shown["results"]}) == 12

    run(scenario())
