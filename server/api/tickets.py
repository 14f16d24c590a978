"""Tickets: list, read (with presses and events, paged), change (``/api/v1/tickets``)."""

from __future__ import annotations

from typing import Any

from apiflask import abort
from sqlalchemy import func, select, true, union_all
from sqlalchemy.orm import Session, defer, joinedload

from server.api import schemas
from server.api.auth import auth
from server.api.blueprint import api, time_or_none
from server.context import ext
from server.domain import inputs, rules, sites, tickets
from server.models import OPEN_STATUSES, TICKET_STATUSES, Category, Event, Press, Ticket


def ticket_dict(t: Ticket) -> dict[str, Any]:
    return {
        "id": t.id, "number": rules.ticket_number(t.id), "status": t.status, "priority": t.priority,
        "category": t.category.slug, "site": t.site.code if t.site else None, "device_id": t.device_id,
        "button": t.button, "title": t.title, "occurrences": t.occurrences, "reopen_count": t.reopen_count,
        "assignee": t.assignee, "first_reported_at": time_or_none(t.first_reported_at),
        "last_reported_at": time_or_none(t.last_reported_at), "created_at": time_or_none(t.created_at),
        "updated_at": time_or_none(t.updated_at), "resolved_at": time_or_none(t.resolved_at), "respond_by": time_or_none(t.respond_by),
        "resolve_by": time_or_none(t.resolve_by), "responded_at": time_or_none(t.responded_at), "on_hold_since": time_or_none(t.on_hold_since),
        "held_s": t.held_s, "merged_into": rules.ticket_number(t.merged_into_id) if t.merged_into_id else None,
        "telemetry": t.telemetry, "major_incident_id": t.major_incident_id, "is_test": t.is_test,
    }


def press_dict(p: Press) -> dict[str, Any]:
    return {"event_id": p.event_id, "device_id": p.device_id, "button": p.button, "press": p.press, "seq": p.seq,
            "pressed_at": time_or_none(p.pressed_at), "received_at": time_or_none(p.received_at), "late": p.late,
            "result": p.result, "cancelled": p.cancelled, "telemetry": p.telemetry}


def event_dict(e: Event) -> dict[str, Any]:
    return {"id": e.id, "kind": e.kind, "ticket_id": e.ticket_id, "devices": e.devices, "actor": e.actor,
            "data": e.data, "created_at": time_or_none(e.created_at)}


def _statuses(text: str) -> list[str]:
    wanted: list[str] = []
    for part in text.split(","):
        part = part.strip()
        if part == "open":
            wanted.extend(OPEN_STATUSES)
        elif part in TICKET_STATUSES:
            wanted.append(part)
        else:
            abort(400, f"unknown status {part[:20]!r}; one of {', '.join(TICKET_STATUSES)} or open")
    return wanted


@api.get("/tickets")
@api.auth_required(auth)
@api.input(schemas.TicketQuery, location="query", arg_name="q", unknown=None)  # None: the schema refuses unknown
@api.output(schemas.TicketPage)
@api.doc(summary="List tickets, newest first")
def list_tickets(q: dict[str, Any]) -> dict[str, Any]:
    limit = q["limit"]
    with ext().db.read() as s:
        # The page's ids first, from the indexes alone; then only those rows, with category and site.
        ids = s.scalars(_newest_ticket_ids(q, limit + 1)).all()
        rows = s.scalars(select(Ticket).options(joinedload(Ticket.category), joinedload(Ticket.site))
                         .where(Ticket.id.in_(ids[:limit])).order_by(Ticket.id.desc())).unique().all() if ids else []
        items = [ticket_dict(t) for t in rows]
    return {"items": items, "next": str(ids[limit - 1]) if len(ids) > limit else None}


def _newest_ticket_ids(q: dict[str, Any], count: int) -> Any:
    """The ids of the ``count`` newest tickets matching the listing's filters, newest first.

    Each status is its own range of ix_tickets_status_id (status, id), already newest first; several
    statuses (``open`` is three) are merged from the ``count`` newest of each, so no listing sorts
    every ticket of its statuses (at 100,000 tickets that sort took most of 100 ms).
    """
    stmt = select(Ticket.id)
    if "category" in q:
        stmt = stmt.where(Ticket.category_id == select(Category.id).where(Category.slug == q["category"])
                          .scalar_subquery())
    if "site" in q:
        stmt = stmt.where(Ticket.site_id == sites.id_of(q["site"]))
    if "device_id" in q:
        stmt = stmt.where(Ticket.device_id == q["device_id"])
    if "priority" in q:
        stmt = stmt.where(Ticket.priority == q["priority"])
    if "cursor" in q:
        stmt = stmt.where(Ticket.id < (inputs.parse_int(q["cursor"]) or 0))
    if not q.get("include_tests"):
        # The few test tickets from their partial index (ix_tickets_test), once: the walk below stays on
        # the indexes it used before test mode existed.
        tests = Ticket.__table__.alias("test_tickets")
        stmt = stmt.where(Ticket.id.not_in(select(tests.c.id).where(tests.c.is_test == true())))
    statuses = list(dict.fromkeys(_statuses(q["status"]))) if "status" in q else []
    if len(statuses) <= 1:
        if statuses:
            stmt = stmt.where(Ticket.status == statuses[0])
        return stmt.order_by(Ticket.id.desc()).limit(count)
    newest = [stmt.where(Ticket.status == status).order_by(Ticket.id.desc()).limit(count).subquery()
              for status in statuses]
    merged = union_all(*(select(each.c.id) for each in newest)).subquery()
    return select(merged.c.id).order_by(merged.c.id.desc()).limit(count)


@api.get("/tickets/<int:ticket_id>")
@api.auth_required(auth)
@api.input(schemas.TicketDetailQuery, location="query", arg_name="q", unknown=None)
@api.output(schemas.TicketDetail)
@api.doc(summary="One ticket with its newest presses and history, paged",
         description="`presses` and `history` are the ticket's newest `presses_limit` presses and `history_limit` "
                     "history entries (50 each unless asked), oldest first, with `presses_total` and "
                     "`history_total`. `presses_next` (`history_next`), when not null, is the cursor for the ones "
                     "before them: `?presses_before=<presses_next>` (`history_before`) answers the page before, "
                     "as the ticket list's `cursor` does.")
def get_ticket(ticket_id: int, q: dict[str, Any]) -> dict[str, Any]:
    with ext().db.read() as s:
        ticket = tickets.get(s, ticket_id)
        out = ticket_dict(ticket)
        presses, out["presses_total"], out["presses_next"] = _page(
            s, Press, ticket_id, q["presses_limit"], q.get("presses_before"), defer(Press.response))
        history, out["history_total"], out["history_next"] = _page(
            s, Event, ticket_id, q["history_limit"], q.get("history_before"))
        out["presses"] = [press_dict(p) for p in presses]
        out["history"] = [event_dict(e) for e in history]
    return out


def _page(s: Session, model: Any, ticket_id: int, limit: int, before: str | None,
          *options: Any) -> tuple[list[Any], int, str | None]:
    """A ticket's newest ``limit`` rows of ``model`` (presses or events) older than the cursor ``before``, oldest
    first; how many it has in all; and the cursor of the page before (None: there is none)."""
    stmt = select(model).where(model.ticket_id == ticket_id)
    if before is not None:
        stmt = stmt.where(model.id < int(before))
    rows = s.scalars(stmt.options(*options).order_by(model.id.desc()).limit(limit + 1)).all()
    total = s.scalar(select(func.count()).select_from(model).where(model.ticket_id == ticket_id))
    page = rows[:limit][::-1]
    return page, total or 0, str(page[0].id) if len(rows) > limit else None


@api.patch("/tickets/<int:ticket_id>")
@api.auth_required(auth)
@api.input(schemas.TicketPatch, arg_name="body")
@api.output(schemas.TicketOut)
@api.doc(summary="Change status, assignee or priority; add a note; or merge it into another ticket (`{}` "
                 "changes nothing)",
         responses={404: "no such ticket, or `merged_into` names no ticket",
                    409: "the change is not allowed from the ticket's status (e.g. resolving a closed ticket), or "
                         "`merged_into` is given with other fields"})
def patch_ticket(ticket_id: int, body: dict[str, Any]) -> dict[str, Any]:
    if "merged_into" in body and len(body) > 1:
        abort(409, "merged_into goes alone: a merged ticket is closed")
    fields = {k: body[k] for k in ("status", "assignee", "priority", "note") if k in body}
    with ext().db.write() as s:
        ticket = tickets.get(s, ticket_id)
        try:
            if "merged_into" in body:
                number = rules.parse_ticket_number(body["merged_into"])
                target = s.get(Ticket, number) if number and number < 2**63 else None
                if target is None:
                    abort(404, f"there is no ticket {body['merged_into'][:30]} to merge into")
                tickets.merge(s, ticket, target, auth.current_user.name)
            else:
                tickets.change(s, ticket, auth.current_user.name, **fields)
        except tickets.TicketError as exc:
            abort(409, str(exc))
        return ticket_dict(ticket)
