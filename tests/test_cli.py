"""The CLI as a user runs it: one line with what to do next on a mistake, never a traceback."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import run_cli
from workbench.core.tracing.migrations import LATEST
from workbench.core.workspace import resolve_workspace_path
from workbench.services import Service


def assert_one_line_error(result, code: int, *fragments: str) -> None:
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0]


def test_help_and_version():
    result = run_cli("--help", check=True)
    for command in ("init", "doctor", "models", "traces", "sql"):
        assert command in result.stdout
    assert run_cli("--version", check=True).stdout.strip() == "workbench, version 0.1.0"


def test_init_creates_the_layout(tmp_path):
    target = tmp_path / "new-ws"
    result = run_cli("init", str(target), check=True)
    assert f"created: workspace {target}" in result.stdout
    for sub in ("models", "lancedb", "workflows", "evals", "exports"):
        assert (target / sub).is_dir()
    assert "payload_sample_rate" in (target / "workbench.toml").read_text()
    assert "already complete" in run_cli("init", str(target), check=True).stdout


def test_workspace_resolution_order(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path / "from-env"))
    assert resolve_workspace_path(tmp_path / "explicit") == tmp_path / "explicit"
    assert resolve_workspace_path() == tmp_path / "from-env"
    monkeypatch.delenv("WORKBENCH_HOME")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert resolve_workspace_path() == tmp_path / "xdg" / "workbench"
    result = run_cli("--workspace", str(tmp_path / "flag"), "init", check=True)
    assert str(tmp_path / "flag") in result.stdout


def test_broken_config_is_one_line(workspace):
    workspace.config_path.write_text("[tracing]\npayload_sample_rate = 7\n")
    result = run_cli("traces", "list")
    assert_one_line_error(result, 2, str(workspace.config_path), "tracing.payload_sample_rate")
    assert workspace.config_path.read_text() == "[tracing]\npayload_sample_rate = 7\n"


def test_workspace_is_a_file(tmp_path):
    path = tmp_path / "afile"
    path.write_text("x")
    assert_one_line_error(run_cli("--workspace", str(path), "doctor"), 3, "is a file")


@pytest.fixture
def read_only_dir(tmp_path):
    """A real read-only filesystem (chmod does not stop root, a read-only mount does)."""
    mount = tmp_path / "ro"
    mount.mkdir()
    if os.geteuid() != 0:
        mount.chmod(0o555)
        yield mount
        mount.chmod(0o755)
        return
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)]).returncode == 0
    if not ok:
        pytest.skip("cannot mount a tmpfs here, and as root chmod cannot make a folder read-only")
    yield mount
    subprocess.run(["umount", str(mount)])


def test_read_only_workspace_gets_a_clear_message(read_only_dir):
    run_cli("init", str(read_only_dir / "ws"), check=True)
    if os.geteuid() == 0:
        subprocess.run(["mount", "-o", "remount,ro", str(read_only_dir)], check=True)
    else:
        (read_only_dir / "ws").chmod(0o555)
    result = run_cli("--workspace", str(read_only_dir / "ws"), "traces", "list")
    assert_one_line_error(result, 3, "cannot write to the workspace", "--workspace")
    assert (read_only_dir / "ws" / "workbench.toml").exists()


def test_traces_list_show_and_sql(workspace):
    service = Service(workspace.root)
    with service.tracer.span("demo.run", "workflow") as root:
        with service.tracer.span("llm.chat", "llm", {"gen_ai.request.model": "smollm2"}):
            pass
    service.flush_traces()
    listing = run_cli("traces", "list", check=True).stdout
    assert root.trace_id[:16] in listing and "demo.run" in listing and "1 of 1 traces" in listing
    data = json.loads(run_cli("traces", "list", "--json", check=True).stdout)
    assert data["total"] == 1 and data["traces"][0]["models"] == "smollm2"
    shown = run_cli("traces", "show", root.trace_id[:8], check=True).stdout
    assert "- demo.run [workflow]" in shown and "  - llm.chat [llm]" in shown
    assert "gen_ai.request.model = smollm2" in shown
    out = run_cli("sql", "SELECT name FROM spans ORDER BY start_ns", "--json", check=True).stdout
    assert [r["name"] for r in json.loads(out)] == ["demo.run", "llm.chat"]


def test_user_mistakes_are_one_line(workspace):
    assert_one_line_error(run_cli("traces", "show", "abc123"), 6, "no trace abc123")
    assert_one_line_error(run_cli("sql", "SELEC oops"), 6, "check the SQL")
    assert_one_line_error(run_cli("sql", "DROP TABLE spans"), 6)
    assert_one_line_error(run_cli("models", "register", "/nonexistent/model.gguf"), 5, "does not exist")
    not_gguf = workspace.root / "notes.gguf"
    not_gguf.write_text("hello")
    assert_one_line_error(run_cli("models", "register", str(not_gguf)), 5, "not a GGUF file")
    assert_one_line_error(run_cli("models", "fetch", "llama-70b"), 5, "no default model named llama-70b")


def test_doctor_reports_machine_and_workspace(workspace):
    result = run_cli("doctor", "--json", check=True)
    checks = {(c["group"], c["name"]): c for c in json.loads(result.stdout)}
    assert checks[("versions", "duckdb")]["status"] == "ok"
    assert checks[("hardware", "llama.cpp")]["status"] in ("ok", "warn")
    assert "GPU offload" in checks[("hardware", "llama.cpp")]["detail"]
    assert checks[("workspace", "trace store")]["detail"].startswith(f"schema v{LATEST}")
    assert checks[("workspace", "offline mode")]["detail"] == "off"
    assert checks[("models", "smollm2")]["status"] == "warn"  # not fetched in this workspace
    offline = json.loads(run_cli("--offline", "doctor", "--json", check=True).stdout)
    assert {(c["name"], c["detail"]) for c in offline} >= {("offline mode", "on")}


def test_doctor_asks_llama_cpps_library_what_llama_cpp_would_answer(tmp_path, monkeypatch):
    """doctor loads libllama without importing llama_cpp (workbench/core/llama_native.py): the
    library it finds is the one llama_cpp loads, with the same answer about GPU offload, and a
    broken one is a failed check, not a crash."""
    import llama_cpp

    from workbench.core.hardware import llama_check
    from workbench.core.llama_native import library_path, supports_gpu_offload

    path = library_path()
    assert path is not None and path.parent == Path(llama_cpp.__file__).parent / "lib"
    assert supports_gpu_offload(path) == llama_cpp.llama_supports_gpu_offload()
    (tmp_path / "libllama.so").write_text("not a library")
    monkeypatch.setenv("LLAMA_CPP_LIB_PATH", str(tmp_path))
    check = llama_check([])
    assert check.status == "fail" and "cannot load" in check.detail, check


def test_help_is_fast_and_light():
    start = time.perf_counter()
    run_cli("--help", check=True)
    assert time.perf_counter() - start < 5  # a guard against a heavy import, not a benchmark
    code = (
        "import sys; from workbench.cli import cli; "
        "print(sorted(m for m in ('torch', 'llama_cpp', 'duckdb', 'textual', 'lancedb') if m in sys.modules))"
    )
    out = subprocess.run([str(Path(os.sys.executable)), "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "[]"


def test_a_trace_id_is_printed_only_for_a_trace_that_was_stored(model_workspace):
    """Finding 10 of the red-team review: on a full disk `ask` printed a trace id whose trace
    never reached the store. Writes past a few KB fail here (RLIMIT_FSIZE: EFBIG, as ENOSPC
    would); the answer is still given, and the line says its trace was not stored."""
    import resource
    import subprocess

    from tests.conftest import BIN

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    run_cli(
        "ask", "hi", "-m", "smollm2", "--max-tokens", "2", check=True
    )  # the store exists, the model is known
    done = subprocess.run(
        [str(BIN / "workbench"), "ask", "Say hello.", "-m", "smollm2", "--max-tokens", "4"],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=small_files,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip(), "the answer was given"
    assert "trace NOT stored:" in done.stderr and "too large" in done.stderr, done.stderr
    assert not re.search(r"trace [0-9a-f]{16}", done.stderr)
    fine = run_cli("ask", "Say hello.", "-m", "smollm2", "--max-tokens", "4", check=True)
    trace_id = re.search(r"trace ([0-9a-f]{16})", fine.stderr).group(1)
    assert run_cli("traces", "show", trace_id).returncode == 0
