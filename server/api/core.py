"""The v1 HTTP API (``/api/v1``): JSON in and out, Bearer tokens."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from apiflask import APIBlueprint, abort
from flask import request
from sqlalchemy import func, select, true, union_all
from sqlalchemy.orm import Session, defer, joinedload
from werkzeug.routing import BaseConverter

from dashdesk import wire

from server.api import schemas
from server.api.auth import auth
from server.context import ext
from server.domain import audit, categories, devices, incidents, inputs, rules, sites, tickets
from server.domain import broker_accounts as credentials
from server.domain import devices as devices_mod
from server.models import (
    OPEN_STATUSES,
    TICKET_STATUSES,
    ButtonMapping,
    Category,
    DeadLetter,
    Device,
    Event,
    Press,
    Site,
    Ticket,
)


api = APIBlueprint("api", __name__, url_prefix="/api/v1", tag="API")


def _name_but(*words: str) -> type[BaseConverter]:
    """A path segment that names a thing (a device, a site), except ``words``: at that place they are the
    API's own paths (``POST /api/v1/devices/register``), so ``GET /api/v1/devices/register`` is 405 (with
    ``Allow: POST``), not a device of that name, as the document has it."""
    return type("NameBut", (BaseConverter,), {"regex": rf"(?!(?:{'|'.join(map(re.escape, words))})(?![^/]))[^/]+"})


# A device id or a site code in a path (`<device:device_id>`, `<site:code>`): registered before the routes use them.
api.record_once(lambda state: state.app.url_map.converters.update(
    {name: _name_but(*words) for name, (_, words) in schemas.RESERVED_IN_PATH.items()}))


def _t(value: datetime | None) -> str | None:
    return wire.format_time(value) if value else None


# ---------------------------------------------------------------- incidents


@api.post("/incidents")
@api.auth_required(auth)
@api.input(schemas.IncidentIn, arg_name="body")
@api.output(schemas.Answer, status_code=201, description="a ticket was created")
@api.doc(summary="Hand over one press",
         responses={200: "merged, reopened, cancelled, rejected or a replay",
                    400: "the body is not a press, or `Idempotency-Key` is not its `event_id`"},
         description="Idempotent per device: a press is its `device_id` with its `event_id`; a replay returns the "
                     "first answer, the same `event_id` from another device is another press. The "
                     "`Idempotency-Key` header, if given, must equal `event_id`.")
def post_incident(body: dict[str, Any]) -> tuple[dict[str, Any], int]:
    key = request.headers.get("Idempotency-Key")
    if key is not None and key != body["event_id"]:
        abort(400, "Idempotency-Key does not match event_id")
    answer, first_time = incidents.handle_press(ext().db, _incoming(body), ext().settings)
    return answer, 201 if first_time and answer["result"] == "created" else 200


@api.post("/incidents/batch")
@api.auth_required(auth)
@api.input(schemas.IncidentBatchIn, arg_name="body")
@api.output(schemas.AnswerList)
@api.doc(summary="Hand over up to 500 presses in one transaction",
         description="Each press is idempotent on its `device_id` and `event_id`, as with `POST /api/v1/incidents`; "
                     "the answers come in the order of the presses. The bridge uses it when presses queue up.")
def post_incident_batch(body: dict[str, Any]) -> dict[str, Any]:
    answers = incidents.handle_presses(ext().db, [_incoming(item) for item in body["items"]], ext().settings)
    return {"items": [answer for answer, _ in answers]}


def _incoming(body: dict[str, Any]) -> incidents.IncomingPress:
    return incidents.IncomingPress(
        event_id=body["event_id"], device_id=body["device_id"], button=body["button"], press=body["press"],
        pressed_at=body["pressed_at"], seq=body["seq"], telemetry=body["telemetry"],
        bridge_received_at=body["received_at"])


# ---------------------------------------------------------------- tickets


def ticket_dict(t: Ticket) -> dict[str, Any]:
    return {
        "id": t.id, "number": rules.ticket_number(t.id), "status": t.status, "priority": t.priority,
        "category": t.category.slug, "site": t.site.code if t.site else None, "device_id": t.device_id,
        "button": t.button, "title": t.title, "occurrences": t.occurrences, "reopen_count": t.reopen_count,
        "assignee": t.assignee, "first_reported_at": _t(t.first_reported_at),
        "last_reported_at": _t(t.last_reported_at), "created_at": _t(t.created_at),
        "updated_at": _t(t.updated_at), "resolved_at": _t(t.resolved_at), "respond_by": _t(t.respond_by),
        "resolve_by": _t(t.resolve_by), "responded_at": _t(t.responded_at), "on_hold_since": _t(t.on_hold_since),
        "held_s": t.held_s, "merged_into": rules.ticket_number(t.merged_into_id) if t.merged_into_id else None,
        "telemetry": t.telemetry, "major_incident_id": t.major_incident_id, "is_test": t.is_test,
    }


def press_dict(p: Press) -> dict[str, Any]:
    return {"event_id": p.event_id, "device_id": p.device_id, "button": p.button, "press": p.press, "seq": p.seq,
            "pressed_at": _t(p.pressed_at), "received_at": _t(p.received_at), "late": p.late,
            "result": p.result, "cancelled": p.cancelled, "telemetry": p.telemetry}


def event_dict(e: Event) -> dict[str, Any]:
    return {"id": e.id, "kind": e.kind, "ticket_id": e.ticket_id, "devices": e.devices, "actor": e.actor,
            "data": e.data, "created_at": _t(e.created_at)}


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


def _ticket_or_404(s: Session, ticket_id: int) -> Ticket:
    ticket = s.get(Ticket, ticket_id) if 0 < ticket_id < 2**63 else None
    if ticket is None:
        abort(404, f"no ticket {ticket_id}")
    return ticket


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
        ticket = _ticket_or_404(s, ticket_id)
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
        ticket = _ticket_or_404(s, ticket_id)
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


# ---------------------------------------------------------------- categories


# What a category's SLA targets must be beyond what the schema says.
SLA_RULE = "an SLA target's `resolve_min` is less than its `respond_min`"


def category_dict(c: Category) -> dict[str, Any]:
    return categories.as_dict(c)


def caller_actor() -> str:
    """The audit log's name for the token calling. Which roles may call an endpoint at all is
    ``auth.allowed``'s to say, before the view runs: a bridge token gets no further than there."""
    return audit.token_actor(auth.current_user.name)


def admin_abort(exc: Exception) -> None:
    """Answer an admin action's refusal (devices.AdminError, or a field check) as a 4xx JSON error: the
    error's own ``status`` if it has one (409 for a site code taken), else 422."""
    if isinstance(exc, devices.AdminError):
        abort(exc.status, exc.message, detail=exc.detail)
    errors = getattr(exc, "errors", None)
    abort(getattr(exc, "status", 422), str(exc), detail={"fields": errors} if errors else None)


@api.get("/categories")
@api.auth_required(auth)
@api.output(schemas.CategoryList)
def list_categories() -> dict[str, Any]:
    with ext().db.read() as s:
        return {"items": [category_dict(c) for c in s.scalars(select(Category).order_by(Category.slug))]}


@api.post("/categories")
@api.auth_required(auth)
@api.input(schemas.CategoryIn, arg_name="body")
@api.output(schemas.CategoryOut, status_code=201)
@api.doc(summary="Create a category, or replace one with the same slug",
         responses={200: "a category with that slug was replaced", 422: SLA_RULE})
def post_category(body: dict[str, Any]) -> tuple[dict[str, Any], int]:
    actor = caller_actor()
    values = {k: body[k] for k in ("name", "icon", "priority", "labels", "dedup_scope", "reopen_window_min",
                                   "notify") if k in body}
    with ext().db.write() as s:
        cat = s.scalar(select(Category).where(Category.slug == body["slug"]))
        status = 200 if cat else 201
        if cat is None:
            cat = Category(slug=body["slug"], sla=ext().default_sla, labels={}, dedup_scope="site", notify=[])
            s.add(cat)
        if body["sla"] is not None:
            values["sla"] = {**cat.sla, **body["sla"]}
        try:
            values = categories.clean(values)
        except categories.CategoryError as exc:
            admin_abort(exc)
        categories.update(s, cat, values, actor, "category.create" if status == 201 else "category.update")
        return category_dict(cat), status


# ---------------------------------------------------------------- devices


def device_dict(s: Session, d: Device) -> dict[str, Any]:
    buttons = s.scalars(select(ButtonMapping).options(joinedload(ButtonMapping.category))
                        .where(ButtonMapping.device_id == d.device_id)
                        .order_by(ButtonMapping.button, ButtonMapping.press))
    telemetry = d.telemetry or {}
    return {"device_id": d.device_id, "site": d.site.code if d.site else None, "status": d.status,
            "kind": d.kind, "online": d.online, "first_seen_at": _t(d.first_seen_at),
            "last_seen_at": _t(d.last_seen_at), "telemetry": d.telemetry, "telemetry_at": _t(d.telemetry_at),
            "firmware": telemetry.get("firmware") if isinstance(telemetry.get("firmware"), str) else None,
            "test_mode": bool(d.test_mode), "replaced_by": d.replaced_by, "broker_account": d.broker_account,
            "buttons": [{"button": b.button, "press": b.press or None,
                         "category": b.category.slug if b.category else None, "label": b.label,
                         "action": b.action} for b in buttons]}


def _device_or_404(s: Session, device_id: str) -> Device:
    device = s.scalar(select(Device).where(Device.device_id == device_id))
    if device is None:
        abort(404, f"no device {device_id[:70]}")
    return device


def _site(s: Session, code: str, name: str | None, actor: str) -> Site:
    """The site of ``code`` (in any case), made if unknown (its code checked, as ``POST /api/v1/sites`` checks
    it: a bad one is 422), its name set to ``name`` if given; audited as the sites' own endpoints are."""
    site = sites.by_code(s, code)
    try:
        if site is None:
            site = sites.create(s, sites.clean({"code": code, "name": name or code}), actor)
            s.flush()
        elif name:
            sites.update(s, site, sites.clean({"name": name}, partial=True), actor)
    except sites.SiteError as exc:
        admin_abort(exc)
    return site


def _place(s: Session, device: Device, body: dict[str, Any], actor: str) -> None:
    if "site" in body:
        device.site = _site(s, body["site"], body.get("site_name"), actor) if body["site"] else None


@api.get("/devices")
@api.auth_required(auth)
@api.input(schemas.DeviceQuery, location="query", arg_name="q", unknown=None)
@api.output(schemas.DeviceList)
@api.doc(summary="List devices (all, or those with a `status` and/or at a `site`, with or without a "
                 "`broker_account`)")
def list_devices(q: dict[str, Any]) -> dict[str, Any]:
    stmt = select(Device).options(joinedload(Device.site)).order_by(Device.device_id)
    if "broker_account" in q:
        credentials.learn(ext())  # those not known yet: one question to the broker for all of them
        stmt = stmt.where(Device.broker_account.is_(True) if q["broker_account"]
                          else Device.broker_account.is_not(True))
    if "status" in q:
        stmt = stmt.where(Device.status == q["status"])
    if "site" in q:
        stmt = stmt.where(Device.site_id == sites.id_of(q["site"]))
    with ext().db.read() as s:
        return {"items": [device_dict(s, d) for d in s.scalars(stmt)]}


STATUS_DOC = ("A change of `status` goes through the step of the same name, audited as the admin pages' buttons "
              "are (`device.approve`, `device.reject`, `device.retire`). A device retired here (or created "
              "retired) loses its broker account as with `POST .../retire` (`broker`: `removed`, or `failed` "
              "with the `error`: `DELETE .../credentials` tries again); a rejected one keeps it, to hear why its "
              "presses are refused; one made active again gets new credentials from `POST .../credentials`.")


def _edit(s: Session, device: Device, body: dict[str, Any], actor: str) -> None:
    """Place the device and give it the status ``body`` asks for (the site first: an approval names it)."""
    before = {"kind": device.kind, "site": device.site.code if device.site else None}
    if "kind" in body:
        device.kind = body["kind"]
    _place(s, device, body, actor)
    s.flush()
    after = {"kind": device.kind, "site": device.site.code if device.site else None}
    if after != before:
        # A device given a site (one that pressed while pending, say) takes its unplaced open tickets there.
        placed = devices_mod.place_tickets(s, device, actor) if after["site"] != before["site"] else []
        audit.record(s, actor, "device.update", f"device:{device.device_id}",
                     changes={k: [before[k], after[k]] for k in after if after[k] != before[k]},
                     **({"placed": [rules.ticket_number(t) for t in placed]} if placed else {}))
    if "status" in body:
        try:
            devices.set_status(s, device, body["status"], actor)
        except devices.AdminError as exc:
            admin_abort(exc)


def _with_account(out: dict[str, Any], was: str | None, actor: str) -> dict[str, Any]:
    """After the commit: what the device's new status means for its broker account (``broker``, if anything)."""
    outcome = credentials.after_status(ext(), out["device_id"], was, out["status"], actor)
    if outcome is not None:
        out["broker"] = outcome.as_dict()
    return out


@api.post("/devices")
@api.auth_required(auth)
@api.input(schemas.DeviceIn, arg_name="body")
@api.output(schemas.DeviceBrokerOut, status_code=201)
@api.doc(summary="Register a device (or update the one with that id: only the fields given change)",
         description=STATUS_DOC, responses={200: "a device with that id was updated"})
def post_device(body: dict[str, Any]) -> tuple[dict[str, Any], int]:
    actor = caller_actor()
    with ext().db.write() as s:
        device = s.scalar(select(Device).where(Device.device_id == body["device_id"]))
        was = device.status if device else None
        if device is None:
            fields = {**schemas.NEW_DEVICE, **body}
            device = Device(device_id=body["device_id"], status=fields["status"], kind=fields["kind"])
            s.add(device)
            _place(s, device, body, actor)
            s.flush()
            audit.record(s, actor, "device.create", f"device:{device.device_id}", status=device.status,
                         kind=device.kind, site=device.site.code if device.site else None)
        else:
            _edit(s, device, body, actor)
        out = device_dict(s, device)
    return _with_account(out, was, actor), 200 if was else 201


@api.get("/devices/<device:device_id>")
@api.auth_required(auth)
@api.output(schemas.DeviceOut)
def get_device(device_id: str) -> dict[str, Any]:
    with ext().db.read() as s:
        return device_dict(s, _device_or_404(s, device_id))


@api.patch("/devices/<device:device_id>")
@api.auth_required(auth)
@api.input(schemas.DevicePatch, arg_name="body")
@api.output(schemas.DeviceBrokerOut)
@api.doc(summary="Change a device's site, status or test mode (`{}` changes nothing)", description=STATUS_DOC)
def patch_device(device_id: str, body: dict[str, Any]) -> dict[str, Any]:
    actor = caller_actor()
    with ext().db.write() as s:
        device = _device_or_404(s, device_id)
        was = device.status
        _edit(s, device, body, actor)
        if "test_mode" in body:
            devices.set_test_mode(s, device, body["test_mode"], actor)
        out = device_dict(s, device)
    return _with_account(out, was, actor)


@api.put("/devices/<device:device_id>/buttons/<button>")
@api.auth_required(auth)
@api.input(schemas.ButtonIn, arg_name="body")
@api.output(schemas.DeviceOut)
@api.doc(summary="Map a button (or one press type of it) to a category; effective on the next press",
         responses={404: "no such category"})
def put_button(device_id: str, button: str, body: dict[str, Any]) -> dict[str, Any]:
    actor = caller_actor()
    if not wire.valid_id(device_id) or not wire.valid_id(button):
        abort(400, f"device id and button must match {wire.ID_PATTERN.pattern}")
    with ext().db.write() as s:
        try:
            mapping = devices.check_mapping(button, body["press"], body["action"], body.get("category"),
                                            body["label"])
            device = s.scalar(select(Device).where(Device.device_id == device_id))
            if device is None:
                device = Device(device_id=device_id, status="active")
                s.add(device)
                audit.record(s, actor, "device.create", f"device:{device_id}", status="active", via="button mapping")
            devices.set_mapping(s, device, mapping, actor)
        except devices.AdminError as exc:
            admin_abort(exc)
        s.flush()
        return device_dict(s, device)


@api.post("/devices/<device:device_id>/telemetry")
@api.auth_required(auth)
@api.input(schemas.TelemetryIn, arg_name="body")
@api.output({}, status_code=204)
@api.doc(summary="Record a device's latest telemetry (the bridge forwards it)")
def post_telemetry(device_id: str, body: dict[str, Any]) -> tuple[str, int]:
    with ext().db.write() as s:
        device = _device_or_404(s, device_id)
        device.telemetry, device.telemetry_at = body["telemetry"], wire.utcnow()
    return "", 204


@api.post("/devices/<device:device_id>/status")
@api.auth_required(auth)
@api.input(schemas.StatusIn, arg_name="body")
@api.output({}, status_code=204)
@api.doc(summary="Record whether a device is online (the bridge forwards its status topic)")
def post_status(device_id: str, body: dict[str, Any]) -> tuple[str, int]:
    with ext().db.write() as s:
        device = _device_or_404(s, device_id)
        device.online = body["online"]
        if body["online"]:
            device.last_seen_at = wire.utcnow()
            device.first_seen_at = device.first_seen_at or device.last_seen_at  # its first contact
    return "", 204


@api.get("/devices/<device:device_id>/tickets")
@api.auth_required(auth)
@api.output(schemas.OpenTickets)
@api.doc(summary="The device's open tickets, as its retained `tickets` topic shows them")
def device_tickets(device_id: str) -> dict[str, Any]:
    with ext().db.read() as s:
        _device_or_404(s, device_id)
        return {"tickets": devices_mod.open_tickets_by_device(s, [device_id])[device_id]}


# ---------------------------------------------------------------- event feed


@api.get("/events")
@api.auth_required(auth)
@api.input(schemas.EventQuery, location="query", arg_name="q", unknown=None)
@api.output(schemas.EventPage)
@api.doc(summary="The event feed after an id, oldest first")
def list_events(q: dict[str, Any]) -> dict[str, Any]:
    with ext().db.read() as s:
        rows = s.scalars(select(Event).where(Event.id > q["after"]).order_by(Event.id).limit(q["limit"])).all()
        # With no news, a cursor past the newest event (a database started anew) falls back to it.
        last = rows[-1].id if rows else min(q["after"], s.scalar(select(func.coalesce(func.max(Event.id), 0))))
        out: dict[str, Any] = {"items": [event_dict(e) for e in rows], "last_id": last}
        if q["with_tickets"]:
            devices = sorted({d for e in rows for d in e.devices})
            out["device_tickets"] = devices_mod.open_tickets_by_device(s, devices)
        return out


# ---------------------------------------------------------------- dead letters


@api.post("/dead-letters")
@api.auth_required(auth)
@api.input(schemas.DeadLetterIn, arg_name="body")
@api.output({}, status_code=204)
@api.doc(summary="Keep a payload the bridge rejected (idempotent on `key`)")
def post_dead_letter(body: dict[str, Any]) -> tuple[str, int]:
    with ext().db.write() as s:
        if s.scalar(select(DeadLetter.id).where(DeadLetter.key == body["key"])) is None:
            s.add(DeadLetter(**body))
    return "", 204


@api.get("/dead-letters")
@api.auth_required(auth)
@api.output(schemas.DeadLetterList)
@api.doc(summary="Payloads the bridge rejected, newest first")
def list_dead_letters() -> dict[str, Any]:
    with ext().db.read() as s:
        rows = s.scalars(select(DeadLetter).order_by(DeadLetter.id.desc()).limit(500))
        return {"items": [{"id": d.id, "topic": d.topic, "payload_prefix": d.payload_prefix,
                           "payload_size": d.payload_size, "reason": d.reason,
                           "received_at": _t(d.received_at)} for d in rows]}
