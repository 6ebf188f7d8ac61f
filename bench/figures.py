"""How every bench script reports a figure: one JSON line on stdout, which bench/run.py collects."""

from __future__ import annotations

import json

__all__ = ["emit"]


def emit(figure: str, value: float, unit: str, goal: str, met, ratio=None, note=None):
    print(
        json.dumps(
            {
                "figure": figure,
                "value": value,
                "unit": unit,
                "goal": goal,
                "met": met,
                "ratio": ratio,
                "note": note,
            }
        )
    )
