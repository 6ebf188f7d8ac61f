"""End to end, as a person uses it: the real app in tmux, keys sent, the screen read back.

    python tests/e2e.py            (or `make e2e`)

On a fresh workspace: start, ingest a folder, search, ask in the Playground, compare two models,
create and run the rag workflow, open the trace of its answer and find why it said what it said
(prompt, retrieved chunks, model, parameters, route and escalation reason), run a small eval,
rate the rag answer and turn its trace into an eval case, see both in Usage, export the
workflow, quit. Each step waits for what the screen must show and fails with the
screen it saw.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent


class Screen:
    def __init__(self, session: str) -> None:
        self.session = session

    def keys(self, *keys: str) -> None:
        for key in keys:
            subprocess.run(["tmux", "send-keys", "-t", self.session, key], check=True)
            # Escape and the next key read together make one alt+key (ESCDELAY): leave a gap
            time.sleep(1.0 if key == "Escape" else 0.15)

    def go(self, key: str) -> None:
        """To the screen of ``key`` from anywhere, a text field too, as a person does: ctrl+g,
        the overlay, the key. (Escape, then a digit, counted on Escape leaving the field: on a
        loaded machine it once stopped a Playground answer still finishing instead, and the
        digit went into the question.)"""
        self.keys("C-g")
        self.wait("Go to", "escape stays", timeout=30, step=f"jump overlay for {key}")
        self.keys(key)
        # the next keys are for the screen jumped to: not before the overlay has gone
        deadline = time.monotonic() + 30
        while "escape stays" in self.text() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)

    def type(self, text: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.session, "-l", text], check=True)
        time.sleep(0.2)

    def fill(self, text: str, *, step: str, refocus: tuple[str, ...] = ()) -> str:
        """Type ``text`` into the focused field and see it there before going on. A field focused
        by the app (on a key binding, on enter in a list) takes the focus on the app's next turn,
        after keys it has already read: on a loaded machine the letters sent right after went to
        the widget that had the focus, and the next step waited on a screen that could never come
        (3 CI runs of 4, each at another step). Not seen within 30 s: ``refocus`` is pressed and
        the text typed again, twice at most. Seen means once more than before it was typed: the
        collection name "guide" is also the end of the folder's path above it."""
        shown = text[-24:]  # a narrow field scrolls, its end stays in view
        for attempt in range(3):
            if attempt:
                print(f"e2e: {step}: {text!r} not seen in 30 s, typed again", flush=True)
                self.keys(*refocus)
                time.sleep(1.0)
            before = self.text().count(shown)
            self.type(text)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                screen = self.text()
                if screen.count(shown) > before:
                    return screen
                time.sleep(0.2)
        raise AssertionError(
            f"{self.plain()}\nstep {step!r}: {text!r} typed 3 times, never seen in its field"
        )

    def plain(self) -> str:
        """The screen for a failure message, without the padding of its lines."""
        return "\n".join(line.rstrip() for line in self.text().splitlines())

    def text(self) -> str:
        return subprocess.run(
            ["tmux", "capture-pane", "-t", self.session, "-p"], capture_output=True, text=True
        ).stdout

    def wait(self, *wanted: str, timeout: float = 150, step: str = "") -> str:
        deadline = time.monotonic() + timeout
        # A failed worker shows as a toast for 10 s: keep what went by, or the failure names none
        notices: dict[str, None] = {}
        while time.monotonic() < deadline:
            screen = self.text()
            if all(w in screen for w in wanted):
                return screen
            notices.update(dict.fromkeys(_notices(screen)))
            time.sleep(0.2)
        screen = self.plain()
        # The step's name last: a test runner keeps the tail of a long message
        raise AssertionError(
            f"{screen}\nerror notices seen while waiting: {list(notices) or 'none'}\n"
            f"step {step!r}: {wanted} not on the screen after {timeout:g} s"
        )


def _notices(screen: str) -> list[str]:
    return [line.strip(" │▏▕▌▐") for line in screen.splitlines() if "rror" in line or "a bug" in line]


def prepare(root: Path) -> Path:
    """A fresh workspace with the models (fetched if needed), a small eval dataset and a folder to ingest."""
    from local_models.fetch import fetch_models
    from workbench.services import init_workspace

    cache = ROOT / ".test-models"
    cache.mkdir(exist_ok=True)
    fetch_models(cache)
    workspace, _ = init_workspace(root / "ws")
    for entry in cache.iterdir():
        if not entry.name.startswith("."):
            (workspace / "models" / entry.name).symlink_to(entry)
    cases = (ROOT / "evals" / "data" / "demo.jsonl").read_text().splitlines()[:4]
    (workspace / "evals" / "smoke.jsonl").write_text("\n".join(cases) + "\n")
    corpus = root / "guide"
    shutil.copytree(ROOT / "docs", corpus)
    return workspace


def main() -> int:
    if shutil.which("tmux") is None:
        print("e2e: tmux is not installed (apt-get install tmux)", file=sys.stderr)
        return 2
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        workspace = prepare(root)
        session = f"wb-e2e-{os.getpid()}"
        env = {"WORKBENCH_HOME": str(workspace)}
        subprocess.run(
            [
                "tmux",
                "new-session",
                "-d",
                "-s",
                session,
                "-x",
                "200",
                "-y",
                "50",
                "env",
                "-u",
                "COLUMNS",
                "-u",
                "LINES",
                *[f"{k}={v}" for k, v in env.items()],
                str(BIN / "workbench"),
            ],
            check=True,
        )
        screen = Screen(session)
        try:
            run_steps(screen, root, workspace)
        finally:
            subprocess.run(["tmux", "kill-session", "-t", session], stderr=subprocess.DEVNULL)
    print(f"e2e: all steps passed in {time.monotonic() - started:.0f} s")
    return 0


def run_steps(screen: Screen, root: Path, workspace: Path) -> None:
    def step(name: str) -> None:
        print(f"e2e: {name}", flush=True)

    step("start")
    screen.wait("1 Home", "Workspace", str(workspace)[:40], step="start")

    step("ingest a folder")
    screen.keys("2")
    screen.wait("No collections yet", step="documents")
    screen.fill(str(root / "guide"), step="ingest path")
    screen.keys("Tab")
    screen.fill("guide", step="ingest collection")
    screen.keys("Enter")
    screen.wait(f"{len(list((ROOT / 'docs').iterdir()))} added", "in guide", timeout=300, step="ingest")

    step("search")
    # the search box took the focus after the ingest
    screen.fill("restore an older version", step="search query")
    screen.keys("Enter")
    screen.wait("documents.md", "Versions", step="search")

    step("ask in the Playground")
    screen.go("3")
    screen.wait("ask something", step="playground")
    screen.fill("Name a color.", step="playground question")
    screen.keys("Enter")
    screen.wait("tok/s", "trace", timeout=300, step="playground answer")

    step("compare two models")
    screen.go("4")
    screen.wait("smollm2, gemma3-270m", step="compare prefill")
    # From no field, whatever took the focus as the screen came up (CI3: a lone Tab found none
    # focused, went to the models field, and the prompt was typed after the models): Escape
    # leaves any field, then Tab, Tab is the models field, then the prompt.
    screen.keys("Escape", "Tab", "Tab")
    typed = screen.fill("Say hello.", step="compare prompt")
    assert "gemma3-270mSay" not in typed, f"the prompt went into the models field:\n{typed}"
    screen.keys("Enter")
    compare = screen.wait("tok/s", timeout=300, step="compare")
    deadline = time.monotonic() + 120
    while compare.count("tok/s") < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
        compare = screen.text()
    assert compare.count("tok/s") >= 2, f"both columns show their figures:\n{compare}"

    step("create and run the rag workflow")
    screen.go("5")
    screen.wait("No workflows yet", step="workflows")
    (workspace / "workflows").mkdir(exist_ok=True)
    screen.keys("C-n")
    screen.fill("guide-rag", step="new workflow name", refocus=("C-n",))
    screen.keys("Enter")
    screen.wait("guide-rag", "retrieve (retrieve: demo", step="workflow created")
    # the template reads collection `demo`; this workspace's is `guide`: edit the spec as a user would
    spec = workspace / "workflows" / "guide-rag.yaml"
    spec.write_text(spec.read_text().replace("collection: demo", "collection: guide"))
    screen.keys("C-r")
    screen.wait("retrieve (retrieve: guide", step="workflow reloaded")
    screen.keys("Escape", "Tab", "Enter")  # focus the list; enter on a workflow focuses its input
    screen.fill("How do I restore an older version of a collection?", step="workflow input")
    screen.keys("Enter")
    screen.wait("finished", "trace ", timeout=400, step="workflow run")

    step("open the trace of the answer")
    screen.keys("Escape", "C-t")
    trace = screen.wait("workflow.run", "node.answer", "retrieval", "llm.chat", timeout=120, step="trace")
    assert "node.check" in trace and "node.escalate" in trace or "node.grade" in trace, trace

    step("why it said what it said")
    check_trace_explains(workspace)

    step("run a small eval")
    screen.go("6")
    screen.wait("smoke", step="evals")
    time.sleep(1.0)  # the screen focuses its dataset table as it is shown: Tab goes on from there
    screen.keys("Tab")
    screen.fill("smollm2", step="eval models field")
    screen.keys("Enter")
    screen.wait("contains", "smollm2", "latency", timeout=300, step="eval results")

    step("rate the rag answer, turn its trace into an eval case, see both in Usage")
    screen.go("7")
    screen.keys("Escape", "/")  # the screen may come back with a field focused
    # Typed before the filter field has focus (a loaded machine: one CI run lost the filter this
    # way), the letters would go to the table; "/" focuses it, give the app the time to.
    time.sleep(1.0)
    screen.fill("workflow.run", step="traces filter")
    screen.wait("1-1 of 1", step="traces filtered to the rag run")
    screen.keys("Escape")  # out of the filter field: + and a act on the trace
    screen.keys("+")
    screen.wait("Rate this trace's answer", step="rating dialog")
    screen.fill("cites the versions section", step="rating note")
    screen.keys("Enter")
    screen.wait("rated up: 1 up, 0 down", step="rated")
    screen.keys("a")
    screen.wait("1 case from traces", step="case drafted")
    screen.keys("C-s")
    screen.wait("added 1 case to from-traces.jsonl", step="case added")
    case = json.loads((workspace / "evals" / "from-traces.jsonl").read_text())
    assert case["input"] == "How do I restore an older version of a collection?", case
    assert case["tags"] == ["from-trace", "regression"] and case["expected"] and case["sources"], case
    screen.go("0")
    usage = screen.wait("1 up, 0 down", "routing decisions escalated", "Latency per model", step="usage")
    assert "smollm2" in usage and "local" in usage, usage

    step("export the workflow")
    screen.go("9")
    screen.wait("langgraph.json", "guide_rag_graph.py", timeout=150, step="export preview")
    screen.keys("C-w")
    screen.wait("wrote 21 files", step="export written")
    assert (workspace / "exports" / "guide-rag" / "langgraph" / "langgraph.json").is_file()

    step("quit")
    screen.keys("Escape", "q")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "1 Home" in screen.text():
        time.sleep(0.2)
    left = screen.text()
    assert "1 Home" not in left, f"the app quits on q, within 60 s; the screen after Escape q:\n{left}"


def check_trace_explains(workspace: Path) -> None:
    """The trace of the workflow run holds the prompt, the chunks, the model and its parameters,
    and the route and escalation reason."""
    from workbench.services import Service

    service = Service(workspace)
    root = service.list_traces(filters={"name": "workflow.run"})[0][0]
    spans = service.get_trace(root["trace_id"])
    by_name = {s["name"]: s for s in spans}
    retrieval = json.loads(by_name["retrieval"]["attributes"])
    assert retrieval["workbench.retrieval.chunk_ids"], "the retrieved chunk ids"
    answer = by_name["node.answer"]
    chat = next(s for s in spans if s["name"] == "llm.chat" and s["parent_id"] == answer["span_id"])
    attributes = json.loads(chat["attributes"])
    assert chat["model"] == "smollm2" and attributes["gen_ai.request.temperature"] == 0.0
    assert "How do I restore" in chat["payload"] and "Sources:" in chat["payload"], "the prompt as sent"
    check = json.loads(by_name["node.check"]["attributes"])
    assert check["workbench.route_reason"], "why the route went where it went"
    if "node.escalate" in by_name:
        assert json.loads(by_name["node.escalate"]["attributes"])["workbench.escalation_reason"]


if __name__ == "__main__":
    sys.exit(main())
