"""`workbench workflows`, `run` and `export`: LangGraph workflows from specs."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from workbench.cli._context import Context
from workbench.cli._output import format_when, render_table

__all__ = ["workflows", "run", "export"]


@click.group()
def workflows() -> None:
    """Workflow specs in <workspace>/workflows: list, show, validate, new, runs."""


@workflows.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def workflows_list(obj: Context, as_json: bool) -> None:
    """The workflows of this workspace and whether each is valid."""
    rows = obj.service.workflows.list()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    elif not rows:
        click.echo("no workflows yet: `workbench workflows new NAME --from rag|router|agent`")
    else:
        for row in rows:
            row["valid"] = "yes" if row["valid"] else f"no ({row['problems']})"
            row["description"] = row["description"][:70]
        click.echo(render_table(rows, ["name", "nodes", "valid", "description"]))


@workflows.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="The spec as JSON.")
@click.pass_obj
def workflows_show(obj: Context, name: str, as_json: bool) -> None:
    """A workflow's graph, node by node, and where its spec lives."""
    view = obj.service.workflows.describe(name)
    if as_json:
        click.echo(json.dumps(view["spec"], indent=2))
        return
    click.echo(f"{view['name']}: {view['description']}")
    click.echo(f"spec: {view['path']}  (max_steps {view['max_steps']})\n")
    click.echo("\n".join(view["outline"]))


@workflows.command("validate")
@click.argument("name")
@click.pass_obj
def workflows_validate(obj: Context, name: str) -> None:
    """Check a spec, and that this workspace has its models and collections."""
    spec = obj.service.workflows.validate(name)
    click.echo(f"{name}: valid ({len(spec.nodes)} nodes)")


@workflows.command("new")
@click.argument("name")
@click.option(
    "--from",
    "template",
    required=True,
    type=click.Choice(["rag", "router", "agent"]),
    help="The template to copy.",
)
@click.pass_obj
def workflows_new(obj: Context, name: str, template: str) -> None:
    """Create workflow NAME from a template; edit the YAML it writes."""
    path = obj.service.workflows.new(name, template)
    click.echo(f"created {path}")
    problems = obj.service.workflows.check(name)
    for problem in problems:
        click.echo(f"note: {problem}", err=True)


@workflows.command("runs")
@click.option("--limit", default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def workflows_runs(obj: Context, limit: int, as_json: bool) -> None:
    """Recent runs with their thread ids (resume an interrupted one with `run --resume`)."""
    rows = obj.service.workflows.runs(limit)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        row["started"] = format_when(row["started_ns"])
        row["input"] = row["input"][:40]
        row["status"] = "interrupted" if row["status"] == "running" and not row["ended_ns"] else row["status"]
    click.echo(render_table(rows, ["thread_id", "workflow", "status", "started", "input"]))


@click.command()
@click.argument("name", required=False)
@click.option("--input", "-i", "text", help="The workflow's input (a question, a task).")
@click.option("--resume", "thread_id", metavar="THREAD_ID", help="Resume an interrupted or waiting run.")
@click.option(
    "--approve/--deny", "approve", default=None, help="With --resume: answer the calls the run waits on."
)
@click.option("--note", help="With --deny (or --approve): why, for the model to read.")
@click.option("--json", "as_json", is_flag=True, help="Print the final state as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="No node-by-node progress on stderr.")
@click.pass_obj
def run(
    obj: Context,
    name: str | None,
    text: str | None,
    thread_id: str | None,
    approve: bool | None,
    note: str | None,
    as_json: bool,
    quiet: bool,
) -> None:
    """Run workflow NAME on --input; node events and tokens stream to stderr, the answer to stdout
    (through the workspace's running gateway when there is one). A run whose agent calls a tool
    marked `approve` waits: answer it with --resume THREAD_ID --approve or --deny."""
    from workbench.core.errors import UsageError, WorkflowError

    if thread_id is None and (not name or text is None):
        raise WorkflowError(
            "say what to run", 'workbench run NAME --input "..." or workbench run --resume THREAD_ID'
        )
    if approve is not None and thread_id is None:
        raise UsageError("--approve and --deny answer a waiting run", "give its --resume THREAD_ID")
    from workbench.server.client import client_for
    from workbench.server.protocol.workbench import RunRequest

    printer = _Events(enabled=not quiet)
    request = RunRequest(name=name, input=text, thread_id=thread_id, approve=approve, note=note)
    try:  # through the workspace's gateway when one runs: its models are loaded already
        outcome = client_for(obj.workspace, lambda: obj.service).run_workflow(request, printer)
    finally:
        printer.close()  # an error (a stop) starts on a line of its own
    state = outcome["state"]
    if as_json:
        click.echo(json.dumps({**outcome, "state": state}, indent=2, default=str))
        return
    if outcome.get("waiting"):
        for ask in outcome["waiting"]["asks"]:
            click.echo(f"waiting for approval: {ask['tool']}({ask['arguments']})", err=True)
        click.echo(
            f"[thread {outcome['thread_id']}: workbench run --resume {outcome['thread_id']} "
            "--approve (or --deny --note WHY)]",
            err=True,
        )
        return
    answer = _answer_text(state.get("answer"))
    if not (sys.stdout.isatty() and answer in printer.streamed):  # already on the screen
        click.echo(answer)
    reason = state.get("escalation_reason")
    if reason:
        to = state.get("escalated_to")
        click.echo(f"[escalated to {to}: {reason}]" if to else f"[not escalated: {reason}]", err=True)
    click.echo(
        f"[thread {outcome['thread_id']}, {obj.trace_note(outcome['trace_id'])}"
        + (f", resumed; skipped {', '.join(outcome['skipped'])}" if outcome["resumed"] else "")
        + "]",
        err=True,
    )


def _answer_text(answer: Any) -> str:
    if answer is None:
        return "(no answer)"
    return answer if isinstance(answer, str) else json.dumps(answer, ensure_ascii=False)


class _Events:
    """Node-by-node progress and streamed tokens on stderr."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.streaming = False
        self.streamed: set[str] = set()  # each node's streamed text, once it ended
        self._text: list[str] = []

    def __call__(self, event: dict[str, Any]) -> None:
        if not self.enabled:
            return
        kind = event["event"]
        if kind == "run_start":
            what = f"resuming {event['thread_id']}" if event["resumed"] else f"run {event['thread_id']}"
            if event["skipped"]:
                what += f" (done before: {', '.join(event['skipped'])})"
            self._line(f"[{what}]")
        elif kind == "node_start":
            self._line(f"> {event['node']} ({event['type']})")
        elif kind == "tool":
            output = " ".join(event["output"].split())
            self._line(f"  tool {event['tool']}({event['arguments']}) -> {output[:120]}")
        elif kind == "token":
            self.streaming = True
            self._text.append(event["text"])
            sys.stderr.write(event["text"])
            sys.stderr.flush()
        elif kind == "node_end":
            if self._text:
                self.streamed.add("".join(self._text))
                self._text = []
            from workbench.services.workflows import describe_update

            summary = describe_update(event["update"])
            self._line(
                f"  {event['node']} done in {event['ms']:.0f} ms" + (f": {summary}" if summary else "")
            )

    def _line(self, text: str) -> None:
        if self.streaming:
            sys.stderr.write("\n")
            self.streaming = False
        click.echo(text, err=True)

    def close(self) -> None:
        if self.streaming:
            sys.stderr.write("\n")


@click.command()
@click.argument("name")
@click.option("--target", "-t", required=True, type=click.Choice(["langgraph", "litellm", "vllm", "otel"]))
@click.option(
    "--out",
    "-o",
    type=click.Path(file_okay=False),
    help="Folder to write into (default: <workspace>/exports/NAME/TARGET).",
)
@click.pass_obj
def export(obj: Context, name: str, target: str, out: str | None) -> None:
    """Export workflow NAME to a production config: langgraph, litellm, vllm or otel."""
    written = obj.service.workflows.export(name, target, out)
    folder = written[0].parent if written else out
    click.echo(f"wrote {len(written)} files for {target} into {_common(written) or folder}")
    for path in written:
        click.echo(f"  {path}")


def _common(paths) -> str:
    import os

    return os.path.commonpath([str(p) for p in paths]) if paths else ""


@click.group()
def tools() -> None:
    """The tools workflows may call: built-ins and <workspace>/tools/*.py."""


@tools.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def tools_list(obj: Context, as_json: bool) -> None:
    """Every tool, where it comes from and what it takes; problems of the tool files after."""
    known, problems = obj.service.workflows.tools()
    rows = [
        {
            "name": tool.name,
            "source": tool.source,
            "parameters": ", ".join(
                f"{name}{'' if name in tool.parameters.get('required', []) else '?'}"
                for name in tool.parameters.get("properties", {})
            ),
            "description": tool.description.splitlines()[0][:70] if tool.description else "",
        }
        for tool in known.values()
    ]
    if as_json:
        click.echo(json.dumps({"tools": rows, "problems": problems}, indent=2))
        return
    click.echo(render_table(rows, ["name", "source", "parameters", "description"]))
    for problem in problems:
        where = "" if problem.startswith(("[mcp.", "mcp:")) else "tools/"
        click.echo(f"problem: {where}{problem}", err=True)
    if not any(row["source"] != "built-in" for row in rows):
        click.echo(
            "add your own: a function with a docstring and annotated parameters in <workspace>/tools/NAME.py, "
            "or an MCP server's under [mcp.NAME] in workbench.toml",
            err=True,
        )
