"""One ticket (``/tickets/<id>``): what was pressed, its device's readings, its History, and the forms that work it."""

from __future__ import annotations

import zoneinfo
from datetime import datetime
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import func, select
from sqlalchemy.orm import Session, joinedload

from dashdesk import wire

from server.context import ext
from server.desk.blueprint import web
from server.domain import events, inputs, rules, tickets
from server.domain import sites as sites_mod
from server.models import OPEN_STATUSES, Device, Event, Press, Ticket, User
from server.pages.formatting import duration, local_time, sla_state, telemetry_rows
from server.pages.session import safe_next


def describe(e: Event) -> list[str]:
    """What an event of a ticket's history says, in a few lines."""
    d = e.data or {}
    press = d.get("press", "single")
    late = " (late: it waited in the device's queue)" if d.get("late") else ""
    # A test-mode device's tickets have "test.*" events, kept off the desk's live updates.
    kind = "ticket." + e.kind.partition(".")[2] if e.kind.startswith(events.TEST + ".") else e.kind
    lines = {
        events.CREATED.name: [f"Reported by a {press} press{late}"],
        events.MERGED.name: [f"Another {press} press merged into it{late}"],
        events.REOPENED.name: [f"Reopened by a {press} press{late}"],
        events.CANCELLED.name: [f"A double press cancelled a report{late}"],
    }.get(kind)
    if lines is not None:
        raised = (d.get("changes") or {}).get("priority")
        if isinstance(raised, list) and len(raised) == 2:
            lines.append(f"Priority: {raised[0]} → {raised[1]} (a long press)")
        return lines
    out: list[str] = []
    for field, (old, new) in (d.get("changes") or {}).items():
        if field == "status":
            out.append(f"Status: {tickets.STATUS_LABELS.get(old, old)} → {tickets.STATUS_LABELS.get(new, new)}")
        elif field == "merged_into":
            continue
        else:
            out.append(f"{field.capitalize()}: {old if old is not None else '—'} → {new if new is not None else '—'}")
    if d.get("merged_into_number"):
        out.append(f"Merged into {d['merged_into_number']} (duplicate)")
    if d.get("merged_from_number"):
        moved = d.get("presses_moved", 0)
        out.append(f"{d['merged_from_number']} merged into this ticket ({moved} press{'' if moved == 1 else 'es'})")
    for key, label in (("reason", "Reason"), ("resolution", "Resolution"), ("note", "Note")):
        if d.get(key) and not (key == "resolution" and d.get("merged_into_number")):
            out.append(f"{label}: {d[key]}")
    return out or [e.kind]


def shop_time(tz_name: str | None, now: datetime) -> str:
    """The time now in a shop's time zone, as an agent calling it reads it: ``Mon 14:05``; "" for a zone unknown."""
    try:
        local = now.astimezone(zoneinfo.ZoneInfo(tz_name or "UTC"))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return ""
    return local.strftime("%a %H:%M")


MAX_PRESSES_SHOWN = 500


def ticket_page(ticket_id: int, error: str | None = None, status: int = 200, partial: bool = False) -> Any:
    """The ticket's page; ``partial``: only the parts that change, for the page's live updates (desk.js)."""
    now = wire.utcnow()
    with ext().db.read() as s:
        t = tickets.get(s, ticket_id)
        presses = s.scalars(select(Press).where(Press.ticket_id == t.id).order_by(Press.pressed_at.desc(), Press.id.desc())
                            .limit(MAX_PRESSES_SHOWN)).all()
        press_count = s.scalar(select(func.count()).select_from(Press).where(Press.ticket_id == t.id))
        history = s.scalars(select(Event).where(Event.ticket_id == t.id).order_by(Event.id)).all()
        device = s.scalar(select(Device).options(joinedload(Device.site)).where(Device.device_id == t.device_id))
        agents = s.scalars(select(User.username).where(User.active.is_(True)).order_by(User.username)).all()
        merged_into = s.get(Ticket, t.merged_into_id) if t.merged_into_id else None
        readings, probes = telemetry_rows(t.telemetry)
        # The forms a ticket in this status takes: the live page hides the others (unless they hold unsent text).
        forms = {"resolve": t.status in OPEN_STATUSES, "hold": t.status in ("new", "in_progress"),
                 "assign": t.status in OPEN_STATUSES, "priority": t.status != "closed",
                 "merge": t.status not in ("closed", "cancelled"), "note": True}
        body = render_template(
            "_ticket_live.html" if partial else "ticket.html", t=t, number=rules.ticket_number(t.id),
            presses=presses, press_count=press_count,
            history=[(e, describe(e)) for e in history], device=device, agents=agents, merged_into=merged_into,
            readings=readings, probes=probes,
            sla=sla_state(t.responded_at, t.respond_by, t.resolve_by,
                          rules.sla_start(t.created_at, t.held_s, t.on_hold_since, now), t.status, now),
            age=duration((now - t.first_reported_at).total_seconds()), error=error, forms=forms,
            labels=tickets.STATUS_LABELS, transitions=tickets.TRANSITIONS, open_statuses=OPEN_STATUSES,
            fmt=local_time, duration=duration, now=now, service_hours=sites_mod.format_hours,
            shop_now=shop_time(t.site.timezone, now) if t.site else "")
    return body, status


@web.get("/tickets/<int:ticket_id>")
def ticket(ticket_id: int) -> Any:
    return ticket_page(ticket_id, partial=bool(request.args.get("partial")))


def _target(s: Session, text_: str) -> Ticket:
    number = rules.parse_ticket_number(text_ or "")
    target = s.get(Ticket, number) if number and number < 2**63 else None
    if target is None:
        raise tickets.TicketError(f"there is no ticket {text_.strip()[:30] or '(none given)'} to merge into")
    return target


def _do(action: str, s: Session, t: Ticket, me: str, form: Any) -> str:
    """Run one desk action; return what to tell the agent."""
    number = rules.ticket_number(t.id)
    if action == "take":
        tickets.take(s, t, me)
        return f"You took {number}."
    if action == "assign":
        tickets.assign(s, t, me, form.get("assignee", "").strip() or None)
        return f"{number} is assigned to {t.assignee or 'nobody'}."
    if action == "start":
        tickets.start(s, t, me)
        return f"{number} is in progress."
    if action == "hold":
        tickets.hold(s, t, me, form.get("reason"))
        return f"{number} is on hold."
    if action == "resolve":
        tickets.resolve(s, t, me, form.get("resolution"))
        return f"{number} is resolved."
    if action == "close":
        tickets.close(s, t, me)
        return f"{number} is closed."
    if action == "cancel":
        tickets.cancel(s, t, me)
        return f"{number} is cancelled."
    if action == "reopen":
        tickets.reopen(s, t, me)
        return f"{number} is open again."
    if action == "priority":
        value = inputs.parse_int(form.get("priority", ""), low=1, high=4)
        if value is None:
            raise tickets.TicketError("choose a priority from 1 (most urgent) to 4")
        tickets.set_priority(s, t, me, value)
        return f"{number} has priority {value}."
    if action == "note":
        tickets.add_note(s, t, me, form.get("note"))
        return "Note added."
    if action == "merge":
        target = _target(s, form.get("target", ""))
        tickets.merge(s, t, target, me)
        return f"{number} was merged into {rules.ticket_number(target.id)}."
    abort(404)


@web.post("/tickets/<int:ticket_id>/<action>")
def ticket_action(ticket_id: int, action: str) -> Any:
    if action not in tickets.ACTIONS:
        abort(404)
    try:
        with ext().db.write() as s:
            t = tickets.get(s, ticket_id)
            message = _do(action, s, t, current_user.username, request.form)
    except tickets.TicketError as exc:
        message = str(exc)
        message = message[0].upper() + message[1:]
        if request.form.get("next"):
            flash(message, "error")
            return redirect(safe_next(request.form["next"]), 303)
        return ticket_page(ticket_id, error=message, status=409)
    flash(message, "ok")
    return redirect(safe_next(request.form.get("next") or url_for("web.ticket", ticket_id=ticket_id)), 303)
