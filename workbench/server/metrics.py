"""The gateway's Prometheus metrics, and the label helpers they need."""

from __future__ import annotations

import re

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["Metrics", "reason_kind"]


class Metrics:
    """The gateway's Prometheus metrics, in a registry of its own (one per app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "workbench_requests", "Chat requests", ["model", "status"], registry=self.registry
        )
        self.tokens = Counter("workbench_tokens", "Tokens", ["model", "direction"], registry=self.registry)
        self.cost = Counter(
            "workbench_cost_usd", "Cost of the answers (USD)", ["model"], registry=self.registry
        )
        self.latency = Histogram(
            "workbench_request_duration_seconds",
            "Chat request duration",
            ["model"],
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=self.registry,
        )
        self.escalations = Counter(
            "workbench_escalations", "Requests the router escalated", ["reason"], registry=self.registry
        )
        self.errors = Counter(
            "workbench_errors", "Failed requests by error type", ["type"], registry=self.registry
        )
        self.commands = Counter(
            "workbench_commands",
            "Workbench commands run for the CLI (run, compare, eval)",
            ["command", "status"],
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "workbench_requests_in_flight", "Requests being answered", registry=self.registry
        )


def reason_kind(reason: str | None) -> str:
    """Escalation reasons carry numbers (token counts, scores): the label keeps their kind."""
    return re.sub(r"-?[0-9]+([.][0-9]+)?", "N", reason or "unknown")[:120]
