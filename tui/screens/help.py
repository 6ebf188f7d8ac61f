"""The help screen: every key, and where to go next."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from tui.screens.base import NAVIGATION

HELP = """\
[b]Workbench[/b]: local models, retrieval, workflows, evals and traces in one terminal.

[b]Navigation[/b]
{navigation}
  escape   leave a text field, so that the digits above switch screens again
  alt+q    quit from anywhere, even inside a text field
  ctrl+p   command palette (go to a screen, refresh, doctor)
  ?        this help          q  quit

[b]Documents[/b]  a file or folder and a collection name, enter: ingest with live progress
  ctrl+f   search; the highlighted hit shows its file, heading, page and text

[b]Playground[/b]  pick a model (or auto: local first, cloud when needed), type, enter
  ctrl+l   new chat; the line under the chat shows TTFT, tok/s, cost and any escalation
  sending again while a model answers stops that answer (what it said so far stays in the chat)
  pick a collection (and k, mode): answers cite its passages [1], [2], listed under the answer
  ctrl+t   open the answer's trace      escape, then + / -   rate the answer (a note is asked)

[b]Compare[/b]  models comma separated (2 to 4), a prompt, enter: all stream side by side
  escape, then + / -   rate one model's answer (chosen in the dialog, with a note)

[b]Workflows[/b]  the list; the highlighted one shows its graph, or its problems with file:line
  enter on a workflow, type its input, enter: nodes stream into the log, the answer beside it
  ctrl+n   new workflow from a template (rag, router, agent)      ctrl+t  open the run's trace
  ctrl+s   stop the run at its next node (`workbench run --resume THREAD` finishes it)
  escape, then + / -   rate the run's answer

[b]Export[/b]  pick a workflow and a target (langgraph, litellm, vllm, otel): the files are
  previewed; ctrl+w writes them under <workspace>/exports/NAME/TARGET

[b]Evals[/b]  pick a dataset, name models (comma separated; optional workflow and judge), enter
  a progress bar per model; then the figures per model, the cases, and a case's drill-down
  ctrl+b   make the selected run the baseline; picking another run shows the diff
  ctrl+o   Results / Quality vs cost chart / Diff          ctrl+t  open the case's trace
  ctrl+s   stop the running eval after the cases in flight (ctrl+e later finishes it)
  ctrl+e   finish the selected run: cases it never ran (stopped, killed) and cases that ended in an error

[b]Traces[/b]
  type in the filters to narrow by name, model or status (ok / error)
  enter    open the selected trace: its span tree, attributes and payloads
  + / -    rate the highlighted trace's answer up or down (the feedback column counts them)
  space    pick traces; a  turn the picked (or highlighted) traces into eval cases: edit the
           drafted JSONL (the expected answer above all), ctrl+s adds them to a dataset
  ] / \\[    next / previous page     }} / {{  last / first page     r  refresh

[b]Usage[/b]  requests, tokens, cost local vs cloud, latency and TTFT per model, escalation rate
  and reasons, refusals, errors, workflow runs, GPU time, feedback, today's budget
  pick the window and the grouping above; s  the SQL behind every figure      r  refresh

[b]From the shell[/b]
  workbench traces list | show ID | export --format otlp-json
  workbench sql "SELECT name, count(*) FROM spans GROUP BY 1"
  workbench run rag --input "..."        workbench run --resume THREAD_ID
  workbench eval run demo -m smollm2 [--baseline RUN --fail-on-regression 0.02]
  workbench usage [--since 7d] [--by model] [--sql]     workbench traces rate ID up --note "..."
  workbench eval add-traces DATASET ID... [--where "feedback_down > 0"] [--edit]
  workbench chat -m smollm2 -c demo
  workbench doctor        workbench models fetch

Press escape to close.
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        navigation = "\n".join(f"  {key}        {title}" for key, _, title in NAVIGATION)
        with VerticalScroll(id="help"):
            yield Static(HELP.format(navigation=navigation))
