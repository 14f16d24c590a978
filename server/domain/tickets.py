"""What agents do to tickets: the one place that changes a ticket's status, assignee or priority.

Both the web desk (``server.desk``) and ``PATCH /api/v1/tickets/{id}``
(``server.api``) call these functions inside a ``Database.write()`` session.
Every change:

- is checked against ``TRANSITIONS`` (``TicketError`` with a message people can read otherwise);
- sets ``touched`` (a double press may no longer cancel the ticket) and, the
  first time, ``responded_at`` (from then on ``resolve_by`` is the deadline that counts);
- writes one ``Event`` row in the same transaction: the ticket's history
  (who, what, when) and the event feed the bridge follows to refresh the
  devices' retained ``tickets`` topic, and the desk's live updates.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, joinedload

from dashdesk import wire

from server.domain import inputs, rules
from server.domain import events
from server.domain.errors import NotFound
from server.models import OPEN_STATUSES, TICKET_STATUSES, Event, Press, Ticket, User

# status -> the statuses an agent may move it to. ``closed`` is final: a new press opens a new ticket.
TRANSITIONS: dict[str, frozenset[str]] = {
    "new": frozenset({"in_progress", "on_hold", "resolved", "closed", "cancelled"}),
    "in_progress": frozenset({"new", "on_hold", "resolved", "closed", "cancelled"}),
    "on_hold": frozenset({"new", "in_progress", "resolved", "closed", "cancelled"}),
    "resolved": frozenset({"new", "in_progress", "closed"}),
    "cancelled": frozenset({"new"}),
    "closed": frozenset(),
}
STATUS_LABELS = {"new": "New", "in_progress": "In progress", "on_hold": "On hold", "resolved": "Resolved",
                 "closed": "Closed", "cancelled": "Cancelled"}
MAX_TEXT = 10000
_UNSET: Any = object()


class TicketError(ValueError):
    """A change that is not allowed; ``str()`` says why, for the person who asked."""


def get(s: Session, ticket_id: int) -> Ticket:
    """The ticket of that number, with its category and site; :class:`NotFound` if there is none (a page names
    it ``INC-000042``)."""
    ticket = s.get(Ticket, ticket_id, options=[joinedload(Ticket.category), joinedload(Ticket.site)]) \
        if 0 < ticket_id < 2**63 else None
    if ticket is None:
        raise NotFound("ticket", str(ticket_id),
                       rules.ticket_number(ticket_id) if 0 < ticket_id < 10**12 else str(ticket_id))
    return ticket


def _number(ticket: Ticket) -> str:
    return rules.ticket_number(ticket.id)


def check_transition(ticket: Ticket, status: str) -> None:
    if status not in TICKET_STATUSES:
        raise TicketError(f"unknown status {status[:20]!r}")
    if status == ticket.status or status in TRANSITIONS[ticket.status]:
        return
    here = STATUS_LABELS[ticket.status].lower()
    if ticket.status == "closed":
        raise TicketError(f"{_number(ticket)} is closed; a closed ticket cannot be changed, only noted")
    allowed = ", ".join(STATUS_LABELS[s].lower() for s in sorted(TRANSITIONS[ticket.status]))
    raise TicketError(f"{_number(ticket)} is {here}; it cannot be made {STATUS_LABELS[status].lower()} "
                      f"(from {here}: {allowed})")


def set_deadlines(ticket: Ticket, now: datetime) -> None:
    """The SLA deadlines for the ticket's priority, counted from when its SLA clock started (``rules.sla_start``:
    creation, later by the time spent on hold). While on hold, as if the hold ended ``now``; leaving the hold
    counts them again."""
    start = rules.sla_start(ticket.created_at, ticket.held_s, ticket.on_hold_since, now)
    deadlines = rules.sla_deadlines(start, ticket.priority, ticket.category.sla)
    ticket.respond_by, ticket.resolve_by = deadlines.respond_by, deadlines.resolve_by


def end_hold(ticket: Ticket, now: datetime) -> int:
    """The SLA clock starts again: the hold joins the time held, and the deadlines are counted again
    from the later start (later by the hold, the category's targets unchanged). Returns the seconds of
    this hold."""
    if ticket.on_hold_since is None:
        return 0
    start = rules.sla_start(ticket.created_at, ticket.held_s, ticket.on_hold_since, now)
    held = int((start - ticket.created_at).total_seconds()) - (ticket.held_s or 0)
    ticket.on_hold_since = None
    ticket.held_s = (ticket.held_s or 0) + held
    set_deadlines(ticket, now)
    return held


def _text(value: str | None, what: str, required: bool = False) -> str | None:
    value = (value or "").strip()
    if required and not value:
        raise TicketError(f"{what} is required")
    if len(value) > MAX_TEXT:
        raise TicketError(f"{what} is longer than {MAX_TEXT} characters")
    problem = inputs.text_problem(value, multiline=True)
    if problem:
        raise TicketError(f"{what} {problem}")
    return value or None


def change(s: Session, ticket: Ticket, actor: str, *, status: str | None = None, assignee: Any = _UNSET,
           priority: int | None = None, note: str | None = None, extra: dict[str, Any] | None = None,
           now: datetime | None = None) -> Event | None:
    """Apply what is given to ``ticket`` and record it; None if nothing changed and there is no note.

    ``extra`` goes into the event's data (``reason`` of a hold, ``resolution`` of a resolve, ...).
    """
    now = now or wire.utcnow()
    note = _text(note, "a note")
    changes: dict[str, list[Any]] = {}
    if ticket.status == "closed" and (status not in (None, "closed") or assignee is not _UNSET
                                      and assignee != ticket.assignee or priority not in (None, ticket.priority)):
        raise TicketError(f"{_number(ticket)} is closed; a closed ticket cannot be changed, only noted")
    if status is not None and status != ticket.status:
        check_transition(ticket, status)
        changes["status"] = [ticket.status, status]
        if status in ("new", "in_progress", "on_hold") and ticket.status in ("resolved", "cancelled"):
            ticket.reopen_count += 1
        if ticket.status == "on_hold":
            held = end_hold(ticket, now)
            if held:
                extra = {**(extra or {}), "sla_paused_s": held}
        ticket.status = status
        if status == "on_hold":
            ticket.on_hold_since = now
        if status == "resolved":
            ticket.resolved_at = now
        elif status == "closed":
            ticket.resolved_at = ticket.resolved_at or now
        else:
            ticket.resolved_at = None
    if assignee is not _UNSET and assignee != ticket.assignee:
        changes["assignee"] = [ticket.assignee, assignee]
        ticket.assignee = assignee
    if priority is not None and priority != ticket.priority:
        if not rules.HIGHEST_PRIORITY <= priority <= rules.LOWEST_PRIORITY:
            raise TicketError(f"priority is {rules.HIGHEST_PRIORITY} (most urgent) to {rules.LOWEST_PRIORITY}")
        changes["priority"] = [ticket.priority, priority]
        ticket.priority = priority
        set_deadlines(ticket, now)
    if not changes and note is None and not extra:
        return None
    ticket.touched = True
    ticket.updated_at = now
    if ticket.responded_at is None:
        ticket.responded_at = now
    data: dict[str, Any] = {"changes": changes, "status": ticket.status}
    if note is not None:
        data["note"] = note
    data.update(extra or {})
    event = Event(kind=events.UPDATED.name if changes else events.NOTE.name, ticket_id=ticket.id,
                  devices=list(ticket.devices), actor=actor, data=data, created_at=now)
    s.add(event)
    return event


# ------------------------------------------------------------------ the desk's actions


def _must_be_open(ticket: Ticket, doing: str) -> None:
    if ticket.status not in OPEN_STATUSES:
        raise TicketError(f"{_number(ticket)} is {STATUS_LABELS[ticket.status].lower()}; only an open ticket "
                          f"can be {doing}")


def take(s: Session, ticket: Ticket, user: str) -> Event | None:
    """Assign to ``user``; a new ticket goes in progress."""
    _must_be_open(ticket, "taken")
    return change(s, ticket, user, assignee=user, status="in_progress" if ticket.status == "new" else None)


def assign(s: Session, ticket: Ticket, actor: str, username: str | None) -> Event | None:
    """Assign to an active user (``None`` or "" unassigns)."""
    if username:
        if s.scalar(select(User.id).where(User.username == username, User.active.is_(True))) is None:
            raise TicketError(f"there is no active user {username[:100]}")
    _must_be_open(ticket, "assigned")
    return change(s, ticket, actor, assignee=username or None)


def start(s: Session, ticket: Ticket, actor: str) -> Event | None:
    return change(s, ticket, actor, status="in_progress")


def hold(s: Session, ticket: Ticket, actor: str, reason: str | None) -> Event | None:
    reason = _text(reason, "a reason for the hold", required=True)
    check_transition(ticket, "on_hold")
    return change(s, ticket, actor, status="on_hold", extra={"reason": reason})


def resolve(s: Session, ticket: Ticket, actor: str, resolution: str | None) -> Event | None:
    resolution = _text(resolution, "a resolution note", required=True)
    if ticket.status == "resolved":
        raise TicketError(f"{_number(ticket)} is already resolved")
    check_transition(ticket, "resolved")
    return change(s, ticket, actor, status="resolved", extra={"resolution": resolution})


def close(s: Session, ticket: Ticket, actor: str) -> Event | None:
    if ticket.status == "closed":
        raise TicketError(f"{_number(ticket)} is already closed")
    return change(s, ticket, actor, status="closed")


def cancel(s: Session, ticket: Ticket, actor: str) -> Event | None:
    if ticket.status == "cancelled":
        raise TicketError(f"{_number(ticket)} is already cancelled")
    return change(s, ticket, actor, status="cancelled")


def reopen(s: Session, ticket: Ticket, actor: str) -> Event | None:
    if ticket.status not in ("resolved", "cancelled"):
        raise TicketError(f"{_number(ticket)} is {STATUS_LABELS[ticket.status].lower()}; only a resolved or "
                          "cancelled ticket can be reopened")
    return change(s, ticket, actor, status="new")


def set_priority(s: Session, ticket: Ticket, actor: str, priority: int) -> Event | None:
    return change(s, ticket, actor, priority=priority)


def add_note(s: Session, ticket: Ticket, actor: str, note: str | None) -> Event | None:
    return change(s, ticket, actor, note=_text(note, "a note", required=True))


def merge(s: Session, ticket: Ticket, target: Ticket, actor: str) -> Event:
    """Merge ``ticket`` into ``target``: its presses and occurrences move there, it is closed as a duplicate
    (``merged_into``; no ``resolved_at`` of its own: it is not resolved until ``target`` is), and the presses
    that would have merged into it join ``target`` from now on (``incidents._merged_target``)."""
    if target.id == ticket.id:
        raise TicketError("a ticket cannot be merged into itself")
    if ticket.status in ("closed", "cancelled"):
        raise TicketError(f"{_number(ticket)} is {STATUS_LABELS[ticket.status].lower()}; it cannot be merged")
    if target.status not in OPEN_STATUSES:
        raise TicketError(f"{_number(target)} is {STATUS_LABELS[target.status].lower()}; merge into an open "
                          "ticket")
    now = wire.utcnow()
    moved = s.execute(update(Press).where(Press.ticket_id == ticket.id).values(ticket_id=target.id)).rowcount
    devices = sorted({*target.devices, *ticket.devices})
    target_changes: dict[str, list[Any]] = {"occurrences": [target.occurrences,
                                                            target.occurrences + ticket.occurrences]}
    target.occurrences += ticket.occurrences
    target.devices = devices
    target.first_reported_at = min(target.first_reported_at, ticket.first_reported_at)
    target.last_reported_at = max(target.last_reported_at, ticket.last_reported_at)
    if ticket.priority < target.priority:
        target_changes["priority"] = [target.priority, ticket.priority]
        target.priority = ticket.priority
        set_deadlines(target, now)
    target.touched, target.updated_at = True, now
    target.responded_at = target.responded_at or now
    s.add(Event(kind=events.UPDATED.name, ticket_id=target.id, devices=devices, actor=actor, created_at=now,
                data={"changes": target_changes, "status": target.status, "merged_from": ticket.id,
                      "merged_from_number": _number(ticket), "presses_moved": moved}))
    source_changes = {"status": [ticket.status, "closed"], "merged_into": [None, target.id]}
    if ticket.status == "on_hold":
        end_hold(ticket, now)
    # A resolved_at it had (it was resolved before the merge) stays: that happened.
    ticket.status, ticket.merged_into_id = "closed", target.id
    ticket.touched, ticket.updated_at = True, now
    ticket.responded_at = ticket.responded_at or now
    event = Event(kind=events.UPDATED.name, ticket_id=ticket.id, devices=list(ticket.devices), actor=actor,
                  created_at=now, data={"changes": source_changes, "status": "closed", "resolution": "duplicate",
                                        "merged_into": target.id, "merged_into_number": _number(target)})
    s.add(event)
    return event


ACTIONS = ("take", "assign", "start", "hold", "resolve", "close", "cancel", "reopen", "priority", "note", "merge")
