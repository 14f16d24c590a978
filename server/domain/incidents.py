"""Presses in, answers out: mapping, dedup, reopen, cancel, in one transaction.

``handle_presses`` is what ``POST /api/v1/incidents`` (one press) and
``POST /api/v1/incidents/batch`` call, with each press as its body
(``wire.IncidentBody``). Everything a press changes (device,
ticket, press row, event feed row) commits together, and the press row's
unique ``(device_id, event_id)`` makes a replay return the first answer instead
of counting twice (the same ``event_id`` from another device is another press).

This is the hot path of every press: a handful of plain SQL statements per
press (``Q``), run on SQLite's own cursor (see ``prepared``); no unit of work
(the ORM version cost 8 ms a press, SQLAlchemy Core 2.2 ms, this 0.4 ms).
"""

from __future__ import annotations

import functools
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dashdesk import wire

from server.domain import rules
from server.db import Database
from server.domain import events
from server.models import OPEN_STATUSES, Category, Device, Event, Press, Ticket
from server.prepared import Runner, Statement, Statements, insert_sql, select_sql, statements_for

FALLBACK_CATEGORY = "other"
# The title of a test ticket starts with this, wherever it is seen.
TEST_TITLE_PREFIX = "[test] "
# Devices whose presses are refused, and the reason the ack gives.
REFUSED_DEVICES = {"retired": "device retired", "rejected": "device rejected by an admin"}
T, P, D, E, C = Ticket.__table__, Press.__table__, Device.__table__, Event.__table__, Category.__table__


@dataclass(frozen=True)
class Settings:
    reopen_window_s: float = 86400
    cancel_window_s: float = 120
    late_after_s: float = 30


def summary(ticket_id: int, status: str, category: str) -> dict[str, Any]:
    """The part of a ticket that travels in acks and on a device's ``tickets`` topic (and begins the phone
    app's view of a ticket): its id, number, status and category's slug."""
    return {"id": ticket_id, "number": rules.ticket_number(ticket_id), "status": status, "category": category}


def ticket_summary(ticket: Ticket) -> dict[str, Any]:
    """The :func:`summary` of a ticket loaded with its category."""
    return summary(ticket.id, ticket.status, ticket.category.slug)


def handle_press(db: Database, p: wire.IncidentBody, settings: Settings) -> tuple[dict[str, Any], bool]:
    """Apply one press; return ``(answer, first_time)``. A replay returns the stored answer."""
    return handle_presses(db, [p], settings)[0]


def handle_presses(db: Database, presses: list[wire.IncidentBody],
                   settings: Settings) -> list[tuple[dict[str, Any], bool]]:
    """Apply presses in order in one transaction; return ``(answer, first_time)`` for each."""
    try:
        with db.write() as s:
            x = statements_for(s, fast=db.fast_sql)
            return [_once(s, x, p, settings) for p in presses]
    except (IntegrityError, sqlite3.IntegrityError):
        # A unique (device_id, event_id) lost a race on a database without IMMEDIATE (PostgreSQL):
        # one by one, each either stored already or applied now.
        if len(presses) > 1:
            return [handle_presses(db, [p], settings)[0] for p in presses]
        with db.read() as s:
            stored = s.scalar(select(P.c.response).where(P.c.device_id == presses[0].device_id,
                                                         P.c.event_id == presses[0].event_id))
        if stored is None:
            raise
        return [(stored, False)]


def _once(s: Session, x: Statements | Runner, p: wire.IncidentBody, settings: Settings) -> tuple[dict[str, Any], bool]:
    stored = x.first(Q.stored_answer, {"device_id": p.device_id, "event_id": p.event_id})
    if stored is not None:
        return stored["response"], False
    return _apply(s, x, p, settings), True


@dataclass
class _Row:
    """What the rest of a press needs to know about the press row it will write."""

    p: wire.IncidentBody
    received_at: datetime  # the server's time (the bridge's is p.received_at, the row's bridge_received_at)
    late: bool
    # The device is in test mode: its ticket is a test ticket (``is_test``), in a dedup scope of its own.
    test: bool = False


def _apply(s: Session, x: Statements | Runner, p: wire.IncidentBody, settings: Settings) -> dict[str, Any]:
    now = wire.utcnow()
    row = _Row(p, now, rules.is_late(p.pressed_at, p.received_at or now, settings.late_after_s))
    device = _seen_device(x, p.device_id, now)
    row.test = bool(device["test_mode"])
    if device["status"] in REFUSED_DEVICES:
        return _finish(x, row, None, "rejected", REFUSED_DEVICES[device["status"]])

    category = _mapped_category(x, p.device_id, p.button, p.press)
    if category is not None and category["action"] == "cancel":
        # A cancel button withdraws the device's last report; a double press mapped to "cancel", as a double
        # press does unless mapped to a category, the last report of its own button.
        return _cancel_last(s, x, row, settings, now, by_button=category["press"] == "double")
    if p.press == "double" and (category is None or category["press"] != "double"):
        return _cancel_last(s, x, row, settings, now, by_button=True)
    if category is None:
        category = x.first(Q.fallback_category, {"slug": FALLBACK_CATEGORY})
        if category is None:
            return _finish(x, row, None, "rejected",
                           f"button {p.button} is not mapped and there is no '{FALLBACK_CATEGORY}' category")
    priority = rules.press_priority(category["priority"], p.press)
    scope = rules.dedup_scope(device["site_id"], p.device_id, category["dedup_scope"], test=row.test)

    ticket = x.first(Q.open_ticket, {"scope": scope, "category_id": category["id"]})
    # The ticket's own category: the press's, unless the press follows a merge into another category's ticket.
    own = category
    if ticket is not None:
        result, status = "merged", ticket["status"]
    else:
        ticket = x.first(Q.resolved_ticket, {"scope": scope, "category_id": category["id"]})
        followed = _merged_target(x, scope, category["id"], row.test)
        if followed is not None:
            ticket = own = followed
        window_s = rules.reopen_window_s(own["reopen_window_min"], settings.reopen_window_s)
        if ticket is not None and ticket["status"] in OPEN_STATUSES:
            result, status = "merged", ticket["status"]
        elif ticket is not None and ticket["status"] == "resolved" and rules.within(ticket["resolved_at"], now,
                                                                                   window_s):
            result, status = "reopened", "new"
        else:
            # A new ticket of the press's own category (not of a followed merge's target: see own above).
            ticket, own, result, status = None, category, "created", "new"

    telemetry = p.telemetry or None
    changes = None
    if ticket is None:
        label = category["label"] or category["name"]
        if row.test:
            label = f"{TEST_TITLE_PREFIX}{label}"
        deadlines = rules.sla_deadlines(now, priority, category["sla"])
        ticket_id = x.first(Q.insert_ticket, {
            "status": "new", "priority": priority, "category_id": category["id"], "site_id": device["site_id"],
            "scope": scope, "device_id": p.device_id, "button": p.button,
            "title": f"{label} at {device['site_name'] or p.device_id}", "occurrences": 1, "reopen_count": 0,
            "first_reported_at": p.pressed_at, "last_reported_at": p.pressed_at, "created_at": now,
            "updated_at": now, "respond_by": deadlines.respond_by, "resolve_by": deadlines.resolve_by,
            "touched": False, "is_test": row.test, "telemetry": telemetry, "devices": [p.device_id], "held_s": 0})["id"]
        devices = [p.device_id]
    else:
        ticket_id = ticket["id"]
        devices = ticket["devices"] if p.device_id in ticket["devices"] else sorted([*ticket["devices"], p.device_id])
        _merge(x, ticket, p, now, telemetry, devices)
        if result == "reopened":
            x.run(Q.reopen_ticket, {"id": ticket_id, "no": False})
        if priority < ticket["priority"]:
            start = rules.sla_start(ticket["created_at"], ticket["held_s"], ticket["on_hold_since"], now)
            deadlines = rules.sla_deadlines(start, priority, own["sla"])
            x.run(Q.raise_ticket, {"id": ticket_id, "priority": priority, "respond_by": deadlines.respond_by,
                                   "resolve_by": deadlines.resolve_by})
            changes = {"priority": [ticket["priority"], priority]}
    return _finish(x, row, summary(ticket_id, status, own["slug"]), result, None, devices, changes)


# Merges of merges followed at most this far (a merge goes into an open ticket and closes its source, so a
# chain never loops; this only bounds the work).
MAX_MERGE_HOPS = 16


def _merged_target(x: Statements | Runner, scope: str, category_id: int, test: bool) -> dict[str, Any] | None:
    """Where presses of ``scope`` and category go once an agent merged its ticket into another one.

    Asked only when the scope has no open ticket of the category. Its latest merged ticket (none in almost
    every scope: one look-up in the small partial index ix_tickets_merged) leads to the ticket it was merged
    into, following merges of that one too: that ticket takes the press while it is open or resolved (the
    press merges or reopens as it would have with the merged ticket), unless the scope has had a ticket of
    its own since the merged one (of any status: once the shop's presses made a ticket of their own, the old
    merge no longer speaks for them). The ticket's row with its category's ``slug``, ``sla`` and
    ``reopen_window_min``, or None.
    """
    merged = x.first(Q.merged_ticket, {"scope": scope, "category_id": category_id})
    if merged is None or x.first(Q.ticket_since, {"scope": scope, "category_id": category_id,
                                                  "id": merged["id"]}) is not None:
        return None
    target_id = merged["merged_into_id"]
    for _ in range(MAX_MERGE_HOPS):
        target = x.first(Q.merge_target, {"id": target_id})
        if target is None or bool(target["is_test"]) != test:
            return None
        if target["merged_into_id"] is None:
            return target if target["status"] in (*OPEN_STATUSES, "resolved") else None
        target_id = target["merged_into_id"]
    return None


def _merge(x: Statements | Runner, ticket: dict[str, Any], p: wire.IncidentBody, now: datetime,
           telemetry: dict[str, Any] | None, devices: list[str]) -> None:
    """Count the press on the ticket, setting only the columns it changes: none that an index holds."""
    values: dict[str, Any] = {"id": ticket["id"], "updated_at": now,
                              "last_reported_at": max(ticket["last_reported_at"], p.pressed_at)}
    if p.pressed_at < ticket["first_reported_at"]:
        values["first_reported_at"] = p.pressed_at
    if telemetry:
        values["telemetry"] = telemetry
    if devices != ticket["devices"]:
        values["devices"] = devices
    x.run(merge_statement(tuple(values)), values)


def _cancel_last(s: Session, x: Statements | Runner, row: _Row, settings: Settings, now: datetime,
                 by_button: bool) -> dict[str, Any]:
    """Withdraw the last report of the press's button (``by_button``: a double press), or of the device (a
    cancel button), if it was made within the cancel window and no agent has touched its ticket."""
    p = row.p
    if by_button:
        last = x.first(Q.last_report_of_button, {"device_id": p.device_id, "button": p.button, "no": False})
    else:
        last = x.first(Q.last_report, {"device_id": p.device_id, "no": False})
    if last is None or not rules.within(last["pressed_at"], p.pressed_at, settings.cancel_window_s):
        return _finish(x, row, None, "rejected", f"nothing to cancel: no report from this "
                                                 f"{'button' if by_button else 'device'} in the last "
                                                 f"{settings.cancel_window_s:g} s")
    ticket = s.execute(select(T.c.id, T.c.status, T.c.occurrences, T.c.touched, T.c.reopen_count, T.c.devices,
                              T.c.is_test, C.c.slug)
                       .join(C, C.c.id == T.c.category_id).where(T.c.id == last["ticket_id"])).first()
    if ticket.touched or ticket.status not in OPEN_STATUSES:
        return _finish(x, row, None, "rejected", "the ticket is already being handled; it cannot be cancelled")
    s.execute(update(P).where(P.c.id == last["id"]).values(cancelled=True))
    values: dict[str, Any] = {"occurrences": max(1, ticket.occurrences - 1), "updated_at": now}
    # A reopen withdrawn puts the ticket back as resolved, unless a report came after it (not to be lost).
    reported_since = last["result"] == "reopened" and s.scalar(
        select(P.c.id).where(P.c.ticket_id == ticket.id, P.c.id > last["id"], P.c.cancelled.is_(False),
                             P.c.result.in_(("created", "merged", "reopened"))).limit(1)) is not None
    if last["result"] == "reopened" and not reported_since:
        values.update(status="resolved", resolved_at=now, reopen_count=ticket.reopen_count - 1)
    elif ticket.occurrences <= 1:
        values["status"] = "cancelled"
    s.execute(update(T).where(T.c.id == ticket.id).values(**values))
    row.test = bool(ticket.is_test)
    return _finish(x, row, summary(ticket.id, values.get("status", ticket.status), ticket.slug), "cancelled", None,
                   ticket.devices)


def _finish(x: Statements | Runner, row: _Row, ticket: dict[str, Any] | None, result: str, reason: str | None,
            devices: list[str] | None = None, changes: dict[str, list[Any]] | None = None) -> dict[str, Any]:
    p = row.p
    response = wire.ack(p.event_id, result, ticket, reason)
    x.run(Q.insert_press, {
        "event_id": p.event_id, "device_id": p.device_id, "button": p.button, "press": p.press, "seq": p.seq,
        "pressed_at": p.pressed_at, "bridge_received_at": p.received_at, "received_at": row.received_at,
        "late": row.late, "ticket_id": ticket["id"] if ticket else None, "result": result, "reason": reason,
        "cancelled": False, "telemetry": p.telemetry or None, "response": response})
    if ticket is not None:
        x.run(Q.insert_event, {
            # A test ticket's events are "test.*": the desk's live updates neither list nor announce them.
            "kind": events.press_kind(result, test=row.test), "ticket_id": ticket["id"], "devices": devices,
            "actor": f"device:{p.device_id}", "created_at": row.received_at,
            "data": {"event_id": p.event_id, "press": p.press, "status": ticket["status"], "late": row.late,
                     **({"changes": changes} if changes else {})}})
    return response


def _seen_device(x: Statements | Runner, device_id: str, now: datetime) -> dict[str, Any]:
    """The device (registered as ``pending`` on its first press) with its site's name; the press is its last
    contact, and its first if it has none yet (``first_seen_at``)."""
    device = x.first(Q.device, {"device_id": device_id})
    if device is None:
        x.run(Q.insert_device, {"device_id": device_id, "status": "pending", "kind": "physical",
                                "first_seen_at": now, "last_seen_at": now, "test_mode": False})
        return {"status": "pending", "site_id": None, "site_name": None, "test_mode": False}
    x.run(Q.device_seen, {"id": device["id"], "now": now})
    return device


def _mapped_category(x: Statements | Runner, device_id: str, button: str, press: str) -> dict[str, Any] | None:
    """The category this press type is mapped to if set, else the button's general mapping."""
    rows = x.all(Q.mappings, {"device_id": device_id, "button": button, "press": press})
    return next((m for m in rows if m["press"] == press), None) or (rows[0] if rows else None)


def _in(values: tuple[str, ...]) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


_TICKET = "id status priority created_at resolved_at first_reported_at last_reported_at devices held_s on_hold_since"
_TICKET_TYPES = {k: T.c[k] for k in ("created_at", "resolved_at", "first_reported_at", "last_reported_at", "devices",
                                     "on_hold_since")}
_CATEGORY = "id slug name priority sla dedup_scope reopen_window_min label press action"


class Q:
    """The hot path's statements: plain SQL over the models' tables, typed by their columns."""

    # One look-up in the unique index uq_presses_device_event: a press is its device's event_id.
    stored_answer = select_sql("SELECT response FROM presses WHERE device_id = :device_id AND event_id = :event_id",
                               "response", columns={"response": P.c.response})
    device = select_sql("SELECT d.id, d.status, d.site_id, s.name AS site_name, d.test_mode FROM devices d "
                        "LEFT JOIN sites s ON s.id = d.site_id WHERE d.device_id = :device_id",
                        "id status site_id site_name test_mode", columns={"test_mode": D.c.test_mode})
    insert_device = insert_sql(D, "device_id status kind first_seen_at last_seen_at test_mode")
    # "First seen" is the first contact: a device added by an admin (registered, a replacement, an import) has
    # none until its first press, which sets it here, in the statement the press runs anyway.
    device_seen = Statement("UPDATE devices SET last_seen_at = :now, first_seen_at = COALESCE(first_seen_at, :now) "
                            "WHERE id = :id", {"now": D.c.last_seen_at})
    # LEFT JOIN: a "cancel" mapping has no category.
    mappings = select_sql("SELECT c.id, c.slug, c.name, c.priority, c.sla, c.dedup_scope, c.reopen_window_min, "
                          "m.label, m.press, m.action FROM button_mappings m "
                          "LEFT JOIN categories c ON c.id = m.category_id "
                          "WHERE m.device_id = :device_id AND m.button = :button AND m.press IN (:press, '')",
                          _CATEGORY, columns={"sla": C.c.sla})
    # The fallback category's row has the shape of a mapped one: its name as label, no press type.
    fallback_category = select_sql("SELECT id, slug, name, priority, sla, dedup_scope, reopen_window_min, "
                                   "name AS label, '' AS press, 'report' AS action "
                                   "FROM categories WHERE slug = :slug", _CATEGORY, columns={"sla": C.c.sla})
    _ticket = f"SELECT {', '.join(_TICKET.split())} FROM tickets WHERE scope = :scope AND category_id = :category_id"
    open_ticket = select_sql(f"{_ticket} AND status IN {_in(OPEN_STATUSES)} ORDER BY id LIMIT 1", _TICKET,
                             columns=_TICKET_TYPES)
    resolved_ticket = select_sql(f"{_ticket} AND status = 'resolved' ORDER BY resolved_at DESC LIMIT 1", _TICKET,
                                 columns=_TICKET_TYPES)
    # The scope's latest ticket an agent merged into another one (the partial index ix_tickets_merged).
    merged_ticket = select_sql("SELECT id, merged_into_id FROM tickets WHERE scope = :scope AND category_id = "
                               ":category_id AND merged_into_id IS NOT NULL ORDER BY id DESC LIMIT 1",
                               "id merged_into_id")
    # Whether the scope has a ticket of the category newer than the one given (asked only where a merge was).
    ticket_since = select_sql("SELECT id FROM tickets WHERE scope = :scope AND category_id = :category_id "
                              "AND id > :id LIMIT 1", "id")
    # A ticket merged into: its row, where it was merged on to, and its category's rules.
    merge_target = select_sql(f"SELECT {', '.join('t.' + k for k in _TICKET.split())}, t.merged_into_id, t.is_test, "
                              "c.slug, c.sla, c.reopen_window_min FROM tickets t JOIN categories c "
                              "ON c.id = t.category_id WHERE t.id = :id",
                              f"{_TICKET} merged_into_id is_test slug sla reopen_window_min",
                              columns={**_TICKET_TYPES, "sla": C.c.sla})
    insert_ticket = insert_sql(T, "status priority category_id site_id scope device_id button title occurrences "
                                  "reopen_count first_reported_at last_reported_at created_at updated_at "
                                  "respond_by resolve_by touched is_test telemetry devices held_s")
    # A press after the ticket was resolved, within the reopen window: open again, untouched by agents
    # since (the presser may withdraw the reopen within the cancel window, as any report).
    reopen_ticket = Statement("UPDATE tickets SET status = 'new', resolved_at = NULL, touched = :no, "
                              "reopen_count = reopen_count + 1 WHERE id = :id", {"no": T.c.touched})
    # A long press more urgent than the ticket: its priority, and the deadlines for it.
    raise_ticket = Statement("UPDATE tickets SET priority = :priority, respond_by = :respond_by, "
                             "resolve_by = :resolve_by WHERE id = :id",
                             {k: T.c[k] for k in ("priority", "respond_by", "resolve_by")})
    # What a cancel button withdraws: the device's last report.
    last_report = select_sql("SELECT id, ticket_id, result, pressed_at FROM presses "
                             "WHERE device_id = :device_id AND cancelled = :no "
                             "AND result IN ('created', 'merged', 'reopened') ORDER BY id DESC LIMIT 1",
                             "id ticket_id result pressed_at",
                             binds={"no": P.c.cancelled}, columns={"pressed_at": P.c.pressed_at})
    # What a double press withdraws: the last report of its button (ix_presses_device_button: a button that
    # reported nothing for long costs no walk through every other press of the device).
    last_report_of_button = select_sql("SELECT id, ticket_id, result, pressed_at FROM presses "
                                       "WHERE device_id = :device_id AND button = :button AND cancelled = :no "
                                       "AND result IN ('created', 'merged', 'reopened') ORDER BY id DESC LIMIT 1",
                                       "id ticket_id result pressed_at",
                                       binds={"no": P.c.cancelled}, columns={"pressed_at": P.c.pressed_at})
    insert_press = insert_sql(P, "event_id device_id button press seq pressed_at bridge_received_at received_at "
                                 "late ticket_id result reason cancelled telemetry response")
    insert_event = insert_sql(E, "kind ticket_id devices actor created_at data")


@functools.cache
def merge_statement(keys: tuple[str, ...]) -> Statement:
    """``UPDATE tickets`` counting one more press and setting ``keys`` (besides ``id``), one statement per set.

    A merge names no column that an index of ``tickets`` holds (status, priority, the deadlines, ...): SQLite
    rewrites an entry in every index holding a column named in SET, changed or not, and the queue's indexes
    hold those. A reopen (``Q.reopen_ticket``) and a raise (``Q.raise_ticket``) have statements of their own.
    """
    names = [k for k in keys if k != "id"]
    return Statement(f"UPDATE tickets SET occurrences = occurrences + 1, {', '.join(f'{k} = :{k}' for k in names)} "
                     "WHERE id = :id", {k: T.c[k] for k in names})
