"""Ray: the same ingest and eval in process and on Ray, as a user runs them (the `workbench` CLI,
wall time of the whole command), in the same run.

- ingest overhead: `--ray ADDRESS` on a one-node cluster already running (a head started with
  `ray start`-style settings, all the CPUs) over the in-process ingest of the same corpus
  (goal <= 1.2); also `--ray` with no address, which starts a Ray of its own for the run.
- eval overhead: the demo dataset on SmolLM2 the same way, in three pairs run in turn (in
  process, then on the cluster): the median ratio, each pair's, and the fixed cost in seconds.
- scaling: the ingest on 1, 2 and 3 nodes (ray.cluster_utils.Cluster) with this machine's CPUs
  split between them: a check that the work spreads, not a speed claim (one machine's cores).
Also prints the per-chunk and per-token costs docs/scale.md projects from.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.figures import emit  # noqa: E402
from local_models.fetch import fetch_models  # noqa: E402
from tests.docs_corpus import notes  # noqa: E402
from workbench.services import init_workspace  # noqa: E402

BIN = Path(sys.executable).parent
FILES = 400
EVAL = ("eval", "run", "demo", "-m", "smollm2", "--max-tokens", "48")
EVAL_REPS = 3


def embedded_per_node(root: Path) -> list[int]:
    """Files each node embedded, from the ingest's ray.ingest span."""
    from workbench.services import Service

    _, rows = Service(root).sql("SELECT attributes FROM spans WHERE name = 'ray.ingest'")
    return sorted(json.loads(rows[0][0])["workbench.ray.embed_nodes"].values(), reverse=True)


def workspace(parent: Path, name: str, models: Path) -> Path:
    path, _ = init_workspace(parent / name)
    for entry in models.iterdir():
        if not entry.name.startswith("."):
            (path / "models" / entry.name).symlink_to(entry.resolve())
    return path


def eval_workspace(parent: Path, name: str, models: Path) -> Path:
    path = workspace(parent, name, models)
    (path / "evals" / "demo.jsonl").write_text((ROOT / "evals/data/demo.jsonl").read_text())
    return path


def timed(root: Path, *args: str) -> tuple[float, dict]:
    started = time.perf_counter()
    result = subprocess.run(
        [str(BIN / "workbench"), *args, "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "WORKBENCH_HOME": str(root)},
    )
    if result.returncode != 0:
        raise SystemExit(f"workbench {' '.join(args)} failed: {result.stderr[-2000:]}")
    return time.perf_counter() - started, json.loads(result.stdout)


def main() -> None:
    # loopback (read when Ray is imported), and no usage reports
    os.environ.update(RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_USAGE_STATS_ENABLED="0")
    from ray.cluster_utils import Cluster

    cpus = os.cpu_count() or 2
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        models = tmp_path / "models"
        fetch_models(models)
        docs = notes(tmp_path / "notes", FILES, sections=4, sentences=12)

        here, report = timed(workspace(tmp_path, "here", models), "ingest", str(docs), "-c", "docs")
        chunks = report["chunks_added"]
        own, _ = timed(workspace(tmp_path, "own", models), "ingest", str(docs), "-c", "docs", "--ray")

        seconds, spread = {}, {}
        eval_here: list[float] = []
        eval_ray: list[float] = []
        for nodes in (1, 2, 3):
            per_node = max(1, cpus // nodes)
            cluster = Cluster(
                initialize_head=True,
                head_node_args={
                    "num_cpus": per_node,
                    "include_dashboard": False,
                },
            )
            for _ in range(nodes - 1):
                cluster.add_node(num_cpus=per_node)
            cluster.wait_for_nodes()
            try:
                ws = workspace(tmp_path, f"nodes{nodes}", models)
                seconds[nodes], _ = timed(ws, "ingest", str(docs), "-c", "docs", "--ray", cluster.address)
                spread[nodes] = embedded_per_node(ws)
                if nodes == 1:
                    # evals alternate, in process then on the cluster, so the machine's noise
                    # falls on both alike
                    for rep in range(EVAL_REPS):
                        ws = eval_workspace(tmp_path, f"eval-here{rep}", models)
                        seconds_here, shown = timed(ws, *EVAL)
                        eval_here.append(seconds_here)
                        ws = eval_workspace(tmp_path, f"eval-ray{rep}", models)
                        eval_ray.append(timed(ws, *EVAL, "--ray", cluster.address)[0])
            finally:
                cluster.shutdown()

        tokens = sum(r.get("output_tokens") or 0 for r in shown["results"]) if "results" in shown else None

    ratio = seconds[1] / here
    emit(
        "ingest on a 1-node Ray cluster over in process (CLI wall time)",
        seconds[1],
        "s",
        "<= 1.2",
        ratio <= 1.2,
        ratio,
        f"{FILES} files, {chunks} chunks; in process {here:.1f} s",
    )
    emit(
        "ingest with --ray and no address (starts its own Ray) over in process",
        own,
        "s",
        "-",
        None,
        own / here,
    )
    ratios = [r / h for r, h in zip(eval_ray, eval_here)]
    eval_ratio = statistics.median(ratios)
    emit(
        "eval (demo, 33 cases, SmolLM2, 48 tokens) on a 1-node Ray cluster over in process, "
        f"median of {EVAL_REPS} alternating pairs",
        statistics.median(eval_ray),
        "s",
        "<= 1.2",
        eval_ratio <= 1.2,
        eval_ratio,
        f"in process {statistics.median(eval_here):.1f} s"
        + (f", {tokens} output tokens" if tokens else "")
        + f"; pair ratios {', '.join(f'{r:.2f}' for r in ratios)} (the first is the cluster's first eval); "
        f"fixed cost on Ray (median difference) {statistics.median(r - h for r, h in zip(eval_ray, eval_here)):.1f} s",
    )
    for nodes in (2, 3):
        emit(
            f"ingest on {nodes} nodes over 1 node ({cpus} CPUs split)",
            seconds[nodes],
            "s",
            "-",
            None,
            seconds[nodes] / seconds[1],
            f"files embedded per node {spread[nodes]}; one machine's cores shared by the nodes: "
            "a check that the work spreads, not a speed-up",
        )
    emit("in-process ingest cost per chunk (2 cores, MiniLM-L6)", here / chunks * 1000, "ms", "-", None)


if __name__ == "__main__":
    main()
