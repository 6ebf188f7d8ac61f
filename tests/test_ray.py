"""Ingest and eval on a real multi-node Ray cluster: three nodes on loopback
(ray.cluster_utils.Cluster: a head and two more raylets, each its own processes), driven by the
`workbench` CLI as a user would with `--ray ADDRESS`. Each result is checked against the same
work done in process: chunk ids, texts and vectors (to 1e-6), eval outputs at temperature 0.
Then the kill trials: a worker SIGKILLed mid-job, the driver SIGKILLed mid-job."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import BIN, MODEL_CACHE, run_cli
from tests.docs_corpus import build, notes
from workbench.services import Service, init_workspace

# One cluster for the module, on one xdist worker (`make test` runs with --dist loadgroup).
pytestmark = [pytest.mark.xdist_group("ray"), pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def cluster():
    # On loopback (Ray's switch for single-machine clusters, read when Ray is imported; the CLI
    # sets it for a loopback address too), and without reporting usage.
    os.environ.update(RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_USAGE_STATS_ENABLED="0")
    from ray.cluster_utils import Cluster

    started = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    for _ in range(2):
        started.add_node(num_cpus=1)
    started.wait_for_nodes()
    assert started.address.startswith("127.0.0.1:")
    yield started.address
    started.shutdown()


def _workspace(root: Path, config: str = "") -> Path:
    """A workspace whose models folder links to the fetched models."""
    path, _ = init_workspace(root)
    for entry in MODEL_CACHE.iterdir():
        if not entry.name.startswith("."):
            (path / "models" / entry.name).symlink_to(entry.resolve())
    (path / "workbench.toml").write_text(config)
    return path


def _rows(workspace: Path, name: str = "docs") -> dict[str, tuple]:
    import lancedb

    table = lancedb.connect(str(workspace / "lancedb")).open_table(name).to_arrow().to_pylist()
    return {row["id"]: (row["path"], row["headings"], row["text"], np.array(row["vector"])) for row in table}


def _assert_same_rows(got: dict[str, tuple], expected: dict[str, tuple]) -> None:
    assert sorted(got) == sorted(expected), "the same chunk ids"
    worst = 0.0
    for chunk_id, (path, headings, text, vector) in expected.items():
        assert got[chunk_id][:3] == (path, headings, text), chunk_id
        worst = max(worst, float(np.abs(got[chunk_id][3] - vector).max()))
    assert worst <= 1e-6, f"vectors differ by up to {worst}"


def _cli(workspace: Path, *args: str, timeout: float = 600):
    result = run_cli(*args, env={"WORKBENCH_HOME": str(workspace)}, timeout=timeout)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result


def _popen(workspace: Path, *args: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [str(BIN / "workbench"), *args],
        env={**os.environ, "WORKBENCH_HOME": str(workspace), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _processes(title: str) -> list[int]:
    """PIDs of the Ray workers whose process title names ``title`` (Ray titles each worker
    `ray::<actor class>...`)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if command.startswith("ray::") and title in command:
                pids.append(int(entry.name))
    return pids


def _wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _table_rows(workspace: Path) -> int:
    import lancedb

    try:
        return lancedb.connect(str(workspace / "lancedb")).open_table("docs").count_rows()
    except (FileNotFoundError, ValueError):
        return 0


# -- ingest ---------------------------------------------------------------------------------------


def test_a_ray_ingest_writes_what_the_in_process_ingest_writes(cluster, fetched_models, tmp_path):
    corpus = tmp_path / "corpus"
    bad = build(corpus)
    notes(corpus / "notes", 60)
    config = "[documents]\nmax_file_mb = 2\n"
    here, there = _workspace(tmp_path / "here", config), _workspace(tmp_path / "there", config)
    expected = Service(here).ingest("docs", str(corpus))

    report = json.loads(_cli(there, "ingest", str(corpus), "-c", "docs", "--ray", cluster, "--json").stdout)
    assert report["added"] == sorted(expected.added) and len(report["added"]) == 69
    assert sorted(report["failed"]) == sorted([list(f) for f in expected.failed])
    assert sorted(report["skipped"]) == sorted([list(s) for s in expected.skipped])
    assert {Path(path).name for path, _ in report["failed"]} == set(bad)
    assert report["chunks_added"] == expected.chunks_added == report["rows"]
    _assert_same_rows(_rows(there), _rows(here))

    # The trace says where the work ran: files embedded on more than one node.
    service = Service(there)
    _, spans = service.sql("SELECT attributes FROM spans WHERE name = 'ray.ingest'")
    attributes = json.loads(spans[0][0])
    assert attributes["workbench.ray.nodes"] == 3
    assert len(attributes["workbench.ray.embed_nodes"]) >= 2, attributes
    assert sum(attributes["workbench.ray.embed_nodes"].values()) == 69

    # Incremental, as in process: one file changed, one removed, the rest unchanged.
    (corpus / "notes" / "note-007.md").write_text("# Tides log 7\n\nThe spring tide rose two meters.\n")
    (corpus / "notes" / "note-008.md").unlink()
    expected = Service(here).ingest("docs", str(corpus))
    report = json.loads(_cli(there, "ingest", str(corpus), "-c", "docs", "--ray", cluster, "--json").stdout)
    assert (report["added"], report["updated"], report["removed"]) == ([], expected.updated, expected.removed)
    assert report["updated"] == [str((corpus / "notes" / "note-007.md").resolve())]
    assert report["unchanged"] == expected.unchanged == 67
    _assert_same_rows(_rows(there), _rows(here))


def _ray_ingest_under_way(cluster: str, tmp_path: Path):
    """120 files ingested in process (``here``), and a Ray ingest of them into ``there``
    (commits of 30 chunks) that has made its first commit: (corpus, here, there, its driver)."""
    corpus = notes(tmp_path / "notes", 120)
    config = "[documents]\ncommit_rows = 30\n"
    here, there = _workspace(tmp_path / "here", config), _workspace(tmp_path / "there", config)
    Service(here).ingest("docs", str(corpus))
    driver = _popen(there, "ingest", str(corpus), "-c", "docs", "--ray", cluster, "--json")
    _wait_for(lambda: _table_rows(there) > 0, 300, "the first commit")
    return corpus, here, there, driver


def test_an_embedding_worker_killed_mid_ingest_is_replaced_and_nothing_is_lost(
    cluster, fetched_models, tmp_path
):
    corpus, here, there, driver = _ray_ingest_under_way(cluster, tmp_path)
    # Some files are committed: SIGKILL every embedding actor (the pool's workers).
    victims = _processes("_Embed")
    assert victims, "the embedding actors run as Ray workers"
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    out, err = driver.communicate(timeout=600)
    assert driver.returncode == 0, err
    report = json.loads(out)
    assert len(report["added"]) == 120 and not report["failed"]
    _assert_same_rows(_rows(there), _rows(here))


def test_a_driver_killed_mid_ingest_leaves_whole_files_and_the_next_run_finishes(
    cluster, fetched_models, tmp_path
):
    corpus, here, there, driver = _ray_ingest_under_way(cluster, tmp_path)
    expected = _rows(here)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    partial = _rows(there)
    assert 0 < len(partial) < len(expected), "killed mid-job"
    # Every file in the table is whole: all its chunks, as the full ingest has them.
    for path in {row[0] for row in partial.values()}:
        mine = {i for i, row in partial.items() if row[0] == path}
        assert mine == {i for i, row in expected.items() if row[0] == path}, path

    report = json.loads(_cli(there, "ingest", str(corpus), "-c", "docs", "--ray", cluster, "--json").stdout)
    committed = {row[0] for row in partial.values()}
    assert report["unchanged"] == len(committed)
    assert len(report["added"]) == 120 - len(committed)
    _assert_same_rows(_rows(there), expected)


def test_without_ray_installed_the_error_says_how_to_install_it(model_workspace, tmp_path):
    shadow = tmp_path / "shadow" / "ray"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError(\"No module named 'ray'\")\n")
    (tmp_path / "one.md").write_text("# One\n\nA file.\n")
    result = run_cli(
        "ingest", str(tmp_path / "one.md"), "-c", "docs", "--ray", env={"PYTHONPATH": str(shadow.parent)}
    )
    assert result.returncode == 64 and "Traceback" not in result.stderr
    assert "--ray needs Ray, which is not installed" in result.stderr
    assert "pip install -e '.[ray]'" in result.stderr
    assert not (model_workspace.lancedb_dir / "docs.lance").exists(), "nothing written"


def test_a_ray_address_where_nothing_answers_is_refused_at_once(model_workspace, tmp_path):
    (tmp_path / "one.md").write_text("# One\n\nA file.\n")
    started = time.monotonic()
    result = run_cli("ingest", str(tmp_path / "one.md"), "-c", "docs", "--ray", "127.0.0.1:1")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "nothing answers at 127.0.0.1:1" in result.stderr and "ray start --head" in result.stderr
    assert time.monotonic() - started < 60
    wrong = run_cli("eval", "run", "demo", "-m", "smollm2", "--ray", "no-port-here")
    assert wrong.returncode == 64 and "is not a Ray address" in wrong.stderr


# -- eval -----------------------------------------------------------------------------------------

EVAL = ["demo", "-m", "smollm2", "--max-tokens", "32", "--limit", "10"]


@pytest.fixture(scope="module")
def eval_reference(tmp_path_factory, fetched_models):
    """The demo eval's first ten cases on SmolLM2, in process: outputs by case."""
    root = _workspace(tmp_path_factory.mktemp("eval-here"))
    (root / "evals" / "demo.jsonl").write_text(Path("evals/data/demo.jsonl").read_text())
    run_id = json.loads(_cli(root, "eval", "run", *EVAL, "--json").stdout)["run_id"]
    service = Service(root)
    return {r["case_id"]: r["output"] for r in service.evals.results(run_id)}


RAY_KEY = "sk-ray-" + "Kq4" * 12


def _eval_workspace(path: Path, cloud, config: str = "") -> Path:
    root = _workspace(
        path,
        f'[cloud.remote]\nbase_url = "{cloud.url}"\napi_key_env = "REMOTE_KEY"\nmodels = ["big"]\n{config}',
    )
    (root / "evals" / "demo.jsonl").write_text(Path("evals/data/demo.jsonl").read_text())
    return root


def test_a_ray_eval_gives_the_in_process_results_and_the_driver_writes_every_trace(
    cluster, eval_reference, cloud, tmp_path
):
    # two replicas of the model, the cases dealt out between them
    started = time.time()  # the cluster's session folder is older; what Ray writes for this run is newer
    root = _eval_workspace(tmp_path / "there", cloud, "[ray]\nmodel_replicas = 2\n")
    driver = _popen(
        root, "eval", "run", *EVAL, "-m", "remote/big", "--ray", cluster, "--json", REMOTE_KEY=RAY_KEY
    )
    _wait_for(lambda: len(_processes("CaseRunner")) == 2, 120, "two replicas of the model")
    out, err = driver.communicate(timeout=600)
    assert driver.returncode == 0, err
    run_id = json.loads(out)["run_id"]
    service = Service(root)
    results = service.evals.results(run_id)
    local = {r["case_id"]: r["output"] for r in results if r["subject"] == "smollm2"}
    assert local == eval_reference, "the same answers at temperature 0"
    cloud_rows = [r for r in results if r["subject"] == "remote/big"]
    assert len(cloud_rows) == 10 and all(r["output"] == "The capital of France is Paris." for r in cloud_rows)
    assert not [r for r in results if r["error"]]
    # Each case is a trace in the driver's store, with the spans its worker ended (the eval.case
    # span and the model call under it).
    _, rows = service.sql(
        "SELECT trace_id, count(*), count(*) FILTER (WHERE name = 'eval.case') FROM spans "
        f"WHERE trace_id IN ({', '.join(repr(r['trace_id']) for r in results)}) GROUP BY trace_id"
    )
    assert len(rows) == 20 and all(total >= 2 and cases == 1 for _, total, cases in rows)
    # The workers called the cloud with the driver's key, and Ray wrote it nowhere: it went to
    # them in a file only the user could read, gone after the run, not as a runtime-env variable.
    sent = {r["headers"].get("authorization") or r["headers"].get("Authorization") for r in cloud.requests}
    assert sent == {f"Bearer {RAY_KEY}"}
    assert not list((root / ".secrets").glob("*")), "the workers' secrets file is removed"
    assert not _files_holding(RAY_KEY, Path("/tmp/ray"), since=started)


def _files_holding(secret: str, folder: Path, since: float = 0.0) -> list[Path]:
    """Files under ``folder`` (written since ``since``, a time.time()) that hold ``secret``."""
    found = []
    for path in folder.rglob("*"):
        try:
            if (
                path.is_file()
                and not path.is_symlink()
                and path.stat().st_mtime >= since
                and secret.encode() in path.read_bytes()
            ):
                found.append(path)
        except OSError:
            continue  # a socket, or a file Ray removed meanwhile
    return found


def _listening(pids: set[int]) -> list[str]:
    """The local addresses the processes ``pids`` listen on (TCP, from /proc)."""
    inodes = set()
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    addresses = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                addresses.append(fields[1])  # HEXADDRESS:HEXPORT
    return addresses


def _tree(root_pid: int) -> set[int]:
    """``root_pid`` and its descendants, from each process's parent in /proc/PID/stat."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, grown = {root_pid}, True
    while grown:
        more = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= more
        grown = bool(more)
    return tree


def test_a_ray_of_its_own_listens_on_loopback_and_logs_no_secret(cluster, cloud, fetched_models, tmp_path):
    """`--ray` without an address: every Ray process (GCS, raylet, workers, the runtime-env
    agent, the driver) listens on 127.0.0.1 only, and the key the workers use is in no Ray log.
    With the module's cluster up: the run starts a Ray of its own rather than joining the cluster
    Ray finds in /tmp/ray (which left only the driver's listener in this run's process tree)."""
    root = _eval_workspace(tmp_path / "own", cloud)
    before = set(Path("/tmp/ray").glob("session_*"))
    driver = _popen(
        root, "eval", "run", "demo", "-m", "remote/big", "--limit", "3", "--ray", "--json", REMOTE_KEY=RAY_KEY
    )
    seen: set[str] = set()
    deadline = time.monotonic() + 300
    while driver.poll() is None and time.monotonic() < deadline:
        seen.update(_listening(_tree(driver.pid)))
        time.sleep(0.5)
    out, err = driver.communicate(timeout=60)
    assert driver.returncode == 0, err
    assert json.loads(out)["run_id"]
    assert len(seen) >= 4, f"Ray's GCS, raylet, agent and workers were seen listening: {seen}"
    loopback = {"0100007F", "0000000000000000FFFF00000100007F", "00000000000000000000000001000000"}
    beyond = {address for address in seen if address.split(":")[0] not in loopback}
    assert not beyond, f"listening beyond loopback: {beyond}"
    sent = {r["headers"].get("authorization") or r["headers"].get("Authorization") for r in cloud.requests}
    assert sent == {f"Bearer {RAY_KEY}"}, "the workers had the key"
    sessions = set(Path("/tmp/ray").glob("session_*")) - before - {Path("/tmp/ray/session_latest")}
    assert sessions, "the run's Ray wrote its session folder"
    assert not [path for session in sessions for path in _files_holding(RAY_KEY, session)]


def test_ray_reads_its_loopback_switch_where_the_adapter_sets_it():
    """ray_cluster sets Ray's `ray_constants.ENABLE_RAY_CLUSTER` when Ray was imported before the
    switch's variable was set: pin that the private constant is still there and is what Ray's
    node startup reads."""
    import inspect

    from ray._private import ray_constants, services

    from workbench.core.ray_cluster import _prepare

    _prepare(None)
    assert ray_constants.ENABLE_RAY_CLUSTER is False
    assert "ray_constants.ENABLE_RAY_CLUSTER" in inspect.getsource(services)


def test_eval_kill_trials_a_killed_actor_is_replaced_a_killed_driver_resumes(
    cluster, eval_reference, cloud, tmp_path
):
    root = _eval_workspace(tmp_path / "there", cloud)
    service = Service(root)

    def finished() -> tuple[str, int] | None:
        runs = service.evals.runs()
        return (runs[0]["run_id"], runs[0]["results"]) if runs and runs[0]["results"] else None

    driver = _popen(root, "eval", "run", *EVAL, "--parallel", "2", "--ray", cluster, "--json")
    run_id, _ = _wait_for(finished, 300, "the first result")
    actors = _processes("CaseRunner")
    assert actors, "the model's actor runs as a Ray worker"
    for pid in actors:
        os.kill(pid, signal.SIGKILL)
    # The actor comes back (its model loaded again) and the run goes on; then kill the driver.
    _wait_for(lambda: (finished() or ("", 0))[1] >= 4, 300, "results after the actor was killed")
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    kept = service.evals.results(run_id)
    assert 4 <= len(kept) < 10 or pytest.skip("the run finished before the driver could be killed")
    assert service.evals.run_row(run_id)["status"] == "running"

    _cli(root, "eval", "run", "--resume", run_id, "--ray", cluster, "--json")
    results = service.evals.results(run_id)
    assert sorted(r["case_id"] for r in results) == sorted(eval_reference), "each case once"
    assert {r["case_id"]: r["output"] for r in results} == eval_reference
    assert service.evals.run_row(run_id)["status"] == "done"


def test_replicas_share_the_gpus_out_among_the_models():
    from workbench.services.ray_evals import _replicas

    assert _replicas(0, gpus=0, local_models=2) == 1, "no GPUs: one actor per model"
    assert _replicas(0, gpus=8, local_models=3) == 2
    assert _replicas(0, gpus=2, local_models=6) == 1, "at least one each (they share the GPUs)"
    assert _replicas(3, gpus=8, local_models=1) == 3, "as configured"
