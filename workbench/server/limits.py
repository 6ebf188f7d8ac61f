"""API keys, their request rate and their daily cloud budgets."""

from __future__ import annotations

import secrets
import threading
import time
from collections import deque

from workbench.server.errors import ApiError

__all__ = ["Keys", "Budgets"]


class Keys:
    """Bearer tokens by key name, and a requests-per-minute limit per key."""

    def __init__(self, tokens: dict[str, str], per_minute: int | None) -> None:
        self.tokens, self.per_minute = tokens, per_minute
        self.seen: dict[str, deque[float]] = {}
        self.lock = threading.Lock()

    def key_name(self, authorization: str) -> str:
        """The key an Authorization header names ("local" when the gateway takes no keys)."""
        if not self.tokens:
            return "local"
        raw = authorization.removeprefix("Bearer ").strip() if authorization.startswith("Bearer ") else ""
        token = raw.encode("utf-8", "replace")  # bytes: a non-ASCII token compares, never raises
        name = next(
            (n for t, n in self.tokens.items() if token and secrets.compare_digest(t.encode(), token)), None
        )
        if name is None:
            raise ApiError(
                401,
                "a valid API key is required (Authorization: Bearer ...)",
                "authentication_error",
                "invalid_api_key",
            )
        self._count(name)
        return name

    def _count(self, name: str) -> None:
        if self.per_minute is None:
            return
        now = time.monotonic()
        with self.lock:
            seen = self.seen.setdefault(name, deque())
            while seen and now - seen[0] >= 60:
                seen.popleft()
            if len(seen) >= self.per_minute:
                wait = max(1, int(60 - (now - seen[0])) + 1)
                raise ApiError(
                    429,
                    f"key {name} is over its {self.per_minute} requests a minute",
                    "rate_limit_error",
                    "rate_limit_exceeded",
                    headers={"retry-after": str(wait)},
                )
            seen.append(now)


class Budgets:
    """Each key's cloud spend today against its daily budget ([server] daily_budget_usd). The
    first request of a day reads the key's spend from the store; after that this process adds
    what each answer cost."""

    def __init__(self, service, budgets: dict[str, float]) -> None:
        self.service, self.budgets = service, budgets
        self.spent: dict[str, tuple[int, float]] = {}  # key -> (day's midnight, USD)
        self.lock = threading.Lock()

    def _today(self, key: str) -> float:
        from workbench.core.clock import local_midnight_ns

        midnight = local_midnight_ns()
        with self.lock:
            day, spent = self.spent.get(key, (None, 0.0))
        if day != midnight:
            spent = self.service.key_spend(key, midnight)
            with self.lock:
                self.spent[key] = (midnight, spent)
        return spent

    def check(self, key: str) -> None:
        budget = self.budgets.get(key)
        if budget is None:
            return
        spent = self._today(key)
        if spent >= budget:
            from workbench.core.clock import local_midnight_ns

            wait = max(1, int((local_midnight_ns() + 86_400 * 10**9 - time.time_ns()) / 1e9))
            raise ApiError(
                429,
                f"key {key} spent ${spent:.4f} of its ${budget:.4f} daily budget; it resets at midnight",
                "insufficient_quota",
                "daily_budget_exceeded",
                headers={"retry-after": str(wait)},
            )

    def add(self, key: str, cost: float) -> None:
        if key in self.budgets and cost:
            with self.lock:
                day, spent = self.spent.get(key, (None, 0.0))
                if day is not None:
                    self.spent[key] = (day, spent + cost)
