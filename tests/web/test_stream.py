"""The live-update stream: Server-Sent Events over the event feed, resumable, bounded in time and in number."""

from __future__ import annotations

import time

from server import web

from .conftest import press


def read_all(response) -> str:
    return b"".join(response.response).decode()


def test_stream_sends_each_event_after_last_event_id_and_ends(app, ann):
    first = press(app)["ticket"]["id"]
    press(app, device_id="shop-2")
    start = time.monotonic()
    r = ann.c.get("/events/stream", headers={"Last-Event-ID": "1"})
    assert r.status_code == 200 and r.mimetype == "text/event-stream"
    assert r.headers["Cache-Control"] == "no-store"
    body = read_all(r)
    assert time.monotonic() - start < 5  # the configured lifetime (1 s here), then the browser reconnects
    assert body.startswith(": dashdesk events\nretry: 1000\nid: 1\n\n")
    assert 'id: 2\nevent: ticket\ndata: {"id":2,"kind":"ticket.created","ticket_id":2}' in body
    assert '"id":1,' not in body and first == 1


def test_stream_without_an_id_starts_at_the_newest_and_sees_new_events(app, ann):
    press(app)
    chunks = iter(ann.c.get("/events/stream").response)
    assert next(chunks).decode().endswith("id: 1\n\n")
    ann.act(1, "take")  # written while the stream is open
    rest = b"".join(chunks).decode()
    assert '"id":2,"kind":"ticket.updated","ticket_id":1' in rest


def test_a_cursor_past_the_newest_event_falls_back_to_it(app, ann):
    press(app)
    body = read_all(ann.c.get("/events/stream", headers={"Last-Event-ID": "999"}))
    assert "id: 1\n\n" in body


def test_streams_beyond_the_limit_are_told_to_come_back_later(app, ann):
    app.config["DASHDESK_SSE_MAX_STREAMS"] = 1
    first = iter(ann.c.get("/events/stream").response)
    next(first)  # holds the only slot
    second = read_all(ann.c.get("/events/stream"))
    assert second.startswith(": busy\nretry: 15000\n")
    assert "event:" not in second
    b"".join(first)  # ends, and gives its slot back
    assert web.SLOTS.open == 0


def test_serve_leaves_half_the_threads_to_everything_else():
    from server.serve import DEFAULT_THREADS, stream_slots
    assert DEFAULT_THREADS >= 32
    assert stream_slots(32, 16) == 16
    assert stream_slots(8, 16) == 4
    assert stream_slots(1, 16) == 1
