"""One press in, one answer out: mapping, dedup, reopen, cancel, in one transaction.

``handle_press`` is what ``POST /api/v1/incidents`` calls. Everything it
changes (device, ticket, press, event feed row) commits together, and the
unique ``event_id`` of the press row makes a replay return the first answer
instead of counting twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dashdesk import wire

from . import rules
from .db import Database
from .models import OPEN_STATUSES, ButtonMapping, Category, Device, Event, Press, Ticket

FALLBACK_CATEGORY = "other"


@dataclass(frozen=True)
class IncomingPress:
    """A validated, enriched press as the bridge hands it over."""

    event_id: str
    device_id: str
    button: str
    press: str
    pressed_at: datetime
    seq: int | None
    telemetry: dict[str, Any]
    bridge_received_at: datetime | None = None


@dataclass(frozen=True)
class Settings:
    reopen_window_s: float = 86400
    cancel_window_s: float = 120
    late_after_s: float = 30


def ticket_summary(ticket: Ticket) -> dict[str, Any]:
    return {"id": ticket.id, "number": rules.ticket_number(ticket.id), "status": ticket.status,
            "category": ticket.category.slug}


def handle_press(db: Database, p: IncomingPress, settings: Settings) -> tuple[dict[str, Any], bool]:
    """Apply one press; return ``(answer, first_time)``. A replay returns the stored answer."""
    with db.read() as s:
        stored = s.scalar(select(Press.response).where(Press.event_id == p.event_id))
    if stored is not None:
        return stored, False
    try:
        with db.write() as s:
            # Looked up again inside the write lock: another worker may have just stored it.
            stored = s.scalar(select(Press.response).where(Press.event_id == p.event_id))
            if stored is not None:
                return stored, False
            return _apply(s, p, settings), True
    except IntegrityError:
        # The unique event_id lost a race on a database without IMMEDIATE (PostgreSQL).
        with db.read() as s:
            stored = s.scalar(select(Press.response).where(Press.event_id == p.event_id))
        if stored is None:
            raise
        return stored, False


def _apply(s: Session, p: IncomingPress, settings: Settings) -> dict[str, Any]:
    now = wire.utcnow()
    device = _seen_device(s, p.device_id, now)
    row = Press(event_id=p.event_id, device_id=p.device_id, button=p.button, press=p.press, seq=p.seq,
                pressed_at=p.pressed_at, bridge_received_at=p.bridge_received_at, received_at=now,
                late=rules.is_late(p.pressed_at, p.bridge_received_at or now, settings.late_after_s),
                telemetry=p.telemetry or None, result="rejected", response={})
    if device.status == "retired":
        return _finish(s, row, None, "rejected", "device is retired")

    mapping = _mapping_for(s, p.device_id, p.button, p.press)
    if p.press == "double" and (mapping is None or mapping.press != "double"):
        return _cancel_last(s, row, p, settings, now)

    category = mapping.category if mapping else s.scalar(select(Category).where(Category.slug == FALLBACK_CATEGORY))
    if category is None:
        return _finish(s, row, None, "rejected", f"button {p.button} is not mapped and there is no "
                                                  f"'{FALLBACK_CATEGORY}' category")
    priority = rules.press_priority(category.priority, p.press)
    scope = rules.dedup_scope(device.site_id, p.device_id)

    ticket = s.scalar(select(Ticket).where(Ticket.scope == scope, Ticket.category_id == category.id,
                                           Ticket.status.in_(OPEN_STATUSES)).order_by(Ticket.id).limit(1))
    if ticket is not None:
        result = "merged"
    else:
        ticket = s.scalar(select(Ticket).where(Ticket.scope == scope, Ticket.category_id == category.id,
                                               Ticket.status == "resolved")
                          .order_by(Ticket.resolved_at.desc()).limit(1))
        if ticket is not None and rules.within(ticket.resolved_at, now, settings.reopen_window_s):
            result = "reopened"
            ticket.status = "new"
            ticket.resolved_at = None
            ticket.reopen_count += 1
        else:
            ticket = None
            result = "created"

    if ticket is None:
        label = mapping.label if mapping and mapping.label else category.name
        ticket = Ticket(status="new", priority=priority, category=category, site_id=device.site_id, scope=scope,
                        device_id=p.device_id, button=p.button,
                        title=f"{label} at {device.site.name if device.site else p.device_id}",
                        occurrences=1, first_reported_at=p.pressed_at, last_reported_at=p.pressed_at,
                        created_at=now, updated_at=now, telemetry=p.telemetry or None)
        deadlines = rules.sla_deadlines(now, priority, category.sla)
        ticket.respond_by, ticket.resolve_by = deadlines.respond_by, deadlines.resolve_by
        s.add(ticket)
        s.flush()
    else:
        ticket.occurrences += 1
        ticket.last_reported_at = max(ticket.last_reported_at, p.pressed_at)
        ticket.first_reported_at = min(ticket.first_reported_at, p.pressed_at)
        ticket.updated_at = now
        if p.telemetry:
            ticket.telemetry = p.telemetry
        if priority < ticket.priority:
            ticket.priority = priority
            deadlines = rules.sla_deadlines(ticket.created_at, priority, category.sla)
            ticket.respond_by, ticket.resolve_by = deadlines.respond_by, deadlines.resolve_by
    return _finish(s, row, ticket, result, None)


def _cancel_last(s: Session, row: Press, p: IncomingPress, settings: Settings, now: datetime) -> dict[str, Any]:
    last = s.scalar(select(Press).where(Press.device_id == p.device_id, Press.cancelled.is_(False),
                                        Press.result.in_(("created", "merged", "reopened")))
                    .order_by(Press.id.desc()).limit(1))
    if last is None or not rules.within(last.pressed_at, p.pressed_at, settings.cancel_window_s):
        return _finish(s, row, None, "rejected",
                       f"nothing to cancel: no report from this device in the last {settings.cancel_window_s:g} s")
    ticket = s.get(Ticket, last.ticket_id)
    assert ticket is not None
    if ticket.touched or ticket.status not in OPEN_STATUSES:
        return _finish(s, row, None, "rejected", "the ticket is already being handled; it cannot be cancelled")
    last.cancelled = True
    ticket.occurrences -= 1
    ticket.updated_at = now
    if last.result == "reopened":
        ticket.status, ticket.resolved_at, ticket.reopen_count = "resolved", now, ticket.reopen_count - 1
    elif ticket.occurrences <= 0:
        ticket.status = "cancelled"
        ticket.occurrences = 1
    return _finish(s, row, ticket, "cancelled", None)


def _finish(s: Session, row: Press, ticket: Ticket | None, result: str, reason: str | None) -> dict[str, Any]:
    row.result, row.reason = result, reason
    row.ticket_id = ticket.id if ticket else None
    summary = ticket_summary(ticket) if ticket else None
    row.response = wire.ack(row.event_id, result, summary, reason)
    s.add(row)
    if ticket is not None:
        s.flush()
        s.add(Event(kind=f"ticket.{result}", ticket_id=ticket.id, devices=devices_of(s, ticket.id),
                    actor=f"device:{row.device_id}", created_at=row.received_at,
                    data={"event_id": row.event_id, "press": row.press, "occurrences": ticket.occurrences,
                          "status": ticket.status, "late": row.late}))
    return row.response


def devices_of(s: Session, ticket_id: int) -> list[str]:
    """Devices whose presses are in a ticket: the ones whose ``tickets`` topic shows it."""
    return sorted(s.scalars(select(Press.device_id).where(Press.ticket_id == ticket_id).distinct()))


def _seen_device(s: Session, device_id: str, now: datetime) -> Device:
    """The device, registered as ``pending`` on its first press."""
    device = s.scalar(select(Device).where(Device.device_id == device_id))
    if device is None:
        device = Device(device_id=device_id, status="pending", first_seen_at=now)
        s.add(device)
    device.last_seen_at = now
    return device


def _mapping_for(s: Session, device_id: str, button: str, press: str) -> ButtonMapping | None:
    """The mapping for this press type if one is set, else the button's general one."""
    rows = s.scalars(select(ButtonMapping).where(ButtonMapping.device_id == device_id,
                                                 ButtonMapping.button == button,
                                                 ButtonMapping.press.in_((press, "")))).all()
    return next((m for m in rows if m.press == press), None) or next(iter(rows), None)
