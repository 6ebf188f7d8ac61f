"""Tools in workflows: the user's own (<workspace>/tools/*.py) beside the built-ins in one
registry, `workbench tools list`, and the `agent` node's model-tools loop on native function
calling (SmolLM2, its calls held by a grammar), each call a span; what a tool does wrong is a
tool error the model and the trace see, and the run goes on."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from agents.tool_registry import load_user_tools, run_user_tool
from agents.tools import ToolFailed
from tests.conftest import run_cli

TOOLS = '''
from typing import Literal


def get_weather(city: str, unit: Literal["celsius", "fahrenheit"] = "celsius") -> str:
    """The current weather of a city."""
    return f"sunny and 21 degrees {unit} in {city}"


def slow(seconds: float) -> str:
    """Waits."""
    import time

    time.sleep(seconds)
    return "done"


def explode(reason: str) -> str:
    """Raises."""
    raise RuntimeError(reason)


def huge(size: int) -> str:
    """A long text."""
    return "x" * size


def unannotated(x) -> str:
    """No annotation."""
    return x


def undocumented(x: int) -> int:
    return x


def _private() -> None:
    pass
'''

AGENT = """\
name: weather
start: agent
nodes:
  agent:
    type: agent
    model: smollm2
    prompt:
      id: weather-agent
      system: Answer the user's question, using the tools when they help.
      template: "{input}"
    tools: [get_weather, calculator]
    max_steps: 4
    max_tokens: 160
    next: end
"""


def _tools(folder: Path) -> None:
    folder.mkdir(exist_ok=True)
    (folder / "mine.py").write_text(TOOLS)
    (folder / "broken.py").write_text("import no_such_module\n")


def test_user_tools_load_with_their_schemas_and_problems(tmp_path):
    _tools(tmp_path)
    tools, problems = load_user_tools(tmp_path)
    assert sorted(tools) == ["explode", "get_weather", "huge", "slow"]
    weather = tools["get_weather"]
    assert weather.source == "mine.py" and weather.description == "The current weather of a city."
    assert weather.parameters == {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "unit": {"enum": ["celsius", "fahrenheit"], "type": "string"},
        },
        "required": ["city"],
    }
    assert any(p.startswith("broken.py: does not load (ModuleNotFoundError") for p in problems)
    assert any("unannotated: parameter 'x' has no type annotation" in p for p in problems)
    assert any("undocumented has no docstring" in p for p in problems)
    # what a tool does wrong is a ToolFailed, never an exception through the run
    assert run_user_tool(weather, {"city": "Oslo"}) == "sunny and 21 degrees celsius in Oslo"
    with pytest.raises(ToolFailed, match="do not fit get_weather"):
        run_user_tool(weather, {"city": 3})
    with pytest.raises(ToolFailed, match="raised RuntimeError: boom"):
        run_user_tool(tools["explode"], {"reason": "boom"})
    started = time.perf_counter()
    with pytest.raises(ToolFailed, match="took longer than 0.5 s"):
        run_user_tool(tools["slow"], {"seconds": 5}, timeout_s=0.5)
    assert time.perf_counter() - started < 3, "abandoned, not waited for"
    cut = run_user_tool(tools["huge"], {"size": 10_000_000})
    assert len(cut) < 100_100 and cut.endswith("[cut: 10,000,000 characters]")


def test_tools_list_shows_every_tool_and_the_problems(model_workspace):
    _tools(model_workspace.root / "tools")
    listed = run_cli("tools", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    data = json.loads(listed.stdout)
    sources = {row["name"]: row["source"] for row in data["tools"]}
    assert sources["calculator"] == "built-in" and sources["get_weather"] == "mine.py"
    assert next(r for r in data["tools"] if r["name"] == "get_weather")["parameters"] == "city, unit?"
    assert any("broken.py" in p for p in data["problems"])
    table = run_cli("tools", "list")
    assert "get_weather" in table.stdout and "problem: tools/broken.py" in table.stderr


def test_an_agent_node_calls_a_user_tool_and_answers(model_workspace):
    _tools(model_workspace.root / "tools")
    (model_workspace.root / "workflows" / "weather.yaml").write_text(AGENT)
    done = run_cli("run", "weather", "--input", "What is the weather in Paris?", "--json", timeout=300)
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout)
    state = outcome["state"]
    assert state["observations"][0]["tool"] == "get_weather"
    assert json.loads(state["observations"][0]["input"])["city"] == "Paris"
    assert state["observations"][0]["output"] == "sunny and 21 degrees celsius in Paris"
    assert state["answer"].strip() and 2 <= state["steps"] <= 4
    from workbench.services import Service

    service = Service(model_workspace.root)
    _, spans = service.sql(
        "SELECT name, attributes, payload FROM spans WHERE name LIKE 'execute_tool %' "
        f"AND trace_id LIKE '{outcome['trace_id'][:16]}%'"
    )
    assert spans and spans[0][0] == "execute_tool get_weather"
    assert json.loads(spans[0][1])["gen_ai.tool.name"] == "get_weather"
    assert json.loads(spans[0][2])["arguments"] == {"city": "Paris"}
    # a tool that is not there is a problem before the run, with its place
    (model_workspace.root / "workflows" / "typo.yaml").write_text(
        AGENT.replace("name: weather", "name: typo").replace("get_weather,", "get_wether,")
    )
    refused = run_cli("run", "typo", "--input", "Hi")
    assert (
        refused.returncode != 0 and "nodes.agent.tools.0" in refused.stderr and "get_wether" in refused.stderr
    )
    # the langgraph export carries the user's tools (tests/test_engine_langgraph.py runs one)
    exported = run_cli("export", "weather", "-t", "langgraph", "--out", str(model_workspace.root / "out"))
    assert exported.returncode == 0, exported.stderr
    out = model_workspace.root / "out"
    assert (out / "tools" / "mine.py").read_text() == TOOLS and not (out / "mcp.json").exists()


def test_an_agent_node_on_a_cloud_model_runs_the_calls_it_gets(model_workspace):
    """The loopback cloud calls get_weather, then answers from its result: the tools reach the
    cloud model, the call runs here, and its result goes back as a `tool` message."""
    from tests.fake_cloud import FakeCloud

    def answer(body):
        results = [m for m in body["messages"] if m["role"] == "tool"]
        if not results:
            return {
                "calls": [{"id": "call_c1", "name": "get_weather", "arguments": ['{"city": ', '"Oslo"}']}]
            }
        return [f"From the tool: {results[0]['content']}."]

    _tools(model_workspace.root / "tools")
    upstream = FakeCloud(answer=answer)
    try:
        model_workspace.config_path.write_text(
            f'[cloud.remote]\nbase_url = "{upstream.url}"\nmodels = ["big"]\n'
        )
        (model_workspace.root / "workflows" / "weather.yaml").write_text(
            AGENT.replace("model: smollm2", "model: remote/big")
        )
        done = run_cli("run", "weather", "--input", "Weather in Oslo?", "--json", timeout=120)
    finally:
        upstream.close()
    assert done.returncode == 0, done.stderr
    state = json.loads(done.stdout)["state"]
    assert state["answer"] == "From the tool: sunny and 21 degrees celsius in Oslo." and state["steps"] == 2
    first, second = (request["body"] for request in upstream.requests)
    assert {t["function"]["name"] for t in first["tools"]} == {"get_weather", "calculator"}
    assert second["messages"][-1] == {
        "role": "tool",
        "tool_call_id": "call_c1",
        "name": "get_weather",
        "content": "sunny and 21 degrees celsius in Oslo",
    }


def test_the_playground_shows_the_calls_a_model_makes_and_their_results(model_workspace):
    """Tools named in the Playground: the (scripted, loopback) cloud model calls calculator, the
    call runs, its result goes back, and the transcript shows the call, the result and the
    answer; the next turn carries them."""
    from tests.fake_cloud import FakeCloud
    from tests.test_tui import run, settle, text_of
    from tests.test_tui_models import type_into
    from tui.app import WorkbenchApp
    from tui.screens.playground import PlaygroundScreen
    from workbench.services import Service

    def answer(body):
        results = [m for m in body["messages"] if m["role"] == "tool"]
        if not results:
            return {
                "calls": [{"id": "call_p1", "name": "calculator", "arguments": ['{"expression": "17 * 23"}']}]
            }
        return [f"It is {results[-1]['content']}."]

    upstream = FakeCloud(answer=answer)
    model_workspace.config_path.write_text(f'[cloud.remote]\nbase_url = "{upstream.url}"\nmodels = ["big"]\n')
    service = Service(model_workspace.root)

    async def scenario():
        app = WorkbenchApp(service)
        async with app.run_test(size=(160, 48)) as pilot:
            await pilot.press("3")
            await settle(app, pilot)
            assert isinstance(app.screen, PlaygroundScreen)
            app.screen.query_one("#chat-model").value = "remote/big"
            await type_into(pilot, app, "#chat-tools", "calculator")
            await type_into(pilot, app, "#chat-input", "What is 17 * 23?")
            await pilot.press("enter")
            await settle(app, pilot)
            transcript = text_of(app, "#chat-transcript")
            assert 'tool calculator({"expression": "17 * 23"}) -> 391' in transcript
            assert "model\nIt is 391." in transcript  # the speaker, then the answer as Markdown
            assert [m["role"] for m in app.screen.history] == ["user", "assistant", "tool", "assistant"]
            return app.screen.trace_id

    try:
        trace_id = run(scenario())
    finally:
        upstream.close()
    service.flush_traces()
    names = [span["name"] for span in service.get_trace(trace_id)]
    assert names == [
        "chat.tools",
        "llm.chat",
        "llm.attempt",
        "execute_tool calculator",
        "llm.chat",
        "llm.attempt",
    ]
