"""Pure rules of the desk: press types, priorities, SLA arithmetic, lateness.

No I/O here; ``server.domain.incidents`` applies these inside one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from server.domain.inputs import parse_int

HIGHEST_PRIORITY = 1
LOWEST_PRIORITY = 4


def press_priority(default: int, press: str) -> int:
    """A long press reports one step more urgent than the category's default."""
    if press == "long":
        return max(HIGHEST_PRIORITY, default - 1)
    return default


@dataclass(frozen=True)
class Deadlines:
    respond_by: datetime | None
    resolve_by: datetime | None


def sla_deadlines(start: datetime, priority: int, sla: dict[str, Any]) -> Deadlines:
    """Deadlines for a ticket opened at ``start`` with targets ``{"<priority>": {...}}``."""
    targets = sla.get(str(priority)) or {}
    respond = targets.get("respond_min")
    resolve = targets.get("resolve_min")
    return Deadlines(
        respond_by=start + timedelta(minutes=respond) if respond is not None else None,
        resolve_by=start + timedelta(minutes=resolve) if resolve is not None else None,
    )


def sla_start(created_at: datetime, held_s: int | None, on_hold_since: datetime | None,
              now: datetime) -> datetime:
    """When the ticket's SLA clock started, as if it had never stopped: its creation, later by the whole
    seconds it spent on hold (``held_s``) and, while it is on hold (since ``on_hold_since``), by the hold
    so far up to ``now``, in whole seconds as ``held_s`` counts them. The deadlines are the targets
    counted from it (``sla_deadlines``).
    """
    held = held_s or 0
    if on_hold_since is not None:
        held += max(0, int((now - on_hold_since).total_seconds()))
    return created_at + timedelta(seconds=held)


def is_late(pressed_at: datetime, received_at: datetime, late_after_s: float) -> bool:
    """A press that spent longer than ``late_after_s`` on its way came from a queue."""
    return (received_at - pressed_at).total_seconds() > late_after_s


def within(earlier: datetime | None, later: datetime, seconds: float) -> bool:
    return earlier is not None and timedelta(0) <= later - earlier <= timedelta(seconds=seconds)


def dedup_scope(site_id: int | None, device_id: str, per: str = "site", test: bool = False) -> str:
    """What presses merge on: the site (``per`` "site", the default) or the device (``per`` "device").

    A device not yet placed in a site is a scope of its own either way. A device in test mode
    (``test``) has a scope of its own that no real press shares: its test tickets never merge with
    real ones, nor with another device's tests.

    >>> dedup_scope(7, "till-1"), dedup_scope(7, "till-1", "device"), dedup_scope(7, "till-1", test=True)
    ('site:7', 'device:till-1', 'test:device:till-1')
    """
    if test:
        return f"{TEST_SCOPE_PREFIX}device:{device_id}"
    return f"site:{site_id}" if per != "device" and site_id is not None else f"device:{device_id}"


TEST_SCOPE_PREFIX = "test:"


def reopen_window_s(category_window_min: int | None, default_s: float) -> float:
    """The category's own reopen window if it has one, else the server's."""
    return default_s if category_window_min is None else category_window_min * 60.0


def ticket_number(ticket_id: int) -> str:
    return f"INC-{ticket_id:06d}"


def parse_ticket_number(text: str) -> int | None:
    """``INC-000042``, ``inc-42`` or ``42`` → 42; anything else → None."""
    t = text.strip().upper()
    if t.startswith("INC-"):
        t = t[4:]
    return parse_int(t, max_digits=11)
