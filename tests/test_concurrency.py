"""The concurrency bugs an outside reading found, each shown on real parts (SmolLM2 on llama.cpp,
the loopback cloud, a real trace store): a request queued behind close(), a compare that left a
hole, a router that compacted the store on every call, two trace stores in one process, lazy
parts built twice from two threads."""

from __future__ import annotations

import threading
import time

import pytest

from local_models.llama_backend import LocalModel
from local_models.types import GenerationParams
from tests.conftest import run_cli
from tests.test_router import SCHEMA, routed
from workbench.core.errors import ModelError, WorkbenchError
from workbench.services import Service


def test_a_request_after_close_fails_at_once(model_workspace):
    model = LocalModel("smollm2", model_workspace.models_dir / "SmolLM2-135M-Instruct.Q4_1.gguf")
    busy = model.chat(
        [{"role": "user", "content": "Count to fifty."}], GenerationParams(temperature=0, max_tokens=200)
    )
    closing = threading.Thread(target=model.close)
    closing.start()
    deadline = time.monotonic() + 10
    while model._queue.qsize() == 0 and closing.is_alive() and time.monotonic() < deadline:
        time.sleep(0.001)  # until close() has queued its sentinel behind the busy request

    outcome: list[BaseException | str] = []

    def late() -> None:
        try:
            outcome.append(model.chat([{"role": "user", "content": "Hi"}]).result.text)
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            outcome.append(exc)

    started = time.monotonic()
    caller = threading.Thread(target=late, daemon=True)
    caller.start()
    caller.join(timeout=30)
    assert not caller.is_alive(), "a request after close() waited for an answer that never comes"
    assert isinstance(outcome[0], ModelError) and "unloaded" in outcome[0].message
    assert time.monotonic() - started < 5
    assert busy.result.output_tokens > 0  # what was queued before close() was still served
    closing.join(timeout=60)
    with pytest.raises(ModelError, match="unloaded"):
        model.chat([{"role": "user", "content": "Hi"}])
    with pytest.raises(ModelError, match="unloaded"):
        model.prompt_tokens([{"role": "user", "content": "Hi"}])


def test_compare_turns_any_failure_into_an_error_in_its_place(local_and_cloud):
    def on_text(index: int, piece: str) -> None:
        if index == 1:
            raise RuntimeError("the display of column 2 broke")

    outcomes = local_and_cloud.compare(
        ["smollm2", "remote/big"], "Capital of France?", None, {"temperature": 0, "max_tokens": 8}, on_text
    )
    assert outcomes[0].text and outcomes[0].model == "smollm2"
    assert isinstance(outcomes[1], WorkbenchError)
    assert "RuntimeError: the display of column 2 broke" in outcomes[1].one_line()


def test_the_router_is_built_once_and_never_compacts_on_the_callers_thread(
    model_workspace, cloud, monkeypatch
):
    service = routed(model_workspace, cloud.url, "daily_budget_usd = 1.0\n")
    assert service.router is service.router
    compactions: list[tuple[str, bool]] = []
    compact = service.store.compact

    def spy(blocking: bool = True) -> int:
        compactions.append((threading.current_thread().name, blocking))
        return compact(blocking)

    monkeypatch.setattr(service.store, "compact", spy)
    params = GenerationParams(temperature=0, max_tokens=3, json_schema=SCHEMA)
    first = service.ask("auto", "Capital of France?", params=params)
    assert first.extra["route"] == "cloud" and first.cost_usd > 0
    assert [c for c in compactions if c[0] == threading.current_thread().name] == []
    # This process's spend counts at once, and once: before its spans reach the store and after.
    spent = service.router.spent_today()
    assert spent == pytest.approx(first.cost_usd)
    service.flush_traces()
    assert service.router.spent_today() == pytest.approx(spent)


def test_one_trace_store_per_process_so_its_warnings_reach_the_doctor(workspace):
    service = Service(workspace.root)
    assert service.tracer.sink.store is service.store
    with service.tracer.span("work", "internal"):
        pass
    (workspace.spool_dir / "00000000000000000001-1-000000-deadbeef.parquet").write_bytes(b"not parquet")
    service.tracer.sink.flush(compact=True, blocking=True)  # the tracer's own compaction sets it aside
    assert any("unreadable trace segment" in w for w in service.trace_warnings())
    check = next(c for c in service.doctor() if c.name == "trace store")
    assert check.status == "warn" and "quarantine" in check.detail


def test_lazy_parts_are_built_once_when_two_threads_ask_at_once(workspace, monkeypatch):
    import local_models.manager as manager

    built: list[object] = []
    original = manager.ModelManager.__init__

    def slow_init(self, *args, **kwargs):
        built.append(self)
        time.sleep(0.2)  # a wide window for a second thread to build another
        original(self, *args, **kwargs)

    monkeypatch.setattr(manager.ModelManager, "__init__", slow_init)
    service = Service(workspace.root)
    barrier = threading.Barrier(4)
    seen: list[object] = []

    def first_use() -> None:
        barrier.wait()
        seen.append(service.models)
        seen.append(service.tracer)

    threads = [threading.Thread(target=first_use) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(built) == 1
    assert all(part is seen[0] for part in seen[0::2]) and all(part is seen[1] for part in seen[1::2])


def test_a_cancelled_chat_stops_decoding(model_workspace):
    service = Service(model_workspace.root)
    cancel = threading.Event()
    pieces: list[str] = []

    def on_text(piece: str) -> None:
        pieces.append(piece)
        cancel.set()

    result = service.ask(
        "smollm2",
        "Count to a hundred.",
        params={"temperature": 0, "max_tokens": 200},
        on_text=on_text,
        cancel=cancel,
    )
    assert result.finish_reason == "cancelled" and result.output_tokens < 20
    service.models.close()


def test_usage_mistakes_have_their_own_exit_code(workspace):
    result = run_cli("compare", "-m", "smollm2", "hi")
    assert result.returncode == 64
    last = result.stderr.strip().splitlines()[-1]
    assert last == "error: compare takes 2 to 4 models, not 1 -> pass -m 2 to 4 times"


def test_the_same_load_options_keep_the_loaded_model(model_workspace):
    # `workbench chat` passes its options on every turn: they must not reload the model each time.
    service = Service(model_workspace.root)
    options = {"n_ctx": 2048, "n_threads": None, "n_gpu_layers": None}
    for _ in range(2):
        service.chat("smollm2", [{"role": "user", "content": "Hi"}], {"max_tokens": 2}, options=options)
    service.flush_traces()
    _, rows = service.sql("SELECT count(*) FROM spans WHERE name = 'model.load'")
    assert rows[0][0] == 1
    service.models.close()
