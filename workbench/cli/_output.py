"""What the commands share to print: tables, times, streamed text and an answer's figures."""

from __future__ import annotations

import sys
import time
from typing import Any

import click

__all__ = ["render_table", "format_when", "write", "report"]


def render_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in cells]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def format_when(ns: int | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ns / 1e9)) if ns else "-"


def write(piece: str) -> None:
    sys.stdout.write(piece)
    sys.stdout.flush()


def report(result, trace: str) -> None:
    """The figures of one answer, and its route when the router chose, on stderr. ``trace``:
    the trace's line (Context.trace_note: its id once stored)."""
    cached = f" ({result.cached_tokens} cached)" if getattr(result, "cached_tokens", 0) else ""
    click.echo(
        f"[{result.model} {result.hardware}: {result.input_tokens} in{cached}, {result.output_tokens} out, "
        f"ttft {(result.ttft_s or 0) * 1000:.0f} ms, {result.tokens_per_s:.1f} tok/s, "
        f"${result.cost_usd:.5f}, {result.finish_reason}, {trace}]",
        err=True,
    )
    route = result.extra.get("route")
    if route:
        why = result.extra.get("escalation_reason")
        refused = result.extra.get("escalation_refused")
        line = f"[route: {route}" + (f"; escalated because {why}" if route == "cloud" else "")
        if refused:
            line += f"; wanted to escalate because {why}, but {refused}"
        click.echo(line + "]", err=True)
