"""MCP both ways, on the official MCP Python SDK: a workflow's agent node calls the tools of MCP
servers declared in workbench.toml (stdio, started per call; streamable HTTP, started by the
test) beside a user tool, each call a span; what a server gets wrong (crash, hang, an error,
lines that are not JSON-RPC) is a tool error and the run goes on; and `workbench mcp` answers
the SDK's own client over stdio and streamable HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import anyio
import httpx
import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client

from tests.conftest import run_cli
from tests.fake_cloud import FakeCloud
from tests.test_agent_tools import _tools
from tests.test_server import free_port

DATA = Path(__file__).parent / "data"
AGENT = """\
name: facts
start: agent
nodes:
  agent:
    type: agent
    model: remote/big
    prompt:
      id: facts-agent
      template: "{input}"
    tools: [%s]
    max_steps: 3
    next: end
"""


def _wait_for_http(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError(f"nothing answered at {url}")


@pytest.fixture
def http_facts():
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(DATA / "mcp_facts.py"), "http", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for_http(f"http://127.0.0.1:{port}/mcp", process)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(timeout=10)


def _config(url: str, facts_url: str | None = None, timeout_s: float = 30) -> str:
    text = (
        f'[cloud.remote]\nbase_url = "{url}"\nmodels = ["big"]\n'
        f'[mcp.facts]\ncommand = "{sys.executable}"\nargs = ["{DATA / "mcp_facts.py"}"]\n'
        f'env = ["FACTS_TOKEN"]\ntimeout_s = {timeout_s}\n'
    )
    if facts_url:
        text += f'[mcp.web]\nurl = "{facts_url}"\n'
    return text


def _scripted(calls: list[tuple[str, dict]]):
    """The cloud model: the given calls first, then an answer that quotes each result."""

    def answer(body):
        results = [m for m in body["messages"] if m["role"] == "tool"]
        if not results:
            return {
                "calls": [
                    {"id": f"call_{i}", "name": name, "arguments": [json.dumps(arguments)]}
                    for i, (name, arguments) in enumerate(calls)
                ]
            }
        return [" | ".join(f"{m['name']}: {m['content']}" for m in results)]

    return answer


def test_an_agent_calls_a_user_tool_and_mcp_tools_over_stdio_and_http(
    model_workspace, http_facts, monkeypatch
):
    monkeypatch.setenv("FACTS_TOKEN", "facts-token-value")
    calls = [
        ("get_weather", {"city": "Oslo"}),
        ("facts__lookup", {"term": "libffi"}),
        ("web__lookup", {"term": "libffi"}),
        ("facts__environment", {}),
    ]
    upstream = FakeCloud(answer=_scripted(calls))
    _tools(model_workspace.root / "tools")
    try:
        model_workspace.config_path.write_text(_config(upstream.url, http_facts))
        listed = run_cli("tools", "list", "--json")
        sources = {row["name"]: row["source"] for row in json.loads(listed.stdout)["tools"]}
        assert sources["facts__lookup"] == "mcp:facts" and sources["web__lookup"] == "mcp:web"
        assert sources["get_weather"] == "mine.py"
        names = ", ".join(name for name, _ in calls)
        (model_workspace.root / "workflows" / "facts.yaml").write_text(AGENT % names)
        done = run_cli("run", "facts", "--input", "Tell me about libffi.", "--json", timeout=300)
    finally:
        upstream.close()
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout)
    outputs = {o["tool"]: o["output"] for o in outcome["state"]["observations"]}
    fact = "libffi calls C functions whose signature is known only at run time."
    assert outputs["facts__lookup"] == fact == outputs["web__lookup"]
    assert outputs["get_weather"] == "sunny and 21 degrees celsius in Oslo"
    # the stdio server got the variable it names and none of ours (WORKBENCH_HOME, keys...)
    given = json.loads(outputs["facts__environment"])
    assert "FACTS_TOKEN" in given and "WORKBENCH_HOME" not in given
    assert f"facts__lookup: {fact}" in outcome["state"]["answer"]
    # the tools reached the model with their MCP schemas
    first = upstream.requests[0]["body"]
    lookup = next(t for t in first["tools"] if t["function"]["name"] == "facts__lookup")
    assert lookup["function"]["parameters"]["required"] == ["term"]
    from workbench.services import Service

    _, spans = Service(model_workspace.root).sql(
        "SELECT name, attributes FROM spans WHERE name LIKE 'execute_tool %' "
        f"AND trace_id LIKE '{outcome['trace_id'][:16]}%' ORDER BY start_ns"
    )
    servers = {name: json.loads(attributes).get("workbench.mcp.server") for name, attributes in spans}
    assert servers == {
        "execute_tool get_weather": None,
        "execute_tool facts__lookup": "facts",
        "execute_tool web__lookup": "web",
        "execute_tool facts__environment": "facts",
    }


def test_what_a_server_gets_wrong_is_a_tool_error_and_the_run_goes_on(model_workspace):
    calls = [
        ("facts__crash", {}),
        ("facts__hang", {"seconds": 60}),
        ("facts__fail", {"reason": "no such fact"}),
        ("facts__lookup", {"term": 42}),  # not a string: refused before the server is asked
        ("facts__lookup", {"term": "libffi"}),
    ]
    upstream = FakeCloud(answer=_scripted(calls))
    try:
        model_workspace.config_path.write_text(
            _config(upstream.url, timeout_s=4)
            + f'[mcp.junk]\ncommand = "{sys.executable}"\nargs = ["{DATA / "mcp_garbage.py"}"]\n'
            + '[mcp.gone]\ncommand = "/nonexistent/mcp-server"\n'
        )
        listed = run_cli("tools", "list")
        assert listed.returncode == 0
        assert "problem: [mcp.junk]: MCP server junk wrote what is not JSON-RPC on stdout" in listed.stderr
        assert (
            "problem: [mcp.gone]: MCP server gone could not list its tools: FileNotFoundError"
            in listed.stderr
        )
        (model_workspace.root / "workflows" / "facts.yaml").write_text(
            AGENT % "facts__crash, facts__hang, facts__fail, facts__lookup"
        )
        started = time.monotonic()
        done = run_cli("run", "facts", "--input", "Go.", "--json", timeout=300)
        took = time.monotonic() - started
    finally:
        upstream.close()
    assert done.returncode == 0, done.stderr
    observations = json.loads(done.stdout)["state"]["observations"]
    outputs = [o["output"] for o in observations]
    assert outputs[0].startswith("error: MCP server facts could not call crash: MCPError: Connection closed")
    assert "its stderr: facts: crashing on purpose" in outputs[0]
    assert outputs[1] == "error: MCP server facts did not call hang within 4 s ([mcp.facts] timeout_s)"
    assert outputs[2].startswith("error: facts__fail answered an error")
    assert outputs[3].startswith("error: arguments do not fit facts__lookup: 42 is not of type 'string'")
    assert outputs[4] == "libffi calls C functions whose signature is known only at run time."
    assert took < 60, "the hang was given up at its timeout"
    assert "Traceback" not in done.stderr


def _client_calls(transport_args) -> dict:
    async def main():
        async with transport_args() as streams, ClientSession(streams[0], streams[1]) as session:
            await session.initialize()
            tools = await session.list_tools()
            found = await session.call_tool(
                "search", {"collection": "notes", "query": "what does libffi do", "k": 2}
            )
            missing = await session.call_tool("search", {"collection": "nope", "query": "x"})
            writes = await session.call_tool("query_traces", {"sql": "DELETE FROM spans"})
            reads = await session.call_tool("query_traces", {"sql": "SELECT count(*) AS n FROM spans"})
            return {
                "tools": sorted(t.name for t in tools.tools),
                "found": json.loads(found.content[0].text),
                "missing": (missing.is_error, missing.content[0].text),
                "writes": (writes.is_error, writes.content[0].text),
                "reads": (reads.is_error, reads.content[0].text),
            }

    return anyio.run(main)


def test_workbench_mcp_answers_the_official_client(model_workspace, tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "ffi.md").write_text(
        "# libffi\n\nlibffi calls C functions whose signature is known only at run time.\n"
    )
    assert run_cli("ingest", str(notes), "-c", "notes", timeout=300).returncode == 0
    workbench = str(Path(sys.executable).parent / "workbench")
    stdio = StdioServerParameters(
        command=workbench,
        args=["--workspace", str(model_workspace.root), "mcp"],
        env={"WORKBENCH_HOME": str(model_workspace.root)},
    )
    got = _client_calls(lambda: stdio_client(stdio))
    assert got["tools"] == [
        "list_collections",
        "list_models",
        "list_workflows",
        "query_traces",
        "run_workflow",
        "search",
    ]
    assert (
        got["found"][0]["path"].endswith("ffi.md") and "libffi calls C functions" in got["found"][0]["text"]
    )
    assert got["missing"][0] and "no collection named 'nope'" in got["missing"][1]
    assert got["writes"][0] and got["writes"][1].startswith(
        "Error executing tool query_traces: only SELECT queries over the traces are allowed"
    )
    assert not got["reads"][0] and got["reads"][1].startswith("n\n")

    from mcp.client.streamable_http import streamable_http_client

    port = free_port()
    server = subprocess.Popen(
        [workbench, "--workspace", str(model_workspace.root), "mcp", "--http", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "WORKBENCH_HOME": str(model_workspace.root)},
    )
    try:
        _wait_for_http(f"http://127.0.0.1:{port}/mcp", server)
        over_http = _client_calls(lambda: streamable_http_client(f"http://127.0.0.1:{port}/mcp"))
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert over_http["tools"] == got["tools"] and over_http["found"] == got["found"]
