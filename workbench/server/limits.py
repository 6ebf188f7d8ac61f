"""API keys, their request rate and their daily cloud budgets."""

from __future__ import annotations

import secrets
import threading
import time
from collections import deque

from workbench.core.errors import OverBudget
from workbench.server.errors import ApiError

__all__ = ["Keys", "Budgets"]


class Keys:
    """Bearer tokens by key name, and a requests-per-minute limit per key."""

    # Wrong keys a client address may send a minute before it is made to wait: enough for a
    # typo or two, too few to guess a key.
    FAILURES_PER_MINUTE = 10

    def __init__(self, tokens: dict[str, str], per_minute: int | None) -> None:
        self.tokens, self.per_minute = tokens, per_minute
        self.seen: dict[str, deque[float]] = {}
        self.failed: dict[str, deque[float]] = {}  # client address -> times of wrong keys
        self.lock = threading.Lock()

    def key_name(self, authorization: str, client: str = "") -> str:
        """The key an Authorization header names ("local" when the gateway takes no keys).
        ``client``: the caller's address, whose wrong keys are counted and throttled."""
        if not self.tokens:
            return "local"
        self._throttle(client)
        raw = authorization.removeprefix("Bearer ").strip() if authorization.startswith("Bearer ") else ""
        token = raw.encode("utf-8", "replace")  # bytes: a non-ASCII token compares, never raises
        name = next(
            (n for t, n in self.tokens.items() if token and secrets.compare_digest(t.encode(), token)), None
        )
        if name is None:
            if raw:  # a key that was sent and is wrong: a guess (no key at all guesses nothing)
                with self.lock:
                    self.failed.setdefault(client, deque()).append(time.monotonic())
            raise ApiError(
                401,
                "a valid API key is required (Authorization: Bearer ...)",
                "authentication_error",
                "invalid_api_key",
            )
        self._count(name)
        return name

    def _throttle(self, client: str) -> None:
        now = time.monotonic()
        with self.lock:
            failed = self.failed.get(client)
            wait = _minute_window(failed, now, self.FAILURES_PER_MINUTE) if failed is not None else None
            if failed is not None and not failed:
                del self.failed[client]
            elif wait is not None:
                raise ApiError(
                    429,
                    f"{len(failed)} wrong API keys from this address in the last minute; wait {wait} s",
                    "rate_limit_error",
                    "too_many_failed_keys",
                    headers={"retry-after": str(wait)},
                )

    def _count(self, name: str) -> None:
        if self.per_minute is None:
            return
        now = time.monotonic()
        with self.lock:
            seen = self.seen.setdefault(name, deque())
            wait = _minute_window(seen, now, self.per_minute)
            if wait is not None:
                raise ApiError(
                    429,
                    f"key {name} is over its {self.per_minute} requests a minute",
                    "rate_limit_error",
                    "rate_limit_exceeded",
                    headers={"retry-after": str(wait)},
                )
            seen.append(now)


def _minute_window(times: deque[float], now: float, limit: int) -> int | None:
    """Drop the times of ``times`` older than a minute; the seconds to wait when ``limit`` of
    them remain, else None."""
    while times and now - times[0] >= 60:
        times.popleft()
    if len(times) >= limit:
        return max(1, int(60 - (now - times[0])) + 1)
    return None


class Budgets:
    """Each key's cloud spend today against its daily budget ([server] daily_budget_usd), as a
    ledger: the first request of a day reads the key's spend from the store; after that each
    cloud call reserves its worst-case price before it is made (`reserve`) and settles its real
    price after (`settle`), so concurrent calls cannot together pass the budget."""

    def __init__(self, service, budgets: dict[str, float]) -> None:
        self.service, self.budgets = service, budgets
        self.spent: dict[str, tuple[int, float]] = {}  # key -> (day's midnight, USD spent)
        self.reserved: dict[str, float] = {}  # key -> USD held by calls under way
        self.lock = threading.Lock()

    def _today(self, key: str) -> float:
        """What ``key`` spent today (the store's sum the first time a day, then this ledger's)."""
        from workbench.core.clock import local_midnight_ns

        midnight = local_midnight_ns()
        with self.lock:
            day, spent = self.spent.get(key, (None, 0.0))
        if day != midnight:
            spent = self.service.key_spend(key, midnight)
            with self.lock:
                if self.spent.get(key, (None, 0.0))[0] != midnight:
                    self.spent[key] = (midnight, spent)
        return spent

    def check(self, key: str) -> None:
        """Refuse a request of a key whose budget is spent (or fully held by calls under way)."""
        self.reserve(key, 0.0)

    def reserve(self, key: str, usd: float) -> float:
        budget = self.budgets.get(key)
        if budget is None:
            return 0.0
        self._today(key)
        with self.lock:
            spent = self.spent[key][1]
            held = self.reserved.get(key, 0.0)
            if spent + held + usd > budget or spent >= budget:
                raise self._over(key, budget, spent, held, usd)
            self.reserved[key] = held + usd
        return usd

    def settle(self, key: str, reserved: float, usd: float) -> None:
        if key not in self.budgets:
            return
        with self.lock:
            self.reserved[key] = max(0.0, self.reserved.get(key, 0.0) - reserved)
            day, spent = self.spent.get(key, (None, 0.0))
            if day is not None:
                self.spent[key] = (day, spent + (usd or 0.0))

    @staticmethod
    def _over(key: str, budget: float, spent: float, held: float, usd: float) -> OverBudget:
        from workbench.core.clock import local_midnight_ns

        wait = max(1, int((local_midnight_ns() + 86_400 * 10**9 - time.time_ns()) / 1e9))
        if spent >= budget or not usd:
            message = f"key {key} spent ${spent:.4f} of its ${budget:.4f} daily budget; it resets at midnight"
            hint = "wait until midnight, or raise [server] daily_budget_usd for this key"
        else:
            message = (
                f"key {key}: this call could cost up to ${usd:.4f} (its prompt and max_tokens at the "
                f"model's price); with ${spent:.4f} spent and ${held:.4f} held by calls under way "
                f"that would pass the ${budget:.4f} daily budget"
            )
            hint = "ask for fewer max_tokens, wait for the calls under way, or raise the budget"
        return OverBudget(message, hint, retry_after=wait)
