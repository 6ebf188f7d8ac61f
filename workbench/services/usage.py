"""What the stack costs and how it behaves over a window of time: every figure is one SQL over
the spans (and the feedback scores) that anyone can read with `workbench usage --sql` and run
again with `workbench sql`.

Definitions the figures share:
- a model call is an `llm.chat` span; it is local when its provider is llama.cpp, else cloud;
- a request is a trace with at least one model call; it stayed local when none of its calls
  went to the cloud;
- an escalation decision is a `router.ask` span (model `auto`) or a workflow's escalate node;
- latency percentiles are over the calls that ended without an error.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from workbench.core.clock import local_midnight_ns
from workbench.core.errors import UsageError

__all__ = ["Usage", "UsageReport", "Figure", "parse_since", "GROUPINGS"]

GROUPINGS = ("day", "model", "endpoint", "workflow", "key")
BUDGET_WARNING_SHARE = 0.8

_LOCAL = "provider = 'llama.cpp'"
_CLOUD = "provider IS DISTINCT FROM 'llama.cpp'"


@dataclass
class Figure:
    name: str
    title: str
    sql: str
    columns: list[str] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class UsageReport:
    since_ns: int
    until_ns: int
    by: str
    figures: dict[str, Figure]
    budget_usd: float | None
    warnings: list[str]
    elapsed_ms: float = 0.0

    def one(self, name: str) -> dict[str, Any]:
        """The single row of a figure that has one (totals, escalation, feedback, budget...)."""
        rows = self.figures[name].rows
        return rows[0] if rows else {}

    def to_json(self) -> dict[str, Any]:
        return {
            "since_ns": self.since_ns,
            "until_ns": self.until_ns,
            "by": self.by,
            "daily_budget_usd": self.budget_usd,
            "warnings": self.warnings,
            "figures": {
                name: {"title": f.title, "rows": f.rows, "sql": f.sql} for name, f in self.figures.items()
            },
        }


def parse_since(text: str, now: float | None = None) -> int:
    """`7d`, `24h`, `30m` back from now, or a date (YYYY-MM-DD, local midnight), as ns."""
    now = time.time() if now is None else now
    match = re.fullmatch(r"\s*(\d+)\s*([dhm])\s*", text)
    if match:
        seconds = int(match[1]) * {"d": 86400, "h": 3600, "m": 60}[match[2]]
        return int((now - seconds) * 1e9)
    try:
        return int(datetime.strptime(text.strip(), "%Y-%m-%d").timestamp() * 1e9)
    except ValueError:
        raise UsageError(
            f"'{text}' is not a window", "give --since as 7d, 24h, 30m or a date like 2026-12-01"
        ) from None


def _utc_offset_ns(now: float) -> int:
    offset = datetime.fromtimestamp(now).astimezone().utcoffset()
    return int(offset.total_seconds() * 1e9) if offset else 0


def _group_key(by: str, day: str) -> str:
    return {
        "day": day.replace("start_ns", "c.start_ns"),
        "model": "coalesce(c.model, '(unknown)')",
        "endpoint": f"CASE WHEN c.{_LOCAL} THEN 'local' ELSE split_part(c.model, '/', 1) END",
        "workflow": "coalesce(w.workflow, '(no workflow)')",
        "key": "coalesce(w.key_name, '(in process)')",
    }[by]


def figure_sql(
    since_ns: int, until_ns: int, by: str, midnight_ns: int, utc_offset_ns: int = 0
) -> dict[str, tuple[str, str]]:
    """name -> (title, SQL) of every figure, with the window written into the SQL as numbers so
    that each one runs as it is in `workbench sql`. The attributes they read (hardware,
    key_name, route, escalation_reason...) are columns of spans since migration 5."""
    since_ns, until_ns, midnight_ns, utc_offset_ns = (
        int(since_ns),
        int(until_ns),
        int(midnight_ns),
        int(utc_offset_ns),
    )
    window = f"start_ns >= {since_ns} AND start_ns < {until_ns}"
    columns = (
        "trace_id, start_ns, end_ns, status, provider, model, input_tokens, output_tokens, ttft_s, cost_usd"
    )
    calls = f"SELECT {columns} FROM spans WHERE name = 'llm.chat' AND {window}"
    decisions = f"""SELECT escalation_reason AS reason, route = 'cloud' AS escalated, escalation_refused AS refused
    FROM spans WHERE name = 'router.ask' AND {window}
    UNION ALL
    SELECT split_part(escalation_reason, '; escalation refused: ', 1), escalated_to IS NOT NULL,
           nullif(split_part(escalation_reason, '; escalation refused: ', 2), '')
    FROM spans WHERE node_type = 'escalate' AND kind = 'workflow' AND {window}"""
    # Grouping by workflow or by key reads the trace's root: its workflow run, or the gateway
    # request with the name of the client's key (`workbench serve`).
    workflows = {
        "workflow": ",\nw AS (SELECT trace_id, min(workflow) AS workflow FROM spans "
        f"WHERE name = 'workflow.run' AND {window} GROUP BY trace_id)",
        "key": ",\nw AS (SELECT trace_id, min(key_name) AS key_name FROM spans "
        f"WHERE name = 'gateway.chat' AND {window} GROUP BY trace_id)",
    }.get(by, "")
    # Days in the local time zone (its offset now): make_timestamp on integers ran 6 ms at a
    # million spans where strftime(to_timestamp(...)) took 37.
    day = f"CAST(make_timestamp((start_ns + {utc_offset_ns}) // 1000) AS DATE)"
    refusal_kind = (
        "CASE WHEN refused ILIKE '%offline%' THEN 'offline' WHEN refused ILIKE '%budget%' THEN 'budget' "
        "WHEN refused ILIKE '%escalate_to%' OR refused ILIKE '%no cloud model%' THEN 'no cloud model' "
        "ELSE 'cloud error' END"
    )
    return {
        "totals": (
            "Requests, tokens and cost",
            # Requests from a grouping of trace ids alone, the sums apart: one GROUP BY trace_id
            # carrying every sum ran 111 ms at a million spans.
            f"""WITH c AS NOT MATERIALIZED ({calls})
SELECT r.*, t.*
FROM (SELECT count(*) AS requests, count(*) FILTER (WHERE NOT cloud) AS stayed_local
      FROM (SELECT trace_id, bool_or({_CLOUD}) AS cloud FROM c GROUP BY trace_id)) AS r,
     (SELECT count(*) AS model_calls,
             count(*) FILTER (WHERE {_LOCAL}) AS local_calls,
             count(*) FILTER (WHERE {_CLOUD}) AS cloud_calls,
             coalesce(sum(input_tokens), 0) AS input_tokens,
             coalesce(sum(output_tokens), 0) AS output_tokens,
             coalesce(sum(cost_usd) FILTER (WHERE {_LOCAL}), 0) AS local_cost_usd,
             coalesce(sum(cost_usd) FILTER (WHERE {_CLOUD}), 0) AS cloud_cost_usd,
             count(*) FILTER (WHERE status = 'error') AS failed_calls
      FROM c) AS t""",
        ),
        "by": (
            f"By {by}",
            f"""WITH c AS ({calls}){workflows}
SELECT {_group_key(by, day)} AS "{by}",
       count(DISTINCT c.trace_id) AS requests,
       count(*) AS calls,
       coalesce(sum(c.input_tokens), 0) AS input_tokens,
       coalesce(sum(c.output_tokens), 0) AS output_tokens,
       coalesce(sum(c.cost_usd), 0) AS cost_usd,
       count(*) FILTER (WHERE c.status = 'error') AS errors,
       quantile_cont((c.end_ns - c.start_ns) / 1e6, 0.5) FILTER (WHERE c.status = 'ok') AS p50_ms
FROM c{" LEFT JOIN w USING (trace_id)" if workflows else ""}
GROUP BY 1 ORDER BY {"1" if by == "day" else "cost_usd DESC, calls DESC, 1"}""",
        ),
        "cost_per_day": (
            "Cost per day (USD)",
            f"""WITH c AS ({calls})
SELECT {day} AS day,
       coalesce(sum(cost_usd) FILTER (WHERE {_LOCAL}), 0) AS local_cost_usd,
       coalesce(sum(cost_usd) FILTER (WHERE {_CLOUD}), 0) AS cloud_cost_usd,
       count(*) AS calls
FROM c GROUP BY 1 ORDER BY 1""",
        ),
        "latency": (
            "Latency per model",
            # One quantile_cont with a list sorts once per model: 17 ms at a million spans, 28
            # for three separate ones.
            f"""WITH c AS ({calls}),
m AS (SELECT model, CASE WHEN {_LOCAL} THEN 'local' ELSE 'cloud' END AS place, count(*) AS calls,
             quantile_cont((end_ns - start_ns) / 1e6, [0.5, 0.95, 0.99]) FILTER (WHERE status = 'ok') AS ms,
             quantile_cont(ttft_s * 1e3, [0.5, 0.95]) FILTER (WHERE status = 'ok') AS ttft,
             sum(output_tokens) FILTER (WHERE status = 'ok')
               / nullif(sum(end_ns - start_ns) FILTER (WHERE status = 'ok') / 1e9, 0) AS tokens_per_s,
             count(*) FILTER (WHERE status = 'error') AS errors
      FROM c GROUP BY ALL)
SELECT model, place, calls, ms[1] AS p50_ms, ms[2] AS p95_ms, ms[3] AS p99_ms, ttft[1] AS ttft_p50_ms,
       ttft[2] AS ttft_p95_ms, tokens_per_s, errors
FROM m ORDER BY calls DESC, model""",
        ),
        "errors": (
            "Errors by kind",
            f"""WITH e AS (SELECT name, coalesce(nullif(regexp_extract(error, '^([A-Za-z_][A-Za-z0-9_.]*): ', 1), ''), 'other') AS kind,
             error, start_ns, trace_id
      FROM spans WHERE status = 'error' AND {window})
SELECT kind, name AS span, count(*) AS spans, count(DISTINCT trace_id) AS traces,
       arg_max(error, start_ns) AS last_error
FROM e GROUP BY kind, name ORDER BY spans DESC, kind, span""",
        ),
        "failures": (
            "Traces with an error",
            f"""SELECT (SELECT count(*) FROM spans WHERE parent_id IS NULL AND {window}) AS traces,
       (SELECT count(DISTINCT trace_id) FROM spans WHERE status = 'error' AND {window}) AS failed_traces""",
        ),
        "escalation": (
            "Escalation",
            f"""WITH d AS ({decisions})
SELECT count(*) AS decisions,
       count(reason) AS wanted,
       count(*) FILTER (WHERE escalated) AS escalated,
       count(refused) AS refused,
       count(*) FILTER (WHERE escalated) / nullif(count(*), 0) AS escalation_rate
FROM d""",
        ),
        "escalation_reasons": (
            "Top escalation reasons",
            f"""WITH d AS ({decisions})
SELECT regexp_replace(reason, '[0-9]+([.][0-9]+)?', 'N', 'g') AS reason, sum(times) AS times,
       sum(escalated) AS escalated
FROM (SELECT reason, count(*) AS times, count(*) FILTER (WHERE escalated) AS escalated
      FROM d WHERE reason IS NOT NULL GROUP BY reason)
GROUP BY 1 ORDER BY times DESC, reason LIMIT 5""",
        ),
        "refusals": (
            "Refusals",
            f"""WITH d AS ({decisions}),
r AS (SELECT refused FROM d WHERE refused IS NOT NULL
      UNION ALL
      SELECT refused FROM spans WHERE name = 'llm.chat' AND refused IS NOT NULL AND {window})
SELECT {refusal_kind} AS kind, count(*) AS times FROM r GROUP BY 1 ORDER BY times DESC, kind""",
        ),
        "workflows": (
            "Workflow runs",
            f"""SELECT coalesce(nullif(workflow, ''), '(unnamed)') AS workflow,
       count(*) AS runs,
       count(*) FILTER (WHERE status = 'ok') AS finished,
       count(*) FILTER (WHERE status = 'error') AS failed,
       quantile_cont((end_ns - start_ns) / 1e6, 0.5) AS p50_ms
FROM spans WHERE name = 'workflow.run' AND {window}
GROUP BY 1 ORDER BY runs DESC, workflow""",
        ),
        "compute": (
            "Local compute (busy seconds per model)",
            f"""SELECT model, hardware, count(*) AS calls,
       round(sum((end_ns - start_ns) / 1e9 - coalesce(queue_wait_s, 0)), 3) AS busy_s
FROM spans WHERE name = 'llm.chat' AND {_LOCAL} AND {window}
GROUP BY ALL ORDER BY busy_s DESC, model""",
        ),
        "gpu": (
            "GPU busy vs idle",
            # Calls on the GPU overlap (batched or concurrent): busy time is the union of their
            # intervals, found as islands of overlapping spans, clipped to the window.
            f"""WITH g AS (SELECT start_ns AS s, least(end_ns, {until_ns}) AS e FROM spans
           WHERE name = 'llm.chat' AND {_LOCAL} AND hardware LIKE 'gpu%' AND {window}),
o AS (SELECT s, e, max(e) OVER (ORDER BY s, e ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS before FROM g),
i AS (SELECT s, e, sum(CASE WHEN before IS NULL OR s > before THEN 1 ELSE 0 END) OVER (ORDER BY s, e) AS island FROM o),
u AS (SELECT min(s) AS s, max(e) AS e FROM i GROUP BY island)
SELECT (SELECT count(*) FROM g) AS gpu_calls, coalesce(sum(e - s), 0) / 1e9 AS busy_s,
       ({until_ns} - {since_ns}) / 1e9 - coalesce(sum(e - s), 0) / 1e9 AS idle_s
FROM u""",
        ),
        "feedback": (
            "Feedback",
            f"""SELECT count(*) FILTER (WHERE value > 0) AS up, count(*) FILTER (WHERE value < 0) AS down,
       count(DISTINCT trace_id) AS rated_traces,
       count(*) FILTER (WHERE value > 0) / nullif(count(*) FILTER (WHERE value <> 0), 0) AS liked_share
FROM scores WHERE name = 'feedback' AND created_ns >= {since_ns} AND created_ns < {until_ns}""",
        ),
        "budget": (
            "Today's cloud spend",
            f"""SELECT coalesce(sum(cost_usd), 0) AS spent_today_usd FROM spans
WHERE name = 'llm.chat' AND {_CLOUD} AND start_ns >= {midnight_ns}""",
        ),
    }


class Usage:
    def __init__(self, service) -> None:
        self.service = service

    def report(self, since: str | int = "7d", by: str = "day", until_ns: int | None = None) -> UsageReport:
        if by not in GROUPINGS:
            raise UsageError(f"'{by}' is not a grouping", f"use --by with one of: {', '.join(GROUPINGS)}")
        now = time.time()
        since_ns = since if isinstance(since, int) else parse_since(since, now)
        until_ns = int(now * 1e9) + 1 if until_ns is None else until_ns
        if since_ns >= until_ns:
            raise UsageError("the window starts after it ends", "give --since a time in the past")
        self.service.flush_traces()
        started = time.perf_counter()
        figures = {}
        with self.service.store.reader() as con:
            sqls = figure_sql(since_ns, until_ns, by, local_midnight_ns(now), _utc_offset_ns(now))
            for name, (title, sql) in sqls.items():
                cursor = con.execute(sql)
                columns = [d[0] for d in cursor.description]
                rows = [dict(zip(columns, row)) for row in cursor.fetchall()]
                figures[name] = Figure(name, title, sql, columns, rows)
        budget = self.service.config.router.daily_budget_usd
        report = UsageReport(since_ns, until_ns, by, figures, budget, [])
        report.elapsed_ms = (time.perf_counter() - started) * 1000
        spent = float(report.one("budget").get("spent_today_usd") or 0.0)
        if budget is not None and spent >= BUDGET_WARNING_SHARE * budget:
            share = spent / budget if budget else 1.0
            report.warnings.append(
                f"today's cloud spend ${spent:.4f} is {share:.0%} of the daily budget ${budget:.2f}"
                + (": escalation is refused until tomorrow" if spent >= budget else "")
            )
        return report


def _share(part: float, whole: float) -> str:
    return f"{part / whole:.1%}" if whole else "-"


def headline(report: UsageReport) -> list[tuple[str, str]]:
    """The figures of the window as (label, text) lines: the same in the CLI and the app."""
    totals, escalation, feedback = report.one("totals"), report.one("escalation"), report.one("feedback")
    failures = report.one("failures")
    failed, all_traces = failures.get("failed_traces") or 0, failures.get("traces") or 0
    requests = totals.get("requests") or 0
    lines = [
        (
            "Requests",
            f"{requests:,} ({totals.get('stayed_local') or 0:,} stayed local: "
            f"{_share(totals.get('stayed_local') or 0, requests)}); model calls "
            f"{totals.get('model_calls') or 0:,} ({totals.get('local_calls') or 0:,} local, "
            f"{totals.get('cloud_calls') or 0:,} cloud, {totals.get('failed_calls') or 0:,} failed)",
        ),
        ("Tokens", f"{totals.get('input_tokens') or 0:,} in, {totals.get('output_tokens') or 0:,} out"),
        (
            "Cost",
            f"${totals.get('cloud_cost_usd') or 0:.4f} cloud, ${totals.get('local_cost_usd') or 0:.4f} local",
        ),
        (
            "Escalation",
            f"{_share(escalation.get('escalated') or 0, escalation.get('decisions') or 0)} of "
            f"{escalation.get('decisions') or 0:,} routing decisions escalated "
            f"({escalation.get('wanted') or 0:,} wanted to, {escalation.get('refused') or 0:,} refused)",
        ),
        (
            "Errors",
            f"{failed:,} of {all_traces:,} traces ended with an error ({_share(failed, all_traces)})",
        ),
        (
            "Feedback",
            f"{feedback.get('up') or 0:,} up, {feedback.get('down') or 0:,} down"
            + (f" ({feedback['liked_share']:.0%} liked)" if feedback.get("liked_share") is not None else "")
            + f" on {feedback.get('rated_traces') or 0:,} traces",
        ),
    ]
    spent = float(report.one("budget").get("spent_today_usd") or 0.0)
    if report.budget_usd is not None:
        lines.append(
            ("Budget", f"today ${spent:.4f} of ${report.budget_usd:.2f} ({_share(spent, report.budget_usd)})")
        )
    else:
        lines.append(("Budget", f"today ${spent:.4f} (no [router] daily_budget_usd set)"))
    gpu = report.one("gpu")
    if gpu.get("gpu_calls"):
        busy, idle = gpu["busy_s"], gpu["idle_s"]
        lines.append(("GPU", f"busy {busy:,.1f} s, idle {idle:,.1f} s ({_share(busy, busy + idle)} busy)"))
    else:
        lines.append(("GPU", "no model ran on a GPU in this window"))
    return lines
