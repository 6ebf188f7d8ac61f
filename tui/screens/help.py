"""The help screen: keys grouped by screen, opened on the screen the user came from; every line
fits the box (72 columns), so nothing wraps raggedly."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static, TabbedContent, TabPane

from tui.screens.base import NAVIGATION

WIDTH = 72

SECTIONS = {
    "home": """\
[b]Workbench[/b]: local models, retrieval, workflows, evals and traces.

[b]Getting around[/b]
{navigation}
  ctrl+g, then a key   go to a screen from anywhere, even a text field
  escape               leave a text field: the digits switch screens
  alt+q                quit from anywhere, even inside a text field
  ctrl+p               command palette: every screen and main action
  ? or f1              this help        q   quit
  tab / shift+tab      next / previous pane (the focused one is lit)

Home shows the workspace, the doctor's checks and the next step.

[b]From the shell[/b]
  workbench doctor | models fetch | chat -m smollm2 -c demo
  workbench traces list | show ID | export --format otlp-json
  workbench sql "SELECT name, count(*) FROM spans GROUP BY 1"
  workbench run rag --input "..."   workbench run --resume THREAD_ID
  workbench eval run demo -m smollm2 [--baseline RUN]
  workbench usage [--since 7d] [--by model] [--sql]""",
    "documents": """\
[b]Documents[/b]
  a file or folder and a collection name, enter: ingest with live
  progress; a failed ingest says why where the progress was
  ctrl+f   search; the highlighted hit shows its file, heading,
           page and text
  ctrl+r   refresh the collections""",
    "playground": """\
[b]Playground[/b]
  pick a model (or auto: local first, cloud when needed), type, enter
  model, temperature, max tokens and a system prompt on the first
  row; a collection (k, search mode) or tools on the second
  answers render as Markdown; the line under the chat shows TTFT,
  tok/s, cost, any escalation, and a warning when an answer looks
  unreliable, with the ways forward
  sending again while a model answers stops that answer: it stays,
  marked stopped, and is not sent back to the model; nor is an
  answer that loops        ctrl+y   keep such an answer after all
  ctrl+r   regenerate the last answer
  up       (in the empty field) edit the last question; enter sends it
           in its place
  ctrl+o   the passages a collection's answer was given, with their
           text: where [1], [2] point
  ctrl+l   new chat            ctrl+t   open the answer's trace
  escape, then + / -   rate the answer (a note is asked)""",
    "compare": """\
[b]Compare[/b]
  models comma separated (2 to 4), a prompt, enter: all stream
  side by side, each column with its figures
  escape, then + / -   rate one model's answer (chosen in the
                       dialog, with a note)""",
    "workflows": """\
[b]Workflows[/b]
  the list; the highlighted one shows its graph, or every problem
  with its file:line
  enter on a workflow, type its input, enter: nodes stream into the
  log, the answer beside it
  ctrl+n   new workflow from a template (rag, router, agent)
  ctrl+t   open the run's trace
  ctrl+s   stop the run at its next node
           (`workbench run --resume THREAD` finishes it)
  escape, then + / -   rate the run's answer""",
    "evals": """\
[b]Evals[/b]
  pick a dataset, name models (comma separated; optional workflow
  and judge), enter: a progress bar per model; then the figures per
  model, the cases, and a case's drill-down
  ctrl+o   Results / Matrix / Quality vs cost / Diff
  ctrl+b   make the selected run the baseline; another run picked
           then shows the diff
  ctrl+t   open the case's trace
  ctrl+s   stop the running eval after the cases in flight
  ctrl+e   finish the selected run: cases never run or in error
  Matrix: every case against every run, side by side; f shows the
  failures only""",
    "traces": """\
[b]Traces[/b]
  filters: name, model, text (in a prompt or answer), status
  (ok / error / cancelled); new traces appear by themselves
  enter    the selected trace: its span tree; the trace's waterfall,
           or a span's attributes, messages and passages
  + / -    rate the highlighted trace's answer
  space    pick traces; a  turn them into eval cases: edit the drafted
           JSONL, ctrl+s adds them to a dataset
  ] / [    next / previous page     }} / {{  last / first page
  r        refresh      /  filter""",
    "models": """\
[b]Models[/b]
  the local models with their size and fit; cloud endpoints
  l / u    load / unload the highlighted model    o   offline mode
  Hugging Face Hub: type in its field, enter: repos; enter on one:
  its quants with a fit badge
  p        pull the highlighted quant (the one that fits, if none)
  x        stop a pull (pulling again resumes)
  d        discover models in the HF cache, LM Studio and Ollama""",
    "export": """\
[b]Export[/b]
  pick a workflow and a target (langgraph, litellm, vllm, otel):
  the files are previewed
  ctrl+w   write them under <workspace>/exports/NAME/TARGET""",
    "usage": """\
[b]Usage[/b]
  requests, tokens, cost local vs cloud, latency and TTFT per model,
  escalation rate and reasons, refusals, errors, workflow runs, GPU
  time, feedback, today's budget
  pick the window and the grouping above
  s        the SQL behind every figure      r   refresh""",
}


def section(mode: str) -> str:
    navigation = "\n".join(f"  {key}  {title}" for key, _, title in NAVIGATION)
    return SECTIONS[mode].format(navigation=navigation)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close")]

    def __init__(self, current: str = "home") -> None:
        super().__init__()
        self.current = current if current in SECTIONS else "home"

    def compose(self) -> ComposeResult:
        titles = {mode: title for _, mode, title in NAVIGATION}
        with Vertical(id="help"):
            with TabbedContent(initial=f"help-{self.current}"):
                for mode in SECTIONS:
                    with TabPane(titles[mode], id=f"help-{mode}"), VerticalScroll():
                        yield Static(section(mode))
            yield Static("[dim]left / right: other screens' keys    escape: close[/dim]", id="help-foot")
