"""The langgraph export served by LangGraph's own server: `langgraph dev` (langgraph-cli 0.4.40
with the in-memory langgraph-api 0.16.7, in its own virtualenv, on loopback) runs the exported
rag graph, grade node included, against llama.cpp's OpenAI-compatible server, and returns the
answer `workbench run` gives at temperature 0. Before: the grade node got a 500 (llama.cpp's
server refuses response_format json_schema), answers differed (its default repeat penalty is
1.1), and the server could not read the graph's input schema (typing.TypedDict on 3.11)."""

from __future__ import annotations

import json

import httpx
import pytest

from agents.export.langgraph import REQUIREMENTS
from tests.conftest import llama_server, run_cli
from tests.engines import Engine, engine_venv
from tests.test_agent_approval import TOOLS as MAIL_TOOL
from tests.test_server import free_port

# torch pinned to the CPU wheel: sentence-transformers would pull a multi-GB CUDA build
LANGGRAPH = ["langgraph-cli[inmem]==0.4.40", "langgraph-api==0.16.7", "torch==2.13.0", *REQUIREMENTS]
QUESTION = "At what temperature is green tea steeped?"


@pytest.fixture(scope="module")
def langgraph_bin():
    return engine_venv("langgraph", LANGGRAPH).parent / "langgraph"


def test_langgraph_dev_runs_the_exported_rag_graph_to_the_workbench_answer(
    model_workspace, fetched_models, tmp_path, langgraph_bin
):
    corpus = tmp_path / "notes"
    corpus.mkdir()
    (corpus / "tea.md").write_text("# Tea\n\nGreen tea is steeped at 80 degrees Celsius for two minutes.\n")
    (corpus / "coffee.md").write_text("# Coffee\n\nEspresso is brewed at 9 bar of pressure in 25 seconds.\n")
    run_cli("ingest", str(corpus), "-c", "demo", check=True, timeout=300)
    run_cli("workflows", "new", "rag", "--from", "rag", check=True)
    ours = run_cli("run", "rag", "--input", QUESTION, check=True, timeout=300)
    assert "grade" in ours.stderr, "the workbench's run went through the grade node"
    out = tmp_path / "deploy"
    run_cli("export", "rag", "--target", "langgraph", "--out", str(out), check=True)

    with llama_server(fetched_models / "SmolLM2-135M-Instruct.Q4_1.gguf", "smollm2") as url:
        settings = (out / ".env.example").read_text()
        settings = settings.replace(
            "WORKFLOW_LLM_BASE_URL=http://localhost:4000/v1", f"WORKFLOW_LLM_BASE_URL={url}"
        )
        settings = settings.replace("WORKFLOW_LLM_KIND=openai", "WORKFLOW_LLM_KIND=llamacpp")
        (out / ".env").write_text(settings)
        port = free_port()
        server = Engine(
            [
                str(langgraph_bin),
                "dev",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-browser",
                "--no-reload",
            ],
            {
                "LANGSMITH_TRACING": "false",
                "LANGCHAIN_TRACING_V2": "false",
                "LANGGRAPH_NO_VERSION_CHECK": "1",
            },
            f"http://127.0.0.1:{port}/ok",
            tmp_path / "langgraph.log",
            timeout_s=300,
            cwd=out,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            assistant = httpx.post(f"{base}/assistants/search", json={"graph_id": "rag"}, timeout=60).json()[
                0
            ]
            schemas = httpx.get(f"{base}/assistants/{assistant['assistant_id']}/schemas", timeout=60)
            assert schemas.status_code == 200, schemas.text
            assert "input" in json.dumps(schemas.json()["input_schema"]), (
                "the graph's input schema is readable"
            )
            done = httpx.post(
                f"{base}/runs/wait",
                json={"assistant_id": "rag", "input": {"input": QUESTION, "steps": 0, "observations": []}},
                timeout=600,
            )
        finally:
            server.stop()
    assert done.status_code == 200, f"{done.status_code} {done.text[:2000]}\n{server.tail()}"
    state = done.json()
    assert "grade" in state and not state["grade"].get("failed"), f"the grade node ran: {state.get('grade')}"
    assert state["answer"].strip() == ours.stdout.strip(), "the answer `workbench run` gives"
    print(f"langgraph dev: grade {state['grade']}, answer {state['answer']!r}")


AGENT = """\
name: mailer
start: agent
nodes:
  agent:
    type: agent
    model: remote/big
    prompt:
      id: mailer
      template: "{input}"
    tools: [send_mail, facts__lookup]
    approve: [send_mail]
    max_steps: 4
    next: end
"""


def _agent_model(body):
    """The model behind the endpoint (our loopback cloud, scripted): look the fact up, then mail
    it, then answer."""
    results = [m for m in body["messages"] if m["role"] == "tool"]
    if not results:
        return {"calls": [{"id": "call_1", "name": "facts__lookup", "arguments": ['{"term": "libffi"}']}]}
    if len(results) == 1:
        mail = json.dumps({"to": "ana@example.com", "body": results[0]["content"]})
        return {"calls": [{"id": "call_2", "name": "send_mail", "arguments": [mail]}]}
    return [f"Done: {results[-1]['content']}"]


def test_langgraph_dev_runs_an_exported_agent_with_its_tools_and_waits_for_approval(
    model_workspace, tmp_path, langgraph_bin
):
    """The agent node in LangGraph's own server: the user's tool and an MCP server's (stdio, the
    server's settings carried in mcp.json) run there, and the call marked `approve` interrupts
    the run until a Command(resume=...) approves it, as LangGraph Studio sends one."""
    import sys
    from pathlib import Path

    from tests.fake_cloud import FakeCloud

    outbox = tmp_path / "outbox.txt"
    facts = Path(__file__).parent / "data" / "mcp_facts.py"
    (model_workspace.root / "tools").mkdir()
    (model_workspace.root / "tools" / "mail.py").write_text(MAIL_TOOL.format(outbox=outbox))
    (model_workspace.root / "workflows" / "mailer.yaml").write_text(AGENT)
    upstream = FakeCloud(answer=_agent_model)
    model_workspace.config_path.write_text(
        f'[cloud.remote]\nbase_url = "{upstream.url}"\nmodels = ["big"]\n'
        f'[mcp.facts]\ncommand = "{sys.executable}"\nargs = ["{facts}"]\n'
    )
    out = tmp_path / "deploy"
    run_cli("export", "mailer", "--target", "langgraph", "--out", str(out), check=True)
    assert json.loads((out / "mcp.json").read_text())["facts"]["args"] == [str(facts)]
    settings = (out / ".env.example").read_text()
    (out / ".env").write_text(settings.replace("http://localhost:4000/v1", upstream.url))
    port = free_port()
    server = Engine(
        [
            str(langgraph_bin),
            "dev",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-browser",
            "--no-reload",
        ],
        {"LANGSMITH_TRACING": "false", "LANGCHAIN_TRACING_V2": "false", "LANGGRAPH_NO_VERSION_CHECK": "1"},
        f"http://127.0.0.1:{port}/ok",
        tmp_path / "langgraph.log",
        timeout_s=300,
        cwd=out,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        thread = httpx.post(f"{base}/threads", json={}, timeout=60).json()["thread_id"]
        start = {"assistant_id": "mailer", "input": {"input": "Mail Ana the fact about libffi.", "steps": 0}}
        first = httpx.post(f"{base}/threads/{thread}/runs/wait", json=start, timeout=300)
        assert first.status_code == 200, f"{first.text[:2000]}\n{server.tail()}"
        waiting = httpx.get(f"{base}/threads/{thread}/state", timeout=60).json()
        asked = [i["value"] for task in waiting["tasks"] for i in task.get("interrupts", [])]
        assert asked and asked[0]["asks"][0]["tool"] == "send_mail", f"{waiting}\n{server.tail()}"
        assert not outbox.exists(), "nothing was sent before the approval"
        resume = {"assistant_id": "mailer", "command": {"resume": {"approved": True}}}
        done = httpx.post(f"{base}/threads/{thread}/runs/wait", json=resume, timeout=300)
    finally:
        server.stop()
        upstream.close()
    assert done.status_code == 200, f"{done.text[:2000]}\n{server.tail()}"
    state = done.json()
    fact = "libffi calls C functions whose signature is known only at run time."
    assert [o["tool"] for o in state["observations"]] == ["facts__lookup", "send_mail"]
    assert state["observations"][0]["output"] == fact
    assert outbox.read_text() == f"to ana@example.com: {fact}"
    assert state["answer"] == "Done: sent to ana@example.com"
