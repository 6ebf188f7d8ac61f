"""One prompt to several models at once: a local one and a cloud one, one trace."""

from __future__ import annotations

import pytest

from local_models.types import GenerationParams
from tests.conftest import run_cli
from tests.fake_cloud import ANSWER
from workbench.core.errors import WorkbenchError


def test_local_and_cloud_side_by_side(local_and_cloud):
    streamed: dict[int, list[str]] = {0: [], 1: [], 2: []}
    outcomes = local_and_cloud.compare(
        ["smollm2", "remote/big", "nope"],
        "Capital of France?",
        None,
        GenerationParams(temperature=0, max_tokens=12),
        lambda index, piece: streamed[index].append(piece),
    )
    local, cloud, missing = outcomes
    assert local.model == "smollm2" and local.output_tokens > 0 and "".join(streamed[0]) == local.text
    assert cloud.text == "".join(ANSWER) == "".join(streamed[1])
    assert isinstance(missing, WorkbenchError) and "no model named 'nope'" in missing.message
    assert local.trace_id == cloud.trace_id, "one trace for the whole comparison"
    local_and_cloud.flush_traces()
    spans = local_and_cloud.get_trace(local.trace_id)
    root = next(s for s in spans if s["name"] == "compare")
    chats = [s for s in spans if s["name"] == "llm.chat"]
    assert {s["model"] for s in chats} == {"smollm2", "remote/big"}
    assert all(s["parent_id"] == root["span_id"] for s in chats)


def test_compare_needs_two_to_four(local_and_cloud):
    with pytest.raises(WorkbenchError, match="2 to 4 models"):
        local_and_cloud.compare(["smollm2"], "hi")


def test_cli_compare(local_and_cloud, model_workspace):
    result = run_cli("compare", "-m", "smollm2", "-m", "gemma3-270m", "-t", "0", "--max-tokens", "8", "Hello")
    assert result.returncode == 0, result.stderr
    assert "== smollm2" in result.stdout and "== gemma3-270m" in result.stdout
    assert "TTFT_MS" in result.stdout and "trace " in result.stdout
