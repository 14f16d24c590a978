"""Timing and figures: the clock, percentiles, tables, a steady pace."""

from __future__ import annotations

import math
import time
import uuid
from typing import Any, Callable

clock = time.perf_counter


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of ``values``; NaN when empty."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = max(0, min(len(s) - 1, math.ceil(p / 100 * len(s)) - 1))
    return s[k]


def summary_ms(seconds: list[float]) -> dict[str, Any]:
    ms = [v * 1000 for v in seconds]
    return {"n": len(ms), "p50_ms": pct(ms, 50), "p90_ms": pct(ms, 90), "p99_ms": pct(ms, 99),
            "max_ms": max(ms) if ms else float("nan"), "mean_ms": sum(ms) / len(ms) if ms else float("nan")}


def table(rows: list[list[Any]], header: list[str]) -> str:
    cells = [[str(h) for h in header]] + [[f"{c:.2f}" if isinstance(c, float) else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]

    def line(r: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))

    return "\n".join([line(cells[0]), line(["-" * w for w in widths])] + [line(r) for r in cells[1:]])


def pace(rate: float, count: int, action: Callable[[int], None]) -> float:
    """Call ``action(i)`` for i in range(count) at ``rate`` per second on a fixed schedule; return the duration."""
    start = clock()
    for i in range(count):
        delay = start + i / rate - clock()
        if delay > 0:
            time.sleep(delay)
        action(i)
    return clock() - start



def run_id() -> str:
    return uuid.uuid4().hex[:6]
