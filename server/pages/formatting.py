"""How the pages show things: times, durations, SLA deadlines, a device's readings, audit details."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from dashdesk import wire

from server.models import OPEN_STATUSES


BATTERY_LOW_PCT = 20


RSSI_WEAK_DBM = -75


CPU_HOT_C = 80


def duration(seconds: float) -> str:
    s = int(abs(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def local_time(value: datetime | None) -> str:
    """RFC 3339, for machines: ``<time datetime="...">``."""
    return wire.format_time(value) if value else ""


def readable_time(value: datetime | str | None) -> str:
    """A time as people read it, in UTC to the second: ``2026-11-23 21:44:04 UTC``; "" for none.

    Every page's Jinja filter ``when`` (the desk, the admin pages, the phone enrolments). Also takes
    an RFC 3339 string, as the API's dictionaries hold times; one it cannot read is shown as it is.
    """
    if not value:
        return ""
    if isinstance(value, str):
        try:
            value = wire.parse_time(value)
        except ValueError:
            return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    t = value.astimezone(timezone.utc)
    return f"{t.year:04d}-" + t.strftime("%m-%d %H:%M:%S UTC")


@dataclass
class Sla:
    label: str  # "respond" or "resolve"
    text: str
    css: str  # sla-ok, sla-warn, sla-breached, sla-none
    deadline: datetime | None


def sla_state(responded_at: datetime | None, respond_by: datetime | None, resolve_by: datetime | None,
              started_at: datetime, status: str, now: datetime) -> Sla:
    """The deadline that counts now and how close it is: warn under a quarter of its window (from
    ``started_at``, when the SLA clock started: ``rules.sla_start``), or 10 min."""
    if status not in OPEN_STATUSES:
        return Sla("", "—", "sla-none", None)
    if status == "on_hold":
        # The clock is stopped; leaving hold moves the deadlines later by the time held.
        return Sla("", "paused (on hold)", "sla-paused", None)
    label, deadline = ("respond", respond_by) if responded_at is None else ("resolve", resolve_by)
    if deadline is None:
        return Sla(label, "no target", "sla-none", None)
    left = (deadline - now).total_seconds()
    window = max(1.0, (deadline - started_at).total_seconds())
    if left < 0:
        return Sla(label, f"{label} overdue by {duration(left)}", "sla-breached", deadline)
    css = "sla-warn" if left < max(window / 4, 600) else "sla-ok"
    return Sla(label, f"{duration(left)} to {label}", css, deadline)


@dataclass
class Reading:
    key: str
    value: str
    problem: str | None = None


def telemetry_rows(telemetry: dict[str, Any] | None) -> tuple[list[Reading], list[Reading]]:
    """The snapshot as (readings, probes), each flagged with what is wrong if anything."""
    readings: list[Reading] = []
    probes: list[Reading] = []
    for key, value in (telemetry or {}).items():
        if key == "probes" and isinstance(value, dict):
            for name, probe in value.items():
                if isinstance(probe, dict):
                    ok = probe.get("ok")
                    detail = "; ".join(f"{k}: {v}" for k, v in probe.items() if k != "ok")
                    probes.append(Reading(str(name), ("OK" if ok else "FAILING" if ok is False else "?")
                                          + (f" — {detail}" if detail else ""),
                                          "probe failing" if ok is False else None))
                else:
                    probes.append(Reading(str(name), json.dumps(probe)[:200]))
            continue
        problem = None
        if key == "battery_pct" and isinstance(value, (int, float)) and value < BATTERY_LOW_PCT:
            problem = f"battery low (< {BATTERY_LOW_PCT} %)"
        elif key == "rssi_dbm" and isinstance(value, (int, float)) and value < RSSI_WEAK_DBM:
            problem = f"weak signal (< {RSSI_WEAK_DBM} dBm)"
        elif key == "cpu_temp_c" and isinstance(value, (int, float)) and value > CPU_HOT_C:
            problem = f"hot (> {CPU_HOT_C} °C)"
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        readings.append(Reading(str(key), shown[:500], problem))
    return readings, probes


# A time as the API writes it (wire.format_time): shown as people read it.
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")


def details_text(details: Any, limit: int = 400) -> str:
    """An audit row's details as a line people read, cut at ``limit`` characters.

    ``{"site": "adm-01", "changes": {"status": ["active", "retired"]}}`` reads
    ``site: adm-01; changes: (status: active → retired)``: keys in the order recorded, a dict inside
    parentheses, a list comma-separated (one inside another in parentheses), what a ``changes`` dict
    holds as ``old → new``, nothing (None, "", empty) as "—", yes/no, times as ``2026-11-23 21:44:04 UTC``.
    """
    def text(value: Any, changes: bool = False) -> str:
        if isinstance(value, dict):
            return "; ".join(f"{k}: {part(v[0])} → {part(v[1])}" if changes and isinstance(v, list) and len(v) == 2
                             else f"{k}: {part(v, changes=k == 'changes')}" for k, v in value.items()) or "—"
        if isinstance(value, (list, tuple)):
            return ", ".join(part(v, in_list=True) for v in value) or "—"
        if value is None or value == "":
            return "—"
        if isinstance(value, bool):
            return "yes" if value else "no"
        if isinstance(value, datetime) or isinstance(value, str) and _RFC3339.fullmatch(value):
            return readable_time(value)
        return str(value)

    def part(value: Any, changes: bool = False, in_list: bool = False) -> str:
        """A value inside another: a dict in parentheses, and a list in a list."""
        out = text(value, changes)
        wrap = isinstance(value, dict) or in_list and isinstance(value, (list, tuple))
        return f"({out})" if wrap and value else out

    out = text(details)
    return out if len(out) <= limit else out[:limit].rstrip() + " …"
