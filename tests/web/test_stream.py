"""The live-update stream: Server-Sent Events over the event feed, resumable, bounded in time and in number."""

from __future__ import annotations

import json
import re
import time

from server.desk import stream as web

from .conftest import api, press


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
    assert ('id: 2\nevent: ticket\ndata: {"id":2,"kind":"ticket.created","ticket_id":2,"number":"INC-000002",'
            '"priority":4,"title":"Other at shop-2"}\n\n') in body
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


def events_of(body: str) -> list[dict]:
    return [json.loads(line[len("data: "):]) for line in body.splitlines() if line.startswith("data: ")]


def test_stream_events_carry_the_tickets_priority_and_a_change_of_it(app, ann):
    """What a queue page needs to alert on a new priority-1 ticket, without asking again."""
    api(app, "PUT", "/api/v1/devices/shop-1/buttons/b1", json={"category": "till"})  # P2, a long press P1
    urgent = press(app, press="long")["ticket"]["id"]
    other = press(app, device_id="shop-2")["ticket"]["id"]
    ann.act(other, "priority", priority="1")
    ann.act(other, "note", note="on it")
    created, created_other, raised, noted = events_of(read_all(ann.c.get("/events/stream?after=0")))
    assert created == {"id": 1, "kind": "ticket.created", "ticket_id": urgent, "number": f"INC-{urgent:06d}",
                       "priority": 1, "title": "Till at shop-1"}
    assert created_other["priority"] == 1  # the ticket's priority now, not when the event was written
    assert raised["kind"] == "ticket.updated" and raised["priority"] == 1 and raised["priority_was"] == 4
    assert noted["kind"] == "ticket.note" and "priority_was" not in noted


def test_a_long_press_merged_into_a_lower_priority_ticket_says_it_raised_it(app, ann):
    api(app, "PUT", "/api/v1/devices/shop-1/buttons/b1", json={"category": "till"})  # P2, a long press P1
    tid = press(app)["ticket"]["id"]
    assert press(app, press="long")["result"] == "merged"
    assert press(app, press="long")["result"] == "merged"  # already P1: nothing raised
    created, raised, again = events_of(read_all(ann.c.get("/events/stream?after=0")))
    assert created["priority"] == 1 and "priority_was" not in created
    assert (raised["kind"], raised["ticket_id"], raised["priority_was"]) == ("ticket.merged", tid, 2)
    assert again["kind"] == "ticket.merged" and "priority_was" not in again
    assert "Priority: 2 → 1 (a long press)" in ann.c.get(f"/tickets/{tid}").text


# ------------------------------------------------------------------ the ticket page's live parts


def regions(html: str) -> list[str]:
    return re.findall(r'data-region="([a-z]+)"', html)


def test_ticket_partial_is_the_changing_parts_alone_without_the_forms(app, ann):
    tid = press(app)["ticket"]["id"]
    press(app)
    r = ann.c.get(f"/tickets/{tid}?partial=1")
    assert r.status_code == 200 and "<html" not in r.text
    assert r.headers["Cache-Control"] == "no-store"
    assert regions(r.text) == ["state", "facts", "buttons", "what", "telemetry", "presses", "history", "device"]
    assert "×2 presses" in r.text and r.text.count("<tr") == 3  # the head row and two presses
    assert "<textarea" not in r.text and "<select" not in r.text  # what an agent types is never replaced
    assert 'data-forms="resolve hold assign priority merge note "' in r.text
    page = ann.c.get(f"/tickets/{tid}").text
    assert regions(page) == ["facts", "state", "what", "telemetry", "presses", "history", "buttons", "device"]
    assert f'data-partial="/tickets/{tid}?partial=1"' in page


def test_ticket_partial_follows_the_status_and_the_full_page_hides_forms_it_does_not_take(app, ann):
    tid = press(app)["ticket"]["id"]
    ann.act(tid, "resolve", resolution="replaced the toner")
    part = ann.c.get(f"/tickets/{tid}?partial=1").text
    assert 'data-status="resolved"' in part and 'data-forms="priority merge note "' in part
    assert ">Reopen</button>" in part and ">Take</button>" not in part
    assert "Resolution: replaced the toner" in part
    page = ann.c.get(f"/tickets/{tid}").text
    # every form is on the page (the live page shows them again on a reopen), those not taken now hidden
    assert re.search(r'<details id="resolve-box" data-form="resolve"\s+hidden>', page)
    assert re.search(r'<details id="hold" data-form="hold"\s+hidden>', page)
    assert re.search(r'data-form="assign"\s+hidden>', page)
    assert re.search(r'<details id="merge" data-form="merge"\s+>', page)


def test_ticket_partial_signed_out_is_401_and_an_unknown_ticket_404(app, ann):
    tid = press(app)["ticket"]["id"]
    assert app.test_client().get(f"/tickets/{tid}?partial=1").status_code == 401
    assert app.test_client().get(f"/tickets/{tid}").status_code == 302  # the page itself: sign in first
    assert ann.c.get("/tickets/999?partial=1").status_code == 404
    assert ann.c.get("/tickets/0?partial=1").status_code == 404


def test_every_event_of_a_test_ticket_is_marked_test_whoever_wrote_it(app, ann):
    """A device in test mode: its presses, an agent raising the ticket to P1, a note, test mode off."""
    api(app, "PUT", "/api/v1/devices/shop-1/buttons/b1", json={"category": "till"})
    real = press(app, device_id="shop-2")["ticket"]["id"]
    assert api(app, "PATCH", "/api/v1/devices/shop-1", json={"test_mode": True}).status_code == 200
    tid = press(app)["ticket"]["id"]
    press(app)
    ann.act(tid, "priority", priority="1")
    ann.act(tid, "note", note="installer checking the button")
    api(app, "PATCH", "/api/v1/devices/shop-1", json={"test_mode": False})
    ann.act(real, "priority", priority="1")
    events = events_of(read_all(ann.c.get("/events/stream?after=0")))
    tests = [e for e in events if e["ticket_id"] == tid]
    assert [e["kind"] for e in tests] == ["test.created", "test.merged", "test.updated", "test.note", "test.updated"]
    assert all(e["test"] is True for e in tests)
    raised = tests[2]
    assert raised["priority"] == 1 and raised["priority_was"] == 2  # what a queue page would have rung for
    # a real ticket's events are as they were
    assert [(e["kind"], "test" in e) for e in events if e["ticket_id"] == real] == [("ticket.created", False),
                                                                                 ("ticket.updated", False)]
    # the feed itself keeps what each writer wrote
    kinds = [e["kind"] for e in api(app, "GET", f"/api/v1/tickets/{tid}").get_json()["history"]]
    assert kinds == ["test.created", "test.merged", "ticket.updated", "ticket.note", "test.updated"]
