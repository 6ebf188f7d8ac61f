"""`workbench traces` and `sql`: read, show and export what every run recorded."""

from __future__ import annotations

import json

import click

from workbench.cli._context import Context
from workbench.cli._output import format_when, render_table


@click.group()
def traces() -> None:
    """List, show and export traces."""


@traces.command("list")
@click.option("--limit", "-n", default=20, show_default=True)
@click.option("--offset", default=0)
@click.option("--name", help="Filter: root span name contains.")
@click.option("--model", help="Filter: a model used contains.")
@click.option("--status", type=click.Choice(["ok", "error", "cancelled"]))
@click.option("--text", help="Filter: a prompt, answer or other payload contains.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def traces_list(
    obj: Context,
    limit: int,
    offset: int,
    name: str | None,
    model: str | None,
    status: str | None,
    text: str | None,
    as_json: bool,
) -> None:
    """Recent traces, newest first."""
    filters = {"name": name, "model": model, "status": status, "text": text}
    rows, total = obj.service.list_traces(limit, offset, {k: v for k, v in filters.items() if v})
    if as_json:
        click.echo(json.dumps({"total": total, "traces": rows}, default=str, indent=2))
        return
    for row in rows:
        row["start"] = format_when(row["start_ns"])
        row["trace_id"] = row["trace_id"][:16]
        up, down = row.get("feedback_up") or 0, row.get("feedback_down") or 0
        row["feedback"] = f"+{up}/-{down}" if up or down else ""
    columns = [
        "trace_id",
        "start",
        "name",
        "status",
        "spans",
        "duration_ms",
        "models",
        "input_tokens",
        "output_tokens",
        "cost_usd",
        "feedback",
    ]
    click.echo(render_table(rows, columns) if rows else "no traces yet")
    click.echo(f"{len(rows)} of {total} traces")


@traces.command("show")
@click.argument("trace_id")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def traces_show(obj: Context, trace_id: str, as_json: bool) -> None:
    """Every span of a trace (an id prefix is enough)."""
    spans = obj.service.get_trace(trace_id)
    if as_json:
        click.echo(json.dumps(spans, default=str, indent=2))
        return
    children: dict[str | None, list] = {}
    ids = {s["span_id"] for s in spans}
    for span in spans:
        parent = span["parent_id"] if span["parent_id"] in ids else None
        children.setdefault(parent, []).append(span)
    click.echo(f"trace {spans[0]['trace_id']}")

    def show(span: dict, depth: int) -> None:
        ms = (span["end_ns"] - span["start_ns"]) / 1e6
        status = {"ok": "", "cancelled": "  CANCELLED"}.get(span["status"], f"  ERROR {span['error']}")
        click.echo(f"{'  ' * depth}- {span['name']} [{span['kind']}] {ms:.2f} ms{status}")
        for key, value in json.loads(span["attributes"] or "{}").items():
            click.echo(f"{'  ' * depth}    {key} = {value}")
        if span["payload"]:
            click.echo(f"{'  ' * depth}    payload = {span['payload'][:500]}")
        for child in children.get(span["span_id"], []):
            show(child, depth + 1)

    for root in children.get(None, []):
        show(root, 0)
    for rating in obj.service.trace_feedback(spans[0]["trace_id"])["ratings"]:
        verdict = "up" if rating["value"] > 0 else "down"
        note = f": {rating['note']}" if rating["note"] else ""
        where = ", ".join(
            part
            for part in (rating["source"], rating.get("subject"), format_when(rating["created_ns"]))
            if part
        )
        click.echo(f"rated {verdict} by {rating['author']} ({where}){note}")


@traces.command("rate")
@click.argument("trace_id")
@click.argument("verdict", type=click.Choice(["up", "down"]))
@click.option("--note", help="Why: kept with the rating (and with an eval case made from it).")
@click.pass_obj
def traces_rate(obj: Context, trace_id: str, verdict: str, note: str | None) -> None:
    """Rate the answer of a trace up or down (an id prefix is enough); a trace keeps every rating."""
    feedback = obj.service.rate_trace(trace_id, verdict, note, source="cli")
    click.echo(f"rated {feedback['trace_id'][:16]} {verdict}: {feedback['up']} up, {feedback['down']} down")


@traces.command("export")
@click.argument("trace_ids", nargs=-1)
@click.option("--format", "fmt", type=click.Choice(["otlp-json"]), default="otlp-json", show_default=True)
@click.option(
    "--limit", "-n", default=100, show_default=True, help="Without TRACE_IDS, export this many recent traces."
)
@click.option("--out", "-o", type=click.Path(dir_okay=False), help="Write to a file, not stdout.")
@click.pass_obj
def traces_export(obj: Context, trace_ids: tuple[str, ...], fmt: str, limit: int, out: str | None) -> None:
    """Export traces as OTLP JSON (for an OpenTelemetry collector, Langfuse or Phoenix)."""
    document = json.dumps(obj.service.export_otlp(list(trace_ids), limit))
    if out:
        with open(out, "w", encoding="utf-8") as handle:
            handle.write(document)
        click.echo(f"wrote {out}", err=True)
    else:
        click.echo(document)


@traces.command("push")
@click.option(
    "--endpoint", required=True, help="The backend: http://127.0.0.1:6006 (Phoenix), a collector's :4318, ..."
)
@click.option(
    "--protocol",
    type=click.Choice(["http/protobuf", "http/json"]),
    default="http/protobuf",
    show_default=True,
    help="OTLP/HTTP encoding; protobuf is what every backend takes.",
)
@click.option("--trace", "trace_ids", multiple=True, help="A trace id (or prefix); repeat for more.")
@click.option("--since", help="Traces that started in this window: 1h, 7d, 30m or a date (YYYY-MM-DD).")
@click.option("--workflow", help="Only runs of this workflow.")
@click.option("--header", "headers", multiple=True, help="NAME=VALUE sent with the request (authorization).")
@click.option(
    "--limit", "-n", default=1000, show_default=True, help="At most this many traces, newest first."
)
@click.pass_obj
def traces_push(
    obj: Context,
    endpoint: str,
    protocol: str,
    trace_ids: tuple[str, ...],
    since: str | None,
    workflow: str | None,
    headers: tuple[str, ...],
    limit: int,
) -> None:
    """Send traces to an OTLP backend (Phoenix, Langfuse, an OpenTelemetry collector)."""
    from workbench.services.usage import parse_since

    result = obj.service.push_traces(
        endpoint,
        protocol,
        list(trace_ids),
        parse_since(since) if since else None,
        workflow,
        list(headers),
        limit,
    )
    click.echo(f"sent {result.spans} spans of {result.traces} traces to {result.url} ({result.status})")


@click.command()
@click.argument("query")
@click.option("--json", "as_json", is_flag=True)
@click.option("--limit", "-n", default=1000, show_default=True)
@click.pass_obj
def sql(obj: Context, query: str, as_json: bool, limit: int) -> None:
    """Run a read-only SQL query over the traces (tables: spans, traces)."""
    columns, rows = obj.service.sql(query, limit)
    if as_json:
        click.echo(json.dumps([dict(zip(columns, r)) for r in rows], default=str, indent=2))
    elif columns:
        click.echo(render_table([dict(zip(columns, r)) for r in rows], columns))
