"""The server's press rules, through the API on a real SQLite database."""

import threading
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text, update

from dashdesk import wire
from server.app import create_app
from server.models import Press, Ticket

from .conftest import TOKEN


@pytest.fixture(params=[True, False], ids=["sqlite-cursor", "session"])
def app(request, tmp_path, monkeypatch):
    """Every rule below holds both on the fast path (sqlite3's cursor) and through the session."""
    monkeypatch.setenv("DASHDESK_ADMIN_TOKEN", TOKEN)
    app = create_app({"data_dir": str(tmp_path),
                      "server": {"reopen_window_s": 3600, "sqlite_fast_path": request.param}})
    yield app
    app.extensions["dashdesk"].db.close()


def press(client, device="shop-1", button="b1", kind="single", event_id=None, pressed_at=None, **extra):
    body = {"event_id": event_id or str(uuid.uuid4()), "device_id": device, "button": button, "press": kind,
            "pressed_at": wire.format_time(pressed_at or wire.utcnow()), **extra}
    r = client.post("/api/v1/incidents", json=body, headers={"Idempotency-Key": body["event_id"]})
    assert r.status_code in (200, 201), r.get_json()
    return r.get_json()


def test_first_press_creates_and_answers_201(client):
    body = {"event_id": "e1", "device_id": "shop-1", "button": "b1", "pressed_at": wire.format_time(wire.utcnow())}
    r = client.post("/api/v1/incidents", json=body, headers={"Idempotency-Key": "e1"})
    assert r.status_code == 201 and r.get_json()["result"] == "created"
    again = client.post("/api/v1/incidents", json=body, headers={"Idempotency-Key": "e1"})
    assert again.status_code == 200 and again.get_json() == r.get_json()


def test_concurrent_replays_of_one_press_count_once(app, client):
    event_id = str(uuid.uuid4())
    answers = []

    def send():
        own = app.test_client()
        own.environ_base.update(client.environ_base)
        answers.append(press(own, event_id=event_id))

    threads = [threading.Thread(target=send) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({str(a) for a in answers}) == 1
    with app.extensions["dashdesk"].db.read() as s:
        assert s.scalar(select(func.count()).select_from(Press)) == 1
        assert s.scalar(select(Ticket.occurrences)) == 1


def test_long_press_merging_raises_the_ticket_priority(client):
    client.put("/api/v1/devices/shop-1/buttons/b1", json={"category": "printer"})
    first = press(client)
    press(client, kind="long")
    t = client.get(f"/api/v1/tickets/{first['ticket']['id']}").get_json()
    assert t["priority"] == 2 and t["occurrences"] == 2


def test_ticket_resolved_longer_ago_than_the_window_is_not_reopened(app, client):
    first = press(client)
    client.patch(f"/api/v1/tickets/{first['ticket']['id']}", json={"status": "resolved"})
    with app.extensions["dashdesk"].db.write() as s:
        s.execute(update(Ticket).values(resolved_at=wire.utcnow() - timedelta(seconds=3601)))
    again = press(client)
    assert again["result"] == "created" and again["ticket"]["id"] != first["ticket"]["id"]


def test_double_press_after_the_cancel_window_is_rejected(client):
    old = wire.utcnow() - timedelta(seconds=121)
    press(client, pressed_at=old)
    answer = press(client, kind="double")
    assert answer["result"] == "rejected" and "120" in answer["reason"]


def test_double_press_cannot_cancel_a_ticket_an_agent_touched(client):
    first = press(client)
    client.patch(f"/api/v1/tickets/{first['ticket']['id']}", json={"assignee": "ann"})
    answer = press(client, kind="double")
    assert answer["result"] == "rejected" and "handled" in answer["reason"]


def test_double_press_undoes_a_merge_without_cancelling_the_ticket(client):
    first = press(client)
    press(client)
    answer = press(client, kind="double")
    assert answer["result"] == "cancelled" and answer["ticket"]["status"] == "new"
    assert client.get(f"/api/v1/tickets/{first['ticket']['id']}").get_json()["occurrences"] == 1


def test_double_press_withdraws_a_reopen_and_the_ticket_is_resolved_again(client):
    first = press(client)
    tid = first["ticket"]["id"]
    client.patch(f"/api/v1/tickets/{tid}", json={"status": "resolved"})  # an agent's resolve touches it
    assert press(client)["result"] == "reopened"
    answer = press(client, kind="double")
    assert answer["result"] == "cancelled" and answer["ticket"]["status"] == "resolved"
    t = client.get(f"/api/v1/tickets/{tid}").get_json()
    assert (t["status"], t["reopen_count"], t["occurrences"]) == ("resolved", 0, 1)
    assert [p["cancelled"] for p in t["presses"]] == [False, True, False]


def test_a_reopened_ticket_an_agent_took_up_again_cannot_be_withdrawn(client):
    tid = press(client)["ticket"]["id"]
    client.patch(f"/api/v1/tickets/{tid}", json={"status": "resolved"})
    assert press(client)["result"] == "reopened"
    client.patch(f"/api/v1/tickets/{tid}", json={"assignee": "ann"})
    answer = press(client, kind="double")
    assert answer["result"] == "rejected" and "handled" in answer["reason"]
    assert client.get(f"/api/v1/tickets/{tid}").get_json()["status"] == "new"


def test_withdrawing_a_reopen_keeps_the_ticket_open_for_a_later_report(client):
    for device in ("shop-1", "shop-2"):
        client.post("/api/v1/devices", json={"device_id": device, "site": "hs-01", "site_name": "High Street"})
        client.put(f"/api/v1/devices/{device}/buttons/b1", json={"category": "printer"})
    tid = press(client)["ticket"]["id"]
    client.patch(f"/api/v1/tickets/{tid}", json={"status": "resolved"})
    assert press(client)["result"] == "reopened"
    assert press(client, device="shop-2")["result"] == "merged"
    answer = press(client, kind="double")
    # shop-2's report came after the reopen: it is not lost, the ticket stays open
    assert answer["result"] == "cancelled" and answer["ticket"]["status"] == "new"
    t = client.get(f"/api/v1/tickets/{tid}").get_json()
    assert (t["status"], t["reopen_count"], t["occurrences"]) == ("new", 1, 2)


def test_double_press_mapped_to_a_category_reports_it(client):
    client.put("/api/v1/devices/shop-1/buttons/b1", json={"category": "network", "press": "double"})
    answer = press(client, kind="double")
    assert answer["result"] == "created" and answer["ticket"]["category"] == "network"


def test_the_schema_loads_the_bridges_body_as_it_was_made():
    """``IncidentIn`` takes exactly ``wire.IncidentBody``'s fields, and loads what the bridge sends back into
    the body it made (the server hands that to the domain as it is)."""
    import dataclasses

    from server.api.schemas import IncidentIn

    assert set(IncidentIn().fields) == {f.name for f in dataclasses.fields(wire.IncidentBody)}
    press = wire.parse_press("shop-1", wire.new_press("shop-1", "b2", "double", seq=3,
                                                      telemetry={"probes": {"net": {"ok": True}}}).to_json())
    now = wire.utcnow().replace(microsecond=123000)
    for body in (wire.IncidentBody.of(press, press.telemetry, now),
                 wire.IncidentBody(press.event_id, "shop-1", "b1", "single", press.pressed_at)):
        assert wire.IncidentBody(**IncidentIn().load(body.to_dict())) == body


def test_lateness_counts_from_when_the_bridge_received_the_press(app, client):
    """A press that waited in the bridge's outbox is not late for that: ``received_at`` is the bridge's
    time, kept as the press's ``bridge_received_at``; only a press that came late to the bridge is late."""
    pressed = wire.utcnow() - timedelta(minutes=5)
    waited = press(client, pressed_at=pressed, received_at=wire.format_time(pressed + timedelta(seconds=1)))
    stale = press(client, device="shop-2", pressed_at=pressed,
                  received_at=wire.format_time(pressed + timedelta(seconds=31)))
    assert [client.get(f"/api/v1/tickets/{a['ticket']['id']}").get_json()["presses"][0]["late"]
            for a in (waited, stale)] == [False, True]
    with app.extensions["dashdesk"].db.read() as s:
        kept = s.scalar(select(Press.bridge_received_at).where(Press.ticket_id == waited["ticket"]["id"]))
    assert wire.format_time(kept) == wire.format_time(pressed + timedelta(seconds=1))


def test_retired_device_is_rejected_with_reason(client):
    press(client)
    client.patch("/api/v1/devices/shop-1", json={"status": "retired"})
    answer = press(client)
    assert answer["result"] == "rejected" and "retired" in answer["reason"]


def test_press_from_a_queue_is_flagged_late_and_keeps_both_times(client):
    pressed = wire.utcnow() - timedelta(minutes=5)
    answer = press(client, pressed_at=pressed)
    t = client.get(f"/api/v1/tickets/{answer['ticket']['id']}").get_json()
    p = t["presses"][0]
    assert p["late"] is True and p["pressed_at"] == wire.format_time(pressed) and p["received_at"] > p["pressed_at"]
    assert press(client, device="shop-2")["result"] == "created"
    fresh = client.get("/api/v1/tickets?device_id=shop-2").get_json()["items"][0]
    assert client.get(f"/api/v1/tickets/{fresh['id']}").get_json()["presses"][0]["late"] is False


def test_every_change_goes_on_the_event_feed(client):
    first = press(client)
    press(client)
    client.patch(f"/api/v1/tickets/{first['ticket']['id']}", json={"status": "in_progress", "note": "on it"})
    events = client.get("/api/v1/events?after=0&with_tickets=1").get_json()
    kinds = [e["kind"] for e in events["items"]]
    assert kinds == ["ticket.created", "ticket.merged", "ticket.updated"]
    assert events["items"][2]["data"]["note"] == "on it"
    assert events["device_tickets"]["shop-1"][0]["status"] == "in_progress"
    assert client.get(f"/api/v1/events?after={events['last_id']}").get_json()["items"] == []


def test_ticket_list_pages_with_a_cursor(client):
    for i in range(5):
        press(client, device=f"shop-{i}")
    page = client.get("/api/v1/tickets?limit=2").get_json()
    seen = [t["id"] for t in page["items"]]
    while page["next"]:
        page = client.get(f"/api/v1/tickets?limit=2&cursor={page['next']}").get_json()
        seen += [t["id"] for t in page["items"]]
    assert seen == sorted(seen, reverse=True) and len(seen) == 5


def test_revoked_token_is_refused(app, client):
    from server.domain.tokens import create_token

    db = app.extensions["dashdesk"].db
    token = create_token(db, "temp")
    c = app.test_client()
    assert c.get("/api/v1/tickets", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert c.get("/api/v1/tickets", headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_openapi_document_lists_the_v1_paths(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    for path in ("/api/v1/incidents", "/api/v1/tickets", "/api/v1/tickets/{ticket_id}", "/api/v1/categories",
                 "/api/v1/devices", "/api/v1/devices/{device_id}", "/api/v1/devices/{device_id}/buttons/{button}"):
        assert path in spec["paths"], path


def _stored_rows(tmp_path, fast):
    """Raw column values SQLite holds after the same presses, on one path."""
    app = create_app({"data_dir": str(tmp_path / str(fast)), "server": {"sqlite_fast_path": fast}})
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {TOKEN}"
    at = wire.parse_time("2026-11-23T10:00:00.123Z")
    for i, kind in enumerate(["single", "long", "single", "double"]):
        press(client, event_id=f"e{i}", kind=kind, pressed_at=at + timedelta(seconds=i),
              telemetry={"ip": "10.0.0.7", "probes": [{"name": "printer", "ok": False}]})
    db = app.extensions["dashdesk"].db
    with db.engine.connect() as c:
        tickets = c.execute(text("SELECT status, priority, occurrences, first_reported_at, last_reported_at, "
                                 "telemetry, devices, touched, is_test FROM tickets")).all()
        presses = c.execute(text("SELECT event_id, pressed_at, late, cancelled, result, telemetry, response "
                                 "FROM presses ORDER BY id")).all()
        events = c.execute(text("SELECT kind, devices, actor, data FROM events ORDER BY id")).all()
    db.close()
    return tickets, presses, events


def test_the_fast_path_stores_exactly_what_the_session_stores(tmp_path, monkeypatch):
    monkeypatch.setenv("DASHDESK_ADMIN_TOKEN", TOKEN)
    fast, portable = _stored_rows(tmp_path, True), _stored_rows(tmp_path, False)
    assert fast == portable
    tickets, presses, _ = fast
    assert tickets[0][3] == "2026-11-23 10:00:00.123000"  # SQLAlchemy's own DATETIME text, in UTC
    assert [p[4] for p in presses] == ["created", "merged", "merged", "cancelled"]


def test_first_seen_is_the_first_contact_of_any_device_and_stays(client, app):
    from server.models import Device

    t0 = wire.utcnow()
    client.post("/api/v1/devices", json={"device_id": "added-1", "site": "hs-01"})  # added by an admin
    client.post("/api/v1/devices", json={"device_id": "added-2", "site": "hs-01"})
    press(client, device="pending-1")

    def seen():
        with app.extensions["dashdesk"].db.read() as s:
            return {d.device_id: (d.first_seen_at, d.last_seen_at) for d in s.scalars(select(Device))}

    assert seen()["added-1"] == (None, None) and seen()["pending-1"][0] is not None
    press(client, device="added-1")
    first, last = seen()["added-1"]
    assert first is not None and first == last and first >= t0
    press(client, device="added-1")
    assert seen()["added-1"][0] == first and seen()["added-1"][1] >= first  # the first press stays the first
    pending_first = seen()["pending-1"][0]
    press(client, device="pending-1")
    assert seen()["pending-1"][0] == pending_first
    # a device that comes online before it ever presses: its first contact too
    assert client.post("/api/v1/devices/added-2/status", json={"online": True}).status_code == 204
    assert seen()["added-2"][0] is not None and seen()["added-2"][0] == seen()["added-2"][1]
