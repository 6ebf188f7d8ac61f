"""The fixed workspace the snapshot tests draw (tests/test_tui_snapshots.py): the same on every
machine and every day. A fixed path, a dataset, two workflows, and a week of traces with fixed
ids and times; the clock of the usage report stopped at the end of that week; the doctor's,
the GPU's and the machine's answers fixed."""

from __future__ import annotations

import shutil
import time
import types
from pathlib import Path

from tests.usage_data import DAY_NS, generate, store
from tui.app import WorkbenchApp
from workbench.core.hardware import Check
from workbench.services import Service, init_workspace

SIZES = ((160, 48), (100, 30))
# /tmp itself, not tempfile.gettempdir(): the path is on the Home screen, and TMPDIR varies
ROOT = Path("/tmp/workbench-snapshots/ws")
START_NS = 1_796_083_200 * 10**9  # 2026-12-01 00:00 UTC
NOW_S = (START_NS + 6 * DAY_NS) / 1e9 + 12 * 3600  # the report's "now": noon of the sixth day
DEMO_CASES = Path(__file__).resolve().parent.parent / "evals" / "data" / "demo.jsonl"

DOCTOR = [
    Check("versions", "python", "ok", "3.11"),
    Check("versions", "textual", "ok", "pinned"),
    Check("versions", "llama-cpp-python", "ok", "pinned"),
    Check("hardware", "cpu", "ok", "x86-64, 2 cores, 24 GiB RAM"),
    Check("hardware", "gpu", "ok", "none seen"),
    Check("hardware", "llama.cpp", "ok", "CPU build (no GPU offload)"),
    Check("workspace", "path", "ok", str(ROOT)),
    Check("workspace", "config", "ok", "workbench.toml is valid"),
    Check("workspace", "offline mode", "ok", "off"),
    Check("models", "smollm2", "warn", "not fetched: `workbench models fetch`"),
]


def _fixed_ids(spans) -> dict[str, str]:
    """Span and trace ids by order of creation, instead of random ones; returns the trace ids'
    mapping (old to new)."""
    traces: dict[str, str] = {}
    ids: dict[str, str] = {}
    for index, span in enumerate(spans):
        traces.setdefault(span.trace_id, f"{len(traces) + 1:04x}" + "5eed" * 7)
        ids[span.span_id] = f"{index + 1:04x}" + "5eed" * 3
    for span in spans:
        span.trace_id = traces[span.trace_id]
        span.parent_id = ids.get(span.parent_id) if span.parent_id else None
        span.span_id = ids[span.span_id]
    return traces


def snapshot_app(monkeypatch) -> WorkbenchApp:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    monkeypatch.setenv("WORKBENCH_HOME", str(ROOT))
    shutil.rmtree(ROOT.parent, ignore_errors=True)
    init_workspace(ROOT)
    service = Service(ROOT)
    shutil.copy(DEMO_CASES, service.workspace.evals_dir / "demo.jsonl")
    service.workflows.new("rag", "rag")
    service.workflows.new("helper", "agent")
    spans, scores = generate(service.tracer, 40, START_NS, days=6, seed=11)
    renamed = _fixed_ids(spans)
    for score in scores:
        score["trace_id"] = renamed[score["trace_id"]]
    store(service, spans, scores)
    # the machine's answers, fixed
    monkeypatch.setattr(service, "doctor", lambda: list(DOCTOR))
    monkeypatch.setattr(service, "gpu_status", lambda: "GPU: none seen; llama.cpp runs on the CPU")
    import workbench.services.usage as usage

    clock = types.SimpleNamespace(
        **{name: getattr(time, name) for name in dir(time) if not name.startswith("_")}
    )
    clock.time = lambda: NOW_S
    clock.perf_counter = lambda: 0.0  # "computed in 0 ms": the time a report took varies
    monkeypatch.setattr(usage, "time", clock)
    service.tracer.sink.flush()
    return WorkbenchApp(service)
