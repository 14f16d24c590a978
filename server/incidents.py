"""Presses in, answers out: mapping, dedup, reopen, cancel, in one transaction.

``handle_presses`` is what ``POST /api/v1/incidents`` (one press) and
``POST /api/v1/incidents/batch`` call. Everything a press changes (device,
ticket, press row, event feed row) commits together, and the unique
``event_id`` of the press row makes a replay return the first answer instead
of counting twice.

This is the hot path of every press, so it speaks SQLAlchemy Core: a handful
of statements per press, no unit of work (the ORM version cost 8 ms a press).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, literal, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dashdesk import wire

from . import rules
from .db import Database
from .models import OPEN_STATUSES, ButtonMapping, Category, Device, Event, Press, Site, Ticket

FALLBACK_CATEGORY = "other"
T, P, D, E, C, M, S = (Ticket.__table__, Press.__table__, Device.__table__, Event.__table__, Category.__table__,
                       ButtonMapping.__table__, Site.__table__)


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
    return handle_presses(db, [p], settings)[0]


def handle_presses(db: Database, presses: list[IncomingPress],
                   settings: Settings) -> list[tuple[dict[str, Any], bool]]:
    """Apply presses in order in one transaction; return ``(answer, first_time)`` for each."""
    try:
        with db.write() as s:
            return [_once(s, p, settings) for p in presses]
    except IntegrityError:
        # A unique event_id lost a race on a database without IMMEDIATE (PostgreSQL):
        # one by one, each either stored already or applied now.
        if len(presses) > 1:
            return [handle_presses(db, [p], settings)[0] for p in presses]
        with db.read() as s:
            stored = s.scalar(select(P.c.response).where(P.c.event_id == presses[0].event_id))
        if stored is None:
            raise
        return [(stored, False)]


def _once(s: Session, p: IncomingPress, settings: Settings) -> tuple[dict[str, Any], bool]:
    stored = s.execute(Q.stored_answer, {"event_id": p.event_id}).scalar()
    if stored is not None:
        return stored, False
    return _apply(s, p, settings), True


@dataclass
class _Row:
    """What the rest of a press needs to know about the press row it will write."""

    p: IncomingPress
    received_at: datetime
    late: bool


def _apply(s: Session, p: IncomingPress, settings: Settings) -> dict[str, Any]:
    now = wire.utcnow()
    row = _Row(p, now, rules.is_late(p.pressed_at, p.bridge_received_at or now, settings.late_after_s))
    device = _seen_device(s, p.device_id, now)
    if device["status"] == "retired":
        return _finish(s, row, None, "rejected", "device is retired")

    category = _mapped_category(s, p.device_id, p.button, p.press)
    if p.press == "double" and (category is None or category["press"] != "double"):
        return _cancel_last(s, row, settings, now)
    if category is None:
        category = s.execute(Q.fallback_category, {"slug": FALLBACK_CATEGORY}).mappings().first()
        if category is None:
            return _finish(s, row, None, "rejected",
                           f"button {p.button} is not mapped and there is no '{FALLBACK_CATEGORY}' category")
    priority = rules.press_priority(category["priority"], p.press)
    scope = rules.dedup_scope(device["site_id"], p.device_id)

    ticket = s.execute(Q.open_ticket, {"scope": scope, "category_id": category["id"]}).mappings().first()
    if ticket is not None:
        result, status = "merged", ticket["status"]
    else:
        ticket = s.execute(Q.resolved_ticket, {"scope": scope, "category_id": category["id"]}).mappings().first()
        if ticket is not None and rules.within(ticket["resolved_at"], now, settings.reopen_window_s):
            result, status = "reopened", "new"
        else:
            ticket, result, status = None, "created", "new"

    telemetry = p.telemetry or None
    if ticket is None:
        label = category["label"] or category["name"]
        deadlines = rules.sla_deadlines(now, priority, category["sla"])
        ticket_id = s.execute(insert(T).values(
            status="new", priority=priority, category_id=category["id"], site_id=device["site_id"], scope=scope,
            device_id=p.device_id, button=p.button, title=f"{label} at {device['site_name'] or p.device_id}",
            occurrences=1, reopen_count=0, first_reported_at=p.pressed_at, last_reported_at=p.pressed_at,
            created_at=now, updated_at=now, respond_by=deadlines.respond_by, resolve_by=deadlines.resolve_by,
            touched=False, is_test=False, telemetry=telemetry, devices=[p.device_id])).inserted_primary_key[0]
        devices = [p.device_id]
    else:
        ticket_id = ticket["id"]
        devices = ticket["devices"] if p.device_id in ticket["devices"] else sorted([*ticket["devices"], p.device_id])
        deadlines = rules.Deadlines(ticket["respond_by"], ticket["resolve_by"])
        if priority < ticket["priority"]:
            deadlines = rules.sla_deadlines(ticket["created_at"], priority, category["sla"])
        s.execute(Q.merge_into_ticket, {
            "ticket_pk": ticket_id, "b_status": status, "b_updated_at": now,
            "b_first": min(ticket["first_reported_at"], p.pressed_at),
            "b_last": max(ticket["last_reported_at"], p.pressed_at),
            "b_telemetry": telemetry if telemetry else ticket["telemetry"],
            "b_resolved_at": None if result == "reopened" else ticket["resolved_at"],
            "b_reopen_count": ticket["reopen_count"] + (result == "reopened"),
            "b_priority": min(priority, ticket["priority"]),
            "b_respond_by": deadlines.respond_by, "b_resolve_by": deadlines.resolve_by, "b_devices": devices})
    summary = {"id": ticket_id, "number": rules.ticket_number(ticket_id), "status": status,
               "category": category["slug"]}
    return _finish(s, row, summary, result, None, devices)


def _cancel_last(s: Session, row: _Row, settings: Settings, now: datetime) -> dict[str, Any]:
    p = row.p
    last = s.execute(Q.last_report, {"device_id": p.device_id}).first()
    if last is None or not rules.within(last.pressed_at, p.pressed_at, settings.cancel_window_s):
        return _finish(s, row, None, "rejected",
                       f"nothing to cancel: no report from this device in the last {settings.cancel_window_s:g} s")
    ticket = s.execute(select(T.c.id, T.c.status, T.c.occurrences, T.c.touched, T.c.reopen_count, T.c.devices,
                              C.c.slug)
                       .join(C, C.c.id == T.c.category_id).where(T.c.id == last.ticket_id)).first()
    if ticket.touched or ticket.status not in OPEN_STATUSES:
        return _finish(s, row, None, "rejected", "the ticket is already being handled; it cannot be cancelled")
    s.execute(update(P).where(P.c.id == last.id).values(cancelled=True))
    values: dict[str, Any] = {"occurrences": max(1, ticket.occurrences - 1), "updated_at": now}
    if last.result == "reopened":
        values.update(status="resolved", resolved_at=now, reopen_count=ticket.reopen_count - 1)
    elif ticket.occurrences <= 1:
        values["status"] = "cancelled"
    s.execute(update(T).where(T.c.id == ticket.id).values(**values))
    summary = {"id": ticket.id, "number": rules.ticket_number(ticket.id),
               "status": values.get("status", ticket.status), "category": ticket.slug}
    return _finish(s, row, summary, "cancelled", None, ticket.devices)


def _finish(s: Session, row: _Row, ticket: dict[str, Any] | None, result: str, reason: str | None,
            devices: list[str] | None = None) -> dict[str, Any]:
    p = row.p
    response = wire.ack(p.event_id, result, ticket, reason)
    s.execute(Q.insert_press, {
        "event_id": p.event_id, "device_id": p.device_id, "button": p.button, "press": p.press, "seq": p.seq,
        "pressed_at": p.pressed_at, "bridge_received_at": p.bridge_received_at, "received_at": row.received_at,
        "late": row.late, "ticket_id": ticket["id"] if ticket else None, "result": result, "reason": reason,
        "cancelled": False, "telemetry": p.telemetry or None, "response": response})
    if ticket is not None:
        s.execute(Q.insert_event, {
            "kind": f"ticket.{result}", "ticket_id": ticket["id"], "devices": devices,
            "actor": f"device:{p.device_id}", "created_at": row.received_at,
            "data": {"event_id": p.event_id, "press": p.press, "status": ticket["status"], "late": row.late}})
    return response


def _seen_device(s: Session, device_id: str, now: datetime) -> dict[str, Any]:
    """The device (registered as ``pending`` on its first press) with its site's name."""
    device = s.execute(Q.device, {"device_id": device_id}).mappings().first()
    if device is None:
        s.execute(Q.insert_device, {"device_id": device_id, "status": "pending", "kind": "physical",
                                    "first_seen_at": now, "last_seen_at": now})
        return {"status": "pending", "site_id": None, "site_name": None}
    s.execute(Q.device_seen, {"device_pk": device["id"], "now": now})
    return dict(device)


def _mapped_category(s: Session, device_id: str, button: str, press: str) -> dict[str, Any] | None:
    """The category this press type is mapped to if set, else the button's general mapping."""
    rows = s.execute(Q.mappings, {"device_id": device_id, "button": button, "press": press}).mappings().all()
    return next((dict(m) for m in rows if m["press"] == press), None) or (dict(rows[0]) if rows else None)


class Q:
    """The hot path's statements, built once: building one costs more than running it."""

    _ticket = select(T.c.id, T.c.status, T.c.priority, T.c.created_at, T.c.resolved_at, T.c.reopen_count,
                     T.c.first_reported_at, T.c.last_reported_at, T.c.respond_by, T.c.resolve_by, T.c.telemetry,
                     T.c.devices)
    _scope = (T.c.scope == bindparam("scope"), T.c.category_id == bindparam("category_id"))
    _category = (C.c.id, C.c.slug, C.c.name, C.c.priority, C.c.sla)

    stored_answer = select(P.c.response).where(P.c.event_id == bindparam("event_id"))
    device = (select(D.c.id, D.c.status, D.c.site_id, S.c.name.label("site_name"))
              .outerjoin(S, S.c.id == D.c.site_id).where(D.c.device_id == bindparam("device_id")))
    insert_device = insert(D)
    device_seen = update(D).where(D.c.id == bindparam("device_pk")).values(last_seen_at=bindparam("now"))
    mappings = (select(*_category, M.c.label, M.c.press).join(C, C.c.id == M.c.category_id)
                .where(M.c.device_id == bindparam("device_id"), M.c.button == bindparam("button"),
                       M.c.press.in_([bindparam("press"), ""])))
    # The fallback category's row has the shape of a mapped one: its name as label, no press type.
    fallback_category = select(*_category, C.c.name.label("label"), literal("").label("press")).where(
        C.c.slug == bindparam("slug"))
    open_ticket = _ticket.where(*_scope, T.c.status.in_(OPEN_STATUSES)).order_by(T.c.id).limit(1)
    resolved_ticket = _ticket.where(*_scope, T.c.status == "resolved").order_by(T.c.resolved_at.desc()).limit(1)
    merge_into_ticket = update(T).where(T.c.id == bindparam("ticket_pk")).values(
        occurrences=T.c.occurrences + 1, status=bindparam("b_status"), updated_at=bindparam("b_updated_at"),
        first_reported_at=bindparam("b_first"), last_reported_at=bindparam("b_last"),
        telemetry=bindparam("b_telemetry", type_=T.c.telemetry.type),
        resolved_at=bindparam("b_resolved_at", type_=T.c.resolved_at.type),
        reopen_count=bindparam("b_reopen_count"), priority=bindparam("b_priority"),
        respond_by=bindparam("b_respond_by", type_=T.c.respond_by.type),
        resolve_by=bindparam("b_resolve_by", type_=T.c.resolve_by.type),
        devices=bindparam("b_devices", type_=T.c.devices.type))
    last_report = (select(P.c.id, P.c.ticket_id, P.c.result, P.c.pressed_at)
                   .where(P.c.device_id == bindparam("device_id"), P.c.cancelled.is_(False),
                          P.c.result.in_(("created", "merged", "reopened")))
                   .order_by(P.c.id.desc()).limit(1))
    insert_press = insert(P)
    insert_event = insert(E)
