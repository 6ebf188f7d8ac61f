"""`workbench usage`: every figure equals the same figure computed in plain Python from the spans
written into a generated workspace, the window cuts where it says, and the CLI prints, explains
(--sql) and warns (budget) as a user would expect."""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from datetime import datetime

import numpy as np
import pytest

from tests.conftest import run_cli
from tests.usage_data import DAY_NS, generate, store
from workbench.core.errors import UsageError
from workbench.services import Service, init_workspace
from workbench.services.usage import parse_since

NOW = time.time_ns()


@pytest.fixture
def history(tmp_path, monkeypatch):
    """A workspace with 6 days of generated traces in the window and 2 days before it."""
    root = tmp_path / "ws"
    init_workspace(root)
    monkeypatch.setenv("WORKBENCH_HOME", str(root))
    service = Service(root)
    inside, scores = generate(service.tracer, 1500, NOW - 6 * DAY_NS, days=6, seed=3)
    before, old_scores = generate(service.tracer, 300, NOW - 9 * DAY_NS, days=1, seed=4)
    store(service, inside + before, scores + old_scores)
    return service, [_row(s) for s in inside], scores


def _row(span) -> dict:
    a = span.attributes
    return {
        "trace_id": span.trace_id,
        "name": span.name,
        "start_ns": span.start_ns,
        "end_ns": span.end_ns,
        "ms": (span.end_ns - span.start_ns) / 1e6,
        "status": span.status,
        "error": span.error,
        "parent": span.parent_id,
        "provider": a.get("gen_ai.provider.name"),
        "model": a.get("gen_ai.request.model"),
        "in": a.get("gen_ai.usage.input_tokens"),
        "out": a.get("gen_ai.usage.output_tokens"),
        "ttft": a.get("gen_ai.server.time_to_first_token"),
        "cost": a.get("gen_ai.usage.cost"),
        "a": a,
    }


def _percentile(values, q):
    return float(np.percentile(values, q * 100)) if values else None  # linear = quantile_cont


def test_every_figure_equals_plain_python_over_the_spans(history):
    service, spans, scores = history
    report = service.usage.report(NOW - 7 * DAY_NS, by="model", until_ns=NOW + DAY_NS)
    calls = [s for s in spans if s["name"] == "llm.chat"]
    local = [c for c in calls if c["provider"] == "llama.cpp"]
    cloud = [c for c in calls if c["provider"] != "llama.cpp"]
    assert len(local) > 500 and len(cloud) > 200  # the generated history exercises both

    totals = report.one("totals")
    cloud_traces = {c["trace_id"] for c in cloud}
    assert totals["requests"] == len({c["trace_id"] for c in calls})
    assert totals["stayed_local"] == len({c["trace_id"] for c in calls} - cloud_traces)
    assert (totals["model_calls"], totals["local_calls"], totals["cloud_calls"]) == (
        len(calls),
        len(local),
        len(cloud),
    )
    assert totals["input_tokens"] == sum(c["in"] or 0 for c in calls)
    assert totals["output_tokens"] == sum(c["out"] or 0 for c in calls)
    assert totals["cloud_cost_usd"] == pytest.approx(sum(c["cost"] or 0 for c in cloud), rel=1e-12)
    assert totals["local_cost_usd"] == 0
    assert totals["failed_calls"] == sum(c["status"] == "error" for c in calls)

    by_model = {row["model"]: row for row in report.figures["by"].rows}
    latency = {row["model"]: row for row in report.figures["latency"].rows}
    assert set(by_model) == set(latency) == {c["model"] for c in calls}
    for model, row in by_model.items():
        mine = [c for c in calls if c["model"] == model]
        ok = [c for c in mine if c["status"] == "ok"]
        assert row["requests"] == len({c["trace_id"] for c in mine})
        assert row["calls"] == len(mine)
        assert row["cost_usd"] == pytest.approx(sum(c["cost"] or 0 for c in mine), rel=1e-12, abs=1e-15)
        assert row["errors"] == len(mine) - len(ok)
        assert row["p50_ms"] == pytest.approx(_percentile([c["ms"] for c in ok], 0.5))
        figures = latency[model]
        for q, column in ((0.5, "p50_ms"), (0.95, "p95_ms"), (0.99, "p99_ms")):
            assert figures[column] == pytest.approx(_percentile([c["ms"] for c in ok], q)), column
        assert figures["ttft_p95_ms"] == pytest.approx(_percentile([c["ttft"] * 1e3 for c in ok], 0.95))
        assert figures["tokens_per_s"] == pytest.approx(
            sum(c["out"] for c in ok) / (sum(c["ms"] for c in ok) / 1e3)
        )
        assert figures["place"] == ("local" if mine[0]["provider"] == "llama.cpp" else "cloud")

    per_day = defaultdict(float)
    for c in cloud:
        per_day[datetime.fromtimestamp(c["start_ns"] / 1e9).date()] += c["cost"] or 0
    got = {row["day"]: row["cloud_cost_usd"] for row in report.figures["cost_per_day"].rows}
    assert got == pytest.approx(dict(per_day))

    # Escalation: router decisions and escalate nodes, their reasons and refusals.
    routed = [s for s in spans if s["name"] == "router.ask"]
    nodes = [s for s in spans if s["a"].get("workbench.node_type") == "escalate"]
    escalated = sum(s["a"].get("workbench.route") == "cloud" for s in routed) + sum(
        "workbench.escalated_to" in s["a"] for s in nodes
    )
    refused = [
        s["a"]["workbench.escalation_refused"] for s in routed if "workbench.escalation_refused" in s["a"]
    ]
    refused += [
        s["a"]["workbench.escalation_reason"].split("; escalation refused: ")[1]
        for s in nodes
        if "refused" in s["a"]["workbench.escalation_reason"]
    ]
    escalation = report.one("escalation")
    assert escalation["decisions"] == len(routed) + len(nodes)
    assert escalation["escalated"] == escalated
    assert escalation["refused"] == len(refused)
    assert escalation["wanted"] == sum("workbench.escalation_reason" in s["a"] for s in routed) + len(nodes)
    assert escalation["escalation_rate"] == pytest.approx(escalated / (len(routed) + len(nodes)))
    top = {row["reason"]: row["times"] for row in report.figures["escalation_reasons"].rows}
    assert top["grade N < N"] == len(nodes)
    assert top["the local answer was empty"] == sum(
        s["a"].get("workbench.escalation_reason") == "the local answer was empty" for s in routed
    )
    kinds = Counter(
        "offline" if "offline" in r else "budget" if "budget" in r else "no cloud model" for r in refused
    )
    kinds["offline"] += sum(c["a"].get("workbench.refused") == "offline" for c in calls)
    assert {row["kind"]: row["times"] for row in report.figures["refusals"].rows} == dict(kinds)

    # Errors by kind, failed traces among all traces.
    errors = [s for s in spans if s["status"] == "error"]
    by_kind = Counter((s["error"].split(":")[0], s["name"]) for s in errors)
    assert {(r["kind"], r["span"]): r["spans"] for r in report.figures["errors"].rows} == dict(by_kind)
    failures = report.one("failures")
    assert failures["failed_traces"] == len({s["trace_id"] for s in errors})
    assert failures["traces"] == sum(s["parent"] is None for s in spans)

    runs = [s for s in spans if s["name"] == "workflow.run"]
    got_runs = {
        r["workflow"]: (r["runs"], r["finished"], r["failed"]) for r in report.figures["workflows"].rows
    }
    for workflow in {s["a"]["workbench.workflow"] for s in runs}:
        mine = [s for s in runs if s["a"]["workbench.workflow"] == workflow]
        ok = sum(s["status"] == "ok" for s in mine)
        assert got_runs[workflow] == (len(mine), ok, len(mine) - ok)

    busy = defaultdict(float)
    for c in local:
        busy[c["model"]] += c["ms"] / 1e3 - c["a"]["workbench.queue_wait_s"]
    assert {r["model"]: r["busy_s"] for r in report.figures["compute"].rows} == pytest.approx(
        dict(busy), abs=2e-3
    )

    # GPU busy time: the union of the GPU calls' intervals.
    intervals = sorted(
        (c["start_ns"], c["end_ns"]) for c in local if c["a"]["workbench.hardware"].startswith("gpu")
    )
    union, end = 0.0, None
    for s, e in intervals:
        if end is None or s > end:
            union += e - s
            end = e
        elif e > end:
            union += e - end
            end = e
    gpu = report.one("gpu")
    assert gpu["gpu_calls"] == len(intervals)
    assert gpu["busy_s"] == pytest.approx(union / 1e9, rel=1e-9)
    assert gpu["busy_s"] + gpu["idle_s"] == pytest.approx(8 * 86400)

    feedback = report.one("feedback")
    assert (feedback["up"], feedback["down"]) == (
        sum(s["value"] > 0 for s in scores),
        sum(s["value"] < 0 for s in scores),
    )
    assert feedback["rated_traces"] == len({s["trace_id"] for s in scores})


@pytest.mark.parametrize("by", ["day", "endpoint", "workflow", "key"])
def test_each_grouping_adds_up_to_the_totals(history, by):
    service, spans, _ = history
    report = service.usage.report("7d", by=by)
    rows = report.figures["by"].rows
    totals = report.one("totals")
    assert sum(r["calls"] for r in rows) == totals["model_calls"]
    assert sum(r["cost_usd"] for r in rows) == pytest.approx(
        totals["cloud_cost_usd"] + totals["local_cost_usd"]
    )
    keys = {r[by] for r in rows}
    expected = {
        "endpoint": {"local", "openai", "claude"},
        "key": {"WB_KEY_ADA", "WB_KEY_BOB", "(in process)"},
        "workflow": {"rag", "router", "agent", "(no workflow)"},
    }
    if by in expected:
        assert keys == expected[by]
    else:
        assert len(keys) in (6, 7)  # six days back from now, and today


def test_the_cli_prints_explains_and_warns(history):
    service, _, _ = history
    with open(service.workspace.root / "workbench.toml", "a") as config:
        config.write("\n[router]\ndaily_budget_usd = 0.0001\n")
    text = run_cli("usage", "--by", "endpoint", check=True)
    assert text.stdout.splitlines()[2].startswith("Requests ")
    assert "By endpoint" in text.stdout and "Latency per model" in text.stdout
    assert (
        "warning: today's cloud spend $" in text.stderr
        and "escalation is refused until tomorrow" in text.stderr
    )

    document = json.loads(run_cli("usage", "--json", check=True).stdout)
    totals = document["figures"]["totals"]["rows"][0]
    # The SQL printed by --sql gives the same figure when run with `workbench sql`.
    listed = run_cli("usage", "--sql", check=True).stdout
    assert listed.count("-- ") == len(document["figures"])
    again = json.loads(run_cli("sql", document["figures"]["totals"]["sql"], "--json", check=True).stdout)
    assert again[0]["model_calls"] == totals["model_calls"]
    assert abs(again[0]["requests"] - totals["requests"]) <= 1  # the window moves with now

    bad = run_cli("usage", "--since", "last tuesday")
    assert bad.returncode == 64 and bad.stderr.startswith("error: 'last tuesday' is not a window")
    assert "Traceback" not in bad.stderr


def test_windows():
    now = 1_800_000_000.0
    assert parse_since("24h", now) == int((now - 86400) * 1e9)
    assert parse_since("30m", now) == int((now - 1800) * 1e9)
    assert parse_since("2026-12-01", now) == int(datetime(2026, 12, 1).timestamp() * 1e9)
    with pytest.raises(UsageError):
        parse_since("7 weeks", now)


def test_usage_screen_shows_the_figures_the_service_computes(history):
    from textual.widgets import DataTable, Select

    from tests.test_tui import cells, run, settle, text_of
    from tui.app import WorkbenchApp
    from tui.screens.usage import UsageScreen

    service, _, _ = history
    expected = service.usage.report("7d", by="model")

    async def scenario():
        app = WorkbenchApp(service)
        async with app.run_test(size=(180, 60)) as pilot:
            await pilot.press("0")
            await settle(app, pilot)
            assert isinstance(app.screen, UsageScreen)
            headline = text_of(app, "#usage-headline")
            assert f"{expected.one('totals')['requests']:,} (" in headline
            assert "routing decisions escalated" in headline and "liked" in headline
            assert text_of(app, "#usage-status").startswith("computed in ")
            by = app.screen.query_one("#usage-by", DataTable)
            assert str(by.ordered_columns[0].label) == "day"
            app.screen.query_one("#usage-group", Select).value = "model"
            await settle(app, pilot)
            by = app.screen.query_one("#usage-by", DataTable)
            assert str(by.ordered_columns[0].label) == "model"
            first = expected.figures["by"].rows[0]
            assert cells(by, 0)[:3] == [first["model"], f"{first['requests']:,}", f"{first['calls']:,}"]
            latency = app.screen.query_one("#usage-latency", DataTable)
            assert latency.row_count == len(expected.figures["latency"].rows)
            await pilot.press("s")
            assert app.screen.query_one("#usage-sql").display
            assert "FROM spans WHERE name = 'llm.chat'" in text_of(app, "#usage-sql")

    run(scenario())
