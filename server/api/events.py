"""The event feed (``GET /api/v1/events``): what happened to tickets, in order, for the bridge and scripts."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from server.api import schemas
from server.api.auth import auth
from server.api.blueprint import api
from server.api.tickets import event_dict
from server.context import ext
from server.domain import devices as devices_mod
from server.models import Event


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
