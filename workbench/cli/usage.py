"""`workbench usage`: what the stack cost and how it behaved over a window, from the spans."""

from __future__ import annotations

import json

import click

from workbench.cli._context import Context
from workbench.cli._output import format_when, render_table

# The tables printed under the headline, in order; each is one figure's rows.
TABLES = ("by", "cost_per_day", "latency", "escalation_reasons", "refusals", "errors", "workflows", "compute")


@click.command()
@click.option("--since", default="7d", show_default=True, help="7d, 24h, 30m or a date (YYYY-MM-DD).")
@click.option(
    "--by",
    type=click.Choice(["day", "model", "endpoint", "workflow", "key"]),
    default="day",
    show_default=True,
    help="How to split requests, tokens and cost.",
)
@click.option("--json", "as_json", is_flag=True, help="Every figure's rows (and its SQL) as JSON.")
@click.option(
    "--sql", "show_sql", is_flag=True, help="Print the SQL of every figure (run it with `workbench sql`)."
)
@click.pass_obj
def usage(obj: Context, since: str, by: str, as_json: bool, show_sql: bool) -> None:
    """Requests, tokens, cost, latency, escalation, errors and feedback over a window."""
    from workbench.services.usage import headline

    report = obj.service.usage.report(since, by)
    if as_json:
        click.echo(json.dumps(report.to_json(), default=str, indent=2))
        return
    if show_sql:
        for figure in report.figures.values():
            click.echo(f"-- {figure.title}\n{figure.sql};\n")
        return
    click.echo(f"Usage from {format_when(report.since_ns)} to {format_when(report.until_ns)}\n")
    width = max(len(label) for label, _ in headline(report))
    for label, text in headline(report):
        click.echo(f"{label.ljust(width)}  {text}")
    for warning in report.warnings:
        click.echo(f"warning: {warning}", err=True)
    for name in TABLES:
        figure = report.figures[name]
        rows = [
            {k: v for k, v in row.items() if k not in ("failed_traces", "all_traces")} for row in figure.rows
        ]
        columns = [c for c in figure.columns if c not in ("failed_traces", "all_traces")]
        click.echo(f"\n{figure.title}")
        click.echo(render_table(rows, columns) if rows else "(none in this window)")
        if name == "cost_per_day" and rows:
            click.echo(_bars(rows))


def _bars(rows: list[dict]) -> str:
    """Cloud cost per day as a bar chart of text, for a terminal without the app."""
    peak = max(float(r["cloud_cost_usd"] or 0) for r in rows) or 1.0
    return "\n".join(
        f"{r['day']}  {'#' * round(40 * float(r['cloud_cost_usd'] or 0) / peak):<40}  ${float(r['cloud_cost_usd'] or 0):.4f}"
        for r in rows
    )
