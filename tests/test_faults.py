"""Faults: SIGKILL at random points of an ingest, an eval run and a workflow run, several trials
each. After every kill the workspace opens, nothing committed is lost, and the job resumes.

The kill points are random; the seed is in every failure message (re-run with FAULT_SEED=N).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from tests.conftest import BIN, run_cli
from tests.fake_cloud import FakeCloud
from workbench.core.errors import CollectionError
from workbench.services import Service

SEED = int(os.environ.get("FAULT_SEED") or random.SystemRandom().randrange(1, 2**31))
TRIALS = 4


def killed_after(
    args: list[str],
    seconds: float,
    env: dict,
    command: list[str] | None = None,
    ready: Callable[[], bool] | None = None,
):
    """Start `workbench ARGS`, SIGKILL it ``seconds`` after it started (or after ``ready()`` first
    held), unless it ended before."""
    process = subprocess.Popen(
        [*(command or [str(BIN / "workbench")]), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + 120
    while ready is not None and process.poll() is None and not ready() and time.monotonic() < deadline:
        time.sleep(0.1)
    try:
        out, err = process.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
        out, err = process.communicate()
    return subprocess.CompletedProcess(args, process.returncode, out, err)


def write_notes(folder: Path, count: int) -> Path:
    folder.mkdir()
    for i in range(count):
        (folder / f"note{i:03d}.md").write_text(
            f"# Note {i}\n\nThe lighthouse keeper wrote entry {i} about the {i % 9} storms.\n\n"
            f"## Later\n\nShips passed by: {', '.join(str(n) for n in range(i % 40))}.\n"
        )
    return folder


def chunks_per_file(service: Service, collection: str) -> tuple[Counter, int]:
    """Chunks per source file, and how many chunk ids repeat."""
    try:
        table = (
            service.collections.table(collection).search().select(["id", "path"]).limit(1_000_000).to_arrow()
        )
    except CollectionError:  # killed before its first rows: created, empty
        return Counter(), 0
    ids = table["id"].to_pylist()
    return Counter(Path(p).name for p in table["path"].to_pylist()), len(ids) - len(set(ids))


def test_ingest_killed_at_random_points_keeps_whole_files_and_completes(model_workspace, tmp_path):
    rng = random.Random(SEED)
    corpus = write_notes(tmp_path / "corpus", 80)
    env = {**os.environ, "WORKBENCH_HOME": str(model_workspace.root)}
    # Commits of 16 chunks instead of 5,000: a small corpus then has many for a kill to land between.
    model_workspace.config_path.write_text("[documents]\ncommit_rows = 16\n")
    service = Service(model_workspace.root)
    service.ingest("reference", str(corpus))
    reference, _ = chunks_per_file(service, "reference")
    before: Counter = Counter()
    for trial in range(TRIALS):
        at = rng.uniform(3.0, 11.0)
        killed_after(["ingest", str(corpus), "-c", "notes"], at, env)
        where = f"seed {SEED}, trial {trial}, killed at {at:.2f} s"
        after, repeated = chunks_per_file(Service(model_workspace.root), "notes")  # the workspace opens
        assert repeated == 0, f"no chunk twice ({where})"
        assert all(after[name] == reference[name] for name in after), f"each file whole or absent ({where})"
        assert set(before) <= set(after), f"what was committed stays ({where})"
        before = after
    finished = run_cli("ingest", str(corpus), "-c", "notes", "--json", timeout=300)
    assert finished.returncode == 0, finished.stderr
    assert json.loads(finished.stdout)["unchanged"] == len(before), (
        f"finished files are not redone (seed {SEED})"
    )
    after, repeated = chunks_per_file(Service(model_workspace.root), "notes")
    assert after == reference and repeated == 0, (
        f"the same chunks as an ingest never interrupted (seed {SEED})"
    )


def test_eval_killed_at_random_points_resumes_to_every_case_once(model_workspace):
    rng = random.Random(SEED + 1)
    cloud = FakeCloud(delay=0.006)
    try:
        model_workspace.config_path.write_text(
            f'[cloud.remote]\nbase_url = "{cloud.url}"\nmodels = ["big"]\n'
        )
        cases = [{"id": f"q{i:03d}", "input": f"Question {i}?", "expected": "Paris"} for i in range(300)]
        (model_workspace.evals_dir / "kills.jsonl").write_text("".join(json.dumps(c) + "\n" for c in cases))
        env = {**os.environ, "WORKBENCH_HOME": str(model_workspace.root)}
        kept: dict[str, str] = {}
        run_id = None
        for trial in range(TRIALS):
            if run_id:
                at = rng.uniform(1.5, 5.0)
                killed_after(["eval", "run", "--resume", run_id], at, env)
            else:  # however slow the start, the first kill lands once the run is recorded
                at = rng.uniform(0.0, 2.0)
                killed_after(
                    ["eval", "run", "kills", "-m", "remote/big"],
                    at,
                    env,
                    ready=lambda: bool(Service(model_workspace.root).evals.runs()),
                )
            where = f"seed {SEED}, trial {trial}, killed at {at:.2f} s"
            service = Service(model_workspace.root)  # the workspace opens
            runs = service.evals.runs()
            assert runs, where
            run_id = runs[0]["run_id"]
            results = service.evals.results(run_id)
            ids = [r["case_id"] for r in results]
            assert len(ids) == len(set(ids)), f"no case twice ({where})"
            now = {r["case_id"]: r["finished_ns"] for r in results}
            assert all(now.get(case) == done for case, done in kept.items()), (
                f"committed results stay ({where})"
            )
            kept = now
        assert run_id is not None, f"seed {SEED}: no trial got as far as recording the run"
        finished = run_cli("eval", "run", "--resume", run_id, timeout=300)
        assert finished.returncode == 0, finished.stderr
    finally:
        cloud.close()
    service = Service(model_workspace.root)
    results = service.evals.results(run_id)
    assert sorted(r["case_id"] for r in results) == [c["id"] for c in cases], f"every case once (seed {SEED})"
    assert all({r["case_id"]: r["finished_ns"] for r in results}[case] == done for case, done in kept.items())
    assert service.evals.run_row(run_id)["status"] == "done"
    assert service.evals.show(run_id)["summary"]["remote/big"]["contains"] == 1.0


def killed_at_line(args: list[str], line: int, extra: float, env: dict) -> str:
    """Start `workbench ARGS`, SIGKILL it ``extra`` seconds after its ``line``-th line of progress
    on stderr (unless it ended before); returns what it printed."""
    process = subprocess.Popen(
        [str(BIN / "workbench"), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    seen = [process.stderr.readline() for _ in range(line)]
    time.sleep(extra)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    return "".join(seen)


def test_workflow_killed_at_random_points_resumes_without_redoing_nodes(model_workspace, tmp_path):
    rng = random.Random(SEED + 2)
    corpus = write_notes(tmp_path / "corpus", 6)
    service = Service(model_workspace.root)
    service.ingest("demo", str(corpus))
    service.workflows.new("rag", "rag")
    env = {**os.environ, "WORKBENCH_HOME": str(model_workspace.root)}
    for trial in range(TRIALS - 1):
        line, extra = rng.randint(1, 8), rng.uniform(0.0, 1.5)
        seen = killed_at_line(
            ["run", "rag", "-i", f"What did the keeper write in entry {trial}?"], line, extra, env
        )
        where = f"seed {SEED}, trial {trial}, killed {extra:.2f} s after line {line}:\n{seen}"
        thread_id = seen.split("[run ", 1)[1].split("]", 1)[0]
        status = {r["thread_id"]: r["status"] for r in Service(model_workspace.root).workflows.runs()}
        if status[thread_id] == "done":
            continue  # it finished before the kill
        assert status[thread_id] == "running", where
        resumed = run_cli("run", "--resume", thread_id, timeout=300)
        assert resumed.returncode == 0, f"{where}\n{resumed.stderr}"
        first = resumed.stderr.splitlines()[0]
        skipped = (
            first.split("(done before: ", 1)[1].rstrip(")]").split(", ") if "done before" in first else []
        )
        ran = [line[2:].split(" (")[0] for line in resumed.stderr.splitlines() if line.startswith("> ")]
        assert not set(skipped) & set(ran), f"finished nodes are not run again ({where})\n{resumed.stderr}"
        assert set(ran) | set(skipped) >= {"retrieve", "answer"}, f"{where}\n{resumed.stderr}"
        assert resumed.stdout.strip(), f"an answer ({where})"
        status = {r["thread_id"]: r["status"] for r in Service(model_workspace.root).workflows.runs()}
        assert status[thread_id] == "done", where
