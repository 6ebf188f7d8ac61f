"""Who pays for a cloud call, and the reservation that keeps concurrent calls inside a budget.

The gateway makes each request's work pay as its client key (`paying`); the cloud client, the one
place money is spent, reserves the call's worst-case price against that key's budget before it
calls (refused with `OverBudget` when the reservation does not fit) and settles the real price
after. A check before and a sum after let eight concurrent calls each pass the check and spend
eight times over; a reservation cannot.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

from workbench.core.errors import OverBudget

__all__ = ["Ledger", "Payer", "paying", "payer", "OverBudget"]


class Ledger(Protocol):
    def reserve(self, key: str, usd: float) -> float:
        """Hold ``usd`` of ``key``'s budget (raising OverBudget when it does not fit)."""

    def settle(self, key: str, reserved: float, usd: float) -> None:
        """Release a reservation and count what the call really cost."""


@dataclass(frozen=True)
class Payer:
    key: str
    ledger: Ledger

    def reserve(self, usd: float) -> float:
        return self.ledger.reserve(self.key, usd)

    def settle(self, reserved: float, usd: float) -> None:
        self.ledger.settle(self.key, reserved, usd)


_payer: contextvars.ContextVar[Payer | None] = contextvars.ContextVar("workbench_payer", default=None)


@contextmanager
def paying(key: str, ledger: Ledger) -> Iterator[Payer]:
    """Cloud calls made in this block (and the threads it starts with its context) are charged
    to ``key``."""
    payer = Payer(key, ledger)
    token = _payer.set(payer)
    try:
        yield payer
    finally:
        _payer.reset(token)


def payer() -> Payer | None:
    return _payer.get()
