"""The `tool_call` metric (evals/tool_calls.py) on checker cases written the way the Berkeley
Function Calling Leaderboard's AST checker takes them, and an eval of tool use end to end."""

from __future__ import annotations

import json

import pytest

from evals.tool_calls import check_calls
from tests.conftest import run_cli

WEATHER = {"name": "get_weather", "arguments": {"city": ["Paris", "Paris, France"], "unit": ["celsius", ""]}}

CASES = [
    # (expected calls, the answer's calls, score, a word of the reason)
    ([WEATHER], [{"name": "get_weather", "arguments": {"city": "Paris"}}], 1.0, "matches"),
    (
        [WEATHER],
        [{"name": "get_weather", "arguments": {"city": "paris, france", "unit": "celsius"}}],
        1.0,
        "",
    ),
    ([WEATHER], [{"name": "get_weather", "arguments": '{"city": "PARIS"}'}], 1.0, "JSON text arguments"),
    ([WEATHER], [{"name": "get_weather", "arguments": {"city": "Lyon"}}], 0.0, "not among"),
    ([WEATHER], [{"name": "get_weather", "arguments": {"unit": "celsius"}}], 0.0, "missing"),
    ([WEATHER], [{"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}], 0.0, "unexpected"),
    ([WEATHER], [{"name": "get_time", "arguments": {"city": "Paris"}}], 0.0, "called"),
    ([WEATHER], [], 0.0, "0 calls"),
    ([WEATHER], [{"name": "get_weather", "arguments": "{not json"}], 0.0, "not JSON"),
    # numbers: an int for a float, never a string for a number, booleans are not numbers
    ([{"name": "f", "arguments": {"x": [2.0]}}], [{"name": "f", "arguments": {"x": 2}}], 1.0, ""),
    ([{"name": "f", "arguments": {"x": [2]}}], [{"name": "f", "arguments": {"x": "2"}}], 0.0, "not among"),
    ([{"name": "f", "arguments": {"x": [1]}}], [{"name": "f", "arguments": {"x": True}}], 0.0, "not among"),
    # an array argument is written inside the list of allowed values
    (
        [{"name": "f", "arguments": {"days": [[1, 2]]}}],
        [{"name": "f", "arguments": {"days": [1, 2]}}],
        1.0,
        "",
    ),
    (
        [{"name": "f", "arguments": {"days": [[1, 2]]}}],
        [{"name": "f", "arguments": {"days": [2, 1]}}],
        0.0,
        "",
    ),
    # objects key by key
    (
        [{"name": "f", "arguments": {"o": [{"a": "X y"}]}}],
        [{"name": "f", "arguments": {"o": {"a": "x-y"}}}],
        1.0,
        "",
    ),
    # parallel calls, any order, one to one
    (
        [{"name": "w", "arguments": {"c": ["Oslo"]}}, {"name": "w", "arguments": {"c": ["Rome"]}}],
        [{"name": "w", "arguments": {"c": "rome"}}, {"name": "w", "arguments": {"c": "oslo"}}],
        1.0,
        "",
    ),
    (
        [{"name": "w", "arguments": {"c": ["Oslo"]}}, {"name": "w", "arguments": {"c": ["Rome"]}}],
        [{"name": "w", "arguments": {"c": "oslo"}}, {"name": "w", "arguments": {"c": "oslo"}}],
        0.0,
        "",
    ),
]


@pytest.mark.parametrize("expected,actual,score,reason", CASES)
def test_the_checker(expected, actual, score, reason):
    got, why = check_calls(expected, actual)
    assert got == score, why
    if score == 0.0 and reason:
        assert reason in why


def test_an_eval_scores_tool_use(model_workspace):
    weather = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The current weather of a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
    add = {
        "type": "function",
        "function": {
            "name": "add",
            "description": "The sum of two integers",
            "parameters": {
                "type": "object",
                "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                "required": ["a", "b"],
            },
        },
    }
    cases = [
        {
            "id": "w",
            "input": "What is the weather in Paris?",
            "tools": [weather],
            "expected_calls": [{"name": "get_weather", "arguments": {"city": ["Paris"]}}],
        },
        {
            "id": "a",
            "input": "Add 17 and 25.",
            "tools": [add],
            "expected_calls": [{"name": "add", "arguments": {"a": [17, 25], "b": [25, 17]}}],
        },
    ]
    (model_workspace.evals_dir / "tools.jsonl").write_text("\n".join(json.dumps(c) for c in cases) + "\n")
    done = run_cli("eval", "run", "tools", "-m", "smollm2", "--max-tokens", "160", "--json", timeout=300)
    assert done.returncode == 0, done.stderr
    run_id = json.loads(done.stdout)["run_id"]
    from workbench.services import Service

    results = Service(model_workspace.root).evals.results(run_id)
    assert {r["case_id"] for r in results} == {"w", "a"}
    for row in results:
        calls = json.loads(row["output"])  # the answer's calls are its output
        expected = next(c for c in cases if c["id"] == row["case_id"])["expected_calls"]
        assert row["metrics"]["tool_call"] == check_calls(expected, calls)[0]
        assert calls and calls[0]["name"] in {"get_weather", "add"}, "a call, held by the grammar"
    (model_workspace.evals_dir / "broken.jsonl").write_text(
        json.dumps({"id": "b", "input": "Hi", "expected_calls": [{"name": "f"}]}) + "\n"
    )
    refused = run_cli("eval", "run", "broken", "-m", "smollm2")
    assert refused.returncode != 0 and "`expected_calls` needs the `tools`" in refused.stderr
