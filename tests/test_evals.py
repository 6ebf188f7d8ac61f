"""Eval runs for real: SmolLM2 on the CPU and the loopback cloud (tests/fake_cloud.py), results
in traces.duckdb, each case a trace; resume after SIGKILL; the regression gate's exit code."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest

from local_models.cloud import CloudClient, RetryPolicy
from tests.conftest import BIN, run_cli
from workbench.services import Service

# The loopback cloud always answers "The capital of France is Paris."; SmolLM2 will not say
# "Paris" to these, so the two subjects score apart on `contains`.
CASES = [
    {"id": "c1", "input": "Say one word.", "expected": "Paris", "tags": ["t"]},
    {"id": "c2", "input": "Name a color.", "expected": ["Paris"]},
    {"id": "c3", "input": "Count to three.", "expected": "Paris"},
    {
        "id": "c4",
        "input": "Reply with JSON holding a key city.",
        "schema": {"type": "object", "required": ["city"]},
    },
]


@pytest.fixture
def evals(model_workspace, cloud):
    model_workspace.config_path.write_text(
        f'[cloud.remote]\nbase_url = "{cloud.url}"\nmodels = ["big"]\n'
        "prices.big = { input_per_mtok = 2.0, output_per_mtok = 8.0 }\n"
    )
    (model_workspace.evals_dir / "small.jsonl").write_text("".join(json.dumps(c) + "\n" for c in CASES))
    service = Service(model_workspace.root)
    service.generation.use_cloud(CloudClient(service.config, service.tracer, False, RetryPolicy(attempts=1)))
    yield service
    service.models.close()


def test_a_run_scores_each_subject_and_each_case_is_a_trace(evals):
    seen: list[tuple] = []
    run_id = evals.evals.run(
        "small", ["smollm2", "remote/big"], max_tokens=24, progress=lambda *event: seen.append(event)
    )
    shown = evals.evals.show(run_id)
    assert shown["run"]["status"] == "done" and len(shown["results"]) == 8
    assert sorted(seen)[-1] == ("smollm2", 4, 4) and ("remote/big", 4, 4) in seen
    cloud = shown["summary"]["remote/big"]
    local = shown["summary"]["smollm2"]
    assert cloud["contains"] == 1.0 and local["contains"] == 0.0
    assert cloud["cost_usd"] == pytest.approx(4 * (11 * 2.0 + 6 * 8.0) / 1e6)
    assert local["tokens_per_s"] > 0 and local["latency_p95_s"] >= local["latency_p50_s"] > 0
    assert local["model_size_mb"] == 98.4 and cloud["model_size_mb"] is None
    json_case = next(r for r in shown["results"] if r["case_id"] == "c4" and r["subject"] == "remote/big")
    assert json_case["metrics"] == {"json_valid": 0.0}  # a sentence is not the JSON the case asks for
    record = shown["run"]["reproducibility"]
    assert record["models"]["smollm2"]["sha256"].startswith("b179c952")
    assert record["models"]["remote/big"] == {"kind": "cloud"} and len(record["dataset_sha256"]) == 64

    trace_ids = {r["trace_id"] for r in shown["results"]}
    assert len(trace_ids) == 8, "every case is a trace of its own"
    spans = evals.get_trace(shown["results"][0]["trace_id"])
    root = next(s for s in spans if s["parent_id"] is None)
    assert root["name"] == "eval.case" and json.loads(root["attributes"])["workbench.eval.run_id"] == run_id
    assert any(s["name"] == "llm.chat" for s in spans)
    columns, rows = evals.sql(f"SELECT count(*) FROM eval_results WHERE run_id = '{run_id}'")
    assert rows[0][0] == 8

    listed = run_cli("eval", "show", run_id)
    assert listed.returncode == 0 and "remote/big" in listed.stdout and "CONTAINS" in listed.stdout


def test_workflow_subject_with_a_judge_records_verdicts_or_failures(evals, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "tea.md").write_text("# Tea\n\nGreen tea is steeped at 80 degrees Celsius.\n")
    evals.ingest("demo", str(corpus))
    evals.workflows.new("rag", "rag")
    (evals.workspace.evals_dir / "tea.jsonl").write_text(
        json.dumps(
            {
                "id": "t1",
                "input": "How hot is green tea steeped?",
                "expected": "80 degrees",
                "sources": ["tea.md"],
            }
        )
        + "\n"
    )
    run_id = evals.evals.run("tea", ["smollm2"], workflow="rag", judge="smollm2", max_tokens=48)
    row = evals.evals.results(run_id)[0]
    assert row["subject"] == "rag@smollm2" and row["retrieved"][0].endswith("tea.md")
    assert row["metrics"]["recall_at_k"] == 1.0 and row["metrics"]["mrr"] == 1.0
    for verdict in row["judge"]:  # each judged, or a failure kept with its raw output
        assert verdict["criterion"] in row["metrics"] if not verdict["failed"] else verdict["raw"] is not None
    assert row["judge_failures"] == sum(v["failed"] for v in row["judge"])
    record = evals.evals.run_row(run_id)["reproducibility"]
    assert record["workflow"]["name"] == "rag" and record["collections"] == {
        "demo": evals.collection("demo")["version"]
    }
    assert record["prompts"] == {"rag-answer": 1}


def test_killed_run_resumes_and_gate_fails_on_regression(evals):
    baseline = run_cli("eval", "run", "small", "-m", "remote/big", "--json")
    assert baseline.returncode == 0, baseline.stderr
    baseline_id = json.loads(baseline.stdout)["run_id"]

    process = subprocess.Popen(
        [str(BIN / "workbench"), "eval", "run", "small", "-m", "smollm2", "--max-tokens", "200"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    run_id = None
    while time.monotonic() < deadline:
        runs = [r for r in evals.evals.runs() if r["subjects"] == ["smollm2"]]
        if runs and runs[0]["results"] >= 1:
            run_id = runs[0]["run_id"]
            break
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert run_id is not None
    before = evals.evals.run_row(run_id)
    assert before["status"] == "running"
    finished = len(evals.evals.results(run_id))
    assert 1 <= finished < 4 or pytest.skip("the run finished before it could be killed")

    resumed = run_cli(
        "eval", "run", "--resume", run_id, "--baseline", baseline_id, "--fail-on-regression", "0.02"
    )
    # Four cases cannot tell a fall from noise (McNemar's smallest one-sided p is 1/16): the gate
    # says so and fails, unless told to judge a small run anyway.
    assert resumed.returncode == 10, resumed.stderr
    assert "regressed against" in resumed.stderr and "not enough cases" in resumed.stderr
    results = evals.evals.results(run_id)
    assert sorted(r["case_id"] for r in results) == ["c1", "c2", "c3", "c4"], "no case twice, none missing"
    assert evals.evals.run_row(run_id)["status"] == "done"

    small = run_cli("eval", "compare", baseline_id, run_id, "--fail-on-regression", "0.02", "--allow-small")
    assert small.returncode == 0 and "within noise" in small.stdout
    same = run_cli(
        "eval",
        "run",
        "small",
        "-m",
        "remote/big",
        "--baseline",
        baseline_id,
        "--fail-on-regression",
        "0.02",
        "--allow-small",
    )
    assert same.returncode == 0 and "gate passed" in same.stderr
    compared = run_cli("eval", "compare", baseline_id, run_id)
    assert compared.returncode == 0 and "3 cases changed" in compared.stdout


def test_cloud_faults_during_an_eval_are_retried_per_policy_and_marked(model_workspace, cloud):
    """429, a stream cut mid-answer, a hang and malformed JSON each cost one retry; a case whose
    every attempt fails is marked with the reason; --retry-errors runs just those cases again."""
    model_workspace.config_path.write_text(f'[cloud.remote]\nbase_url = "{cloud.url}"\nmodels = ["big"]\n')
    cases = [{"id": f"c{i}", "input": f"Question {i}?", "expected": "Paris"} for i in range(1, 9)]
    (model_workspace.evals_dir / "faults.jsonl").write_text("".join(json.dumps(c) + "\n" for c in cases))
    service = Service(model_workspace.root)
    policy = RetryPolicy(attempts=3, base_delay_s=0.01, read_timeout_s=1.0)
    service.generation.use_cloud(CloudClient(service.config, service.tracer, False, policy))
    # one request at a time, in case order: each step below is one attempt
    cloud.script = ["429", "ok", "cut", "ok", "hang", "ok", "500", "500", "500", "malformed", "ok"]
    run_id = service.evals.run("faults", ["remote/big"], concurrency=1)
    results = {r["case_id"]: r for r in service.evals.results(run_id)}
    assert len(results) == 8 and service.evals.run_row(run_id)["status"] == "done"
    assert "HTTP 500 (3 attempts)" in results["c4"]["error"] and results["c4"]["output"] is None
    assert all(
        r["error"] is None and r["metrics"]["contains"] == 1.0 for c, r in results.items() if c != "c4"
    )

    def attempts(case: str) -> list[str]:
        spans = service.get_trace(results[case]["trace_id"])
        return [s["error"] or "ok" for s in spans if s["name"] == "llm.attempt"]

    service.flush_traces()
    assert attempts("c1")[0] == "HTTP 429" and attempts("c1")[1:] == ["ok"]
    assert "ended before the answer was complete" in attempts("c2")[0] and len(attempts("c2")) == 2
    assert "timed out" in attempts("c3")[0] and len(attempts("c3")) == 2
    assert "malformed JSON" in attempts("c5")[0] and len(attempts("c5")) == 2
    assert service.evals.show(run_id)["summary"]["remote/big"]["errors"] == 1

    kept = {c: r["finished_ns"] for c, r in results.items() if c != "c4"}
    service.evals.run(resume=run_id, retry_errors=True)
    again = {r["case_id"]: r for r in service.evals.results(run_id)}
    assert len(again) == 8 and again["c4"]["error"] is None and again["c4"]["metrics"]["contains"] == 1.0
    assert {c: again[c]["finished_ns"] for c in kept} == kept, "only the failed case ran again"
    assert len(cloud.requests) == 8 + 1 + 1 + 1 + 2 + 1 + 1, "each fault retried, nothing more"


def test_cli_errors(evals):
    assert "no dataset 'nope'" in run_cli("eval", "run", "nope", "-m", "smollm2").stderr
    assert run_cli("eval", "run", "small", "-m", "nosuchmodel").returncode != 0
    (evals.workspace.evals_dir / "bad.jsonl").write_text('{"input": "ok"}\n{"id": 3\n')
    listed = run_cli("eval", "datasets")
    assert "invalid:" in listed.stdout and "small" in listed.stdout
    bad = run_cli("eval", "run", "bad", "-m", "smollm2")
    assert bad.returncode == 9 and "bad.jsonl:2: not JSON" in bad.stderr and "Traceback" not in bad.stderr
    assert run_cli("eval", "run", "small", "-m", "smollm2", "--fail-on-regression", "0.1").returncode == 64
    assert "no eval run 'zzz'" in run_cli("eval", "show", "zzz").stderr
    retry = run_cli("eval", "run", "small", "-m", "remote/big", "--retry-errors")
    assert retry.returncode == 64 and "--retry-errors goes with --resume" in retry.stderr
    source = evals.workspace.root / "cases.csv"
    source.write_text('id,input,expected,tags\nk1,"Hello, there",hi|hello,greet\nk2,Bye,,\n')
    imported = run_cli("eval", "import", str(source), "--name", "greetings")
    assert imported.returncode == 0 and "imported 2 cases" in imported.stdout
    assert evals.evals.dataset("greetings").cases[0].expected == ("hi", "hello")
    assert run_cli("eval", "import", str(source), "--name", "greetings").returncode == 9  # never overwritten
