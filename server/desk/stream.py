"""Live updates (``/events/stream``): server-sent events that tell open desk pages what changed."""

from __future__ import annotations

import json
import threading
import time
from typing import Any, Iterator

from flask import Response, current_app, request
from flask_login import current_user
from sqlalchemy import func, select

from dashdesk import wire

from server.context import ext
from server.desk.blueprint import web
from server.domain import events, inputs, rules, web_sessions
from server.models import Event, Ticket


# How often a live-update stream looks for new events, and sends a keep-alive comment.
POLL_S = 0.2


HEARTBEAT_S = 15.0


# How often an open stream checks that its session still holds: it ends within this once the user signs out,
# gets a new password, is disabled or changes role (the browser's reconnection then gets 401).
SESSION_CHECK_S = 1.0


# Set when the server is asked to stop: open streams end at once (see server.serve).
STOPPING = threading.Event()


class StreamSlots:
    """At most ``limit`` open streams per process: each holds one of the server's threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.open = 0

    def take(self, limit: int) -> bool:
        with self._lock:
            if self.open >= limit:
                return False
            self.open += 1
            return True

    def give(self) -> None:
        with self._lock:
            self.open -= 1


SLOTS = StreamSlots()


def _sse(event_id: int | None = None, event: str | None = None, data: Any = None, comment: str | None = None,
         retry_ms: int | None = None) -> str:
    lines = []
    if comment is not None:
        lines.append(f": {comment}")
    if retry_ms is not None:
        lines.append(f"retry: {retry_ms}")
    if event_id is not None:
        lines.append(f"id: {event_id}")
    if event is not None:
        lines.append(f"event: {event}")
    if data is not None:
        lines.append("data: " + json.dumps(data, separators=(",", ":")))
    return "\n".join(lines) + "\n\n"


@web.get("/events/stream")
def event_stream() -> Response:
    """Server-Sent Events: one ``ticket`` event per row of the event feed after ``Last-Event-ID``.

    Each says what happened to which ticket and the ticket's priority now (with ``priority_was``
    when the event changed it), so that a queue page can alert on a new priority-1 ticket. Every
    event of a test ticket (a device in test mode), whoever wrote it, is ``test.<what>`` and has
    ``"test": true``: the desk neither lists nor announces test tickets.
    Lasts ``sse_lifetime_s`` (60 s), then ends; the browser's EventSource reconnects with the
    last id it saw, so nothing is missed. A comment every 15 s keeps proxies from closing it.
    Ends within ``SESSION_CHECK_S`` (1 s) of the session's end (signed out, a new password, disabled,
    another role, expired): its reconnection is refused (401).
    """
    db = ext().db
    lifetime = current_app.config["DASHDESK_SSE_LIFETIME_S"]
    session_id = current_user.session_id
    limit = current_app.config["DASHDESK_SSE_MAX_STREAMS"]
    asked = request.headers.get("Last-Event-ID") or request.args.get("after") or ""
    with db.read() as s:
        newest = s.scalar(select(func.coalesce(func.max(Event.id), 0))) or 0
    # A cursor past the newest event (a database started anew) falls back to it, as the feed does.
    cursor = inputs.parse_int(asked)
    last = newest if cursor is None else min(cursor, newest)

    def event_data(row: Any) -> dict[str, Any]:
        data: dict[str, Any] = {"id": row.id, "kind": row.kind, "ticket_id": row.ticket_id}
        if row.is_test:
            data.update(kind=events.TEST + "." + row.kind.partition(".")[2], test=True)
        if row.ticket_id is not None:
            data.update(number=rules.ticket_number(row.ticket_id), priority=row.priority, title=row.title)
            changed = ((row.data or {}).get("changes") or {}).get("priority")
            if isinstance(changed, list) and len(changed) == 2:
                data["priority_was"] = changed[0]
        return data

    def stream() -> Iterator[str]:
        nonlocal last
        if not SLOTS.take(limit):
            # Every stream slot is taken: come back later (the page still refreshes on its own).
            yield _sse(event_id=last, retry_ms=15000, comment="busy")
            return
        try:
            yield _sse(event_id=last, retry_ms=1000, comment="dashdesk events")
            end = time.monotonic() + lifetime
            beat = time.monotonic() + HEARTBEAT_S
            check = time.monotonic() + SESSION_CHECK_S
            while time.monotonic() < end and not STOPPING.is_set():
                with db.read() as s:
                    if time.monotonic() >= check:
                        if not web_sessions.alive(s, session_id, wire.utcnow()):
                            return  # signed out meanwhile: serve this user nothing more
                        check = time.monotonic() + SESSION_CHECK_S
                    rows = s.execute(select(Event.id, Event.kind, Event.ticket_id, Event.data, Ticket.priority,
                                            Ticket.title, Ticket.is_test)
                                     .outerjoin(Ticket, Ticket.id == Event.ticket_id).where(Event.id > last)
                                     .order_by(Event.id).limit(200)).all()
                for row in rows:
                    last = row.id
                    yield _sse(event_id=row.id, event="ticket", data=event_data(row))
                if rows:
                    beat = time.monotonic() + HEARTBEAT_S
                elif time.monotonic() >= beat:
                    yield _sse(comment="ping")
                    beat = time.monotonic() + HEARTBEAT_S
                if len(rows) < 200:
                    STOPPING.wait(POLL_S)
        finally:
            SLOTS.give()

    return Response(stream(), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
