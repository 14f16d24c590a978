"""Test mode per device, through the real press path (``POST /api/v1/incidents``) on both SQL paths.

Its presses are acked as usual but make ``is_test`` tickets: out of the desk's queue, out of the API's listing
unless ``include_tests``, never merged with real tickets; the device page lists them; turning test mode off
closes the open ones."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from server.models import Event, Ticket

from .conftest import Desk, api, audit_rows, post, press


@pytest.fixture
def app(paths_app):
    return paths_app


@pytest.fixture
def shop(app):
    """Site hs-01 with active devices till-1 and till-2, whose b1 reports "till"."""
    assert api(app, "POST", "/api/v1/sites", json={"code": "hs-01", "name": "High Street"}).status_code == 201
    for device in ("till-1", "till-2"):
        assert api(app, "POST", "/api/v1/devices", json={"device_id": device, "site": "hs-01"}).status_code == 201
        api(app, "PUT", f"/api/v1/devices/{device}/buttons/b1", json={"category": "till", "label": "Till"})
    return app


def listed(app, **params) -> list[int]:
    r = api(app, "GET", "/api/v1/tickets", query_string={"limit": 500, **params})
    assert r.status_code == 200, r.text
    return [t["id"] for t in r.get_json()["items"]]


def test_a_test_press_is_acked_and_its_ticket_stays_out_of_the_queue_and_the_list(shop):
    admin = Desk(shop, "admin")
    real = press(shop, device_id="till-2", button="b1")
    r = post(admin, "/admin/devices/till-1/test-mode", "/admin/devices/till-1", on="1")
    assert r.status_code == 303
    page = admin.c.get("/admin/devices/till-1").text
    assert "till-1 is in test mode" in page and "On: its presses make test tickets" in page
    ack = press(shop, device_id="till-1", button="b1")
    # acked as usual, but not merged into the real open till ticket of the same site
    assert ack["result"] == "created" and ack["ticket"]["id"] != real["ticket"]["id"]
    assert ack["ticket"]["category"] == "till"
    test_id = ack["ticket"]["id"]
    ticket = api(shop, "GET", f"/api/v1/tickets/{test_id}").get_json()
    assert ticket["is_test"] is True and ticket["title"] == "[test] Till at High Street"
    assert [e["kind"] for e in ticket["history"]] == ["test.created"]
    assert "Reported by a single press" in admin.c.get(f"/tickets/{test_id}").text  # its history reads as any
    # a second test press merges into the test ticket, never into the real one
    again = press(shop, device_id="till-1", button="b1")
    assert again["result"] == "merged" and again["ticket"]["id"] == test_id
    assert api(shop, "GET", f"/api/v1/tickets/{real['ticket']['id']}").get_json()["occurrences"] == 1
    # a real press of another device merges into the real ticket, not the test one
    other = press(shop, device_id="till-2", button="b1")
    assert other["result"] == "merged" and other["ticket"]["id"] == real["ticket"]["id"]
    # out of the queue and the API's listing; in the listing with include_tests
    queue = Desk(shop, "ann").c.get("/").text
    assert f"INC-{test_id:06d}" not in queue and f"INC-{real['ticket']['id']:06d}" in queue
    assert listed(shop) == [real["ticket"]["id"]]
    assert listed(shop, status="open") == [real["ticket"]["id"]]
    assert listed(shop, device_id="till-1") == []
    assert listed(shop, include_tests="true") == [test_id, real["ticket"]["id"]]
    assert listed(shop, include_tests="true", device_id="till-1") == [test_id]
    assert "1</strong> open tickets" in admin.c.get("/admin").text  # the overview counts real ones
    # the device page lists its test tickets
    page = admin.c.get("/admin/devices/till-1").text
    assert f'<tr data-ticket="{test_id}">' in page and "No test tickets." not in page
    # its tickets topic lists the open test ticket (the button shows its state)
    assert [t["id"] for t in api(shop, "GET", "/api/v1/devices/till-1/tickets").get_json()["tickets"]] == [test_id]


def test_turning_test_mode_off_closes_the_open_test_tickets_and_presses_report_again(shop):
    admin = Desk(shop, "admin")
    assert api(shop, "PATCH", "/api/v1/devices/till-1", json={"test_mode": True}).get_json()["test_mode"] is True
    test_id = press(shop, device_id="till-1", button="b1")["ticket"]["id"]
    r = post(admin, "/admin/devices/till-1/test-mode", "/admin/devices/till-1", on="0")
    assert r.status_code == 303
    assert "till-1 reports for real again. 1 open test ticket closed." in admin.c.get("/admin/devices/till-1").text
    closed = api(shop, "GET", f"/api/v1/tickets/{test_id}").get_json()
    assert closed["status"] == "closed" and closed["history"][-1]["kind"] == "test.updated"
    assert closed["history"][-1]["devices"] == ["till-1"]  # the bridge refreshes the device's tickets topic
    assert api(shop, "GET", "/api/v1/devices/till-1/tickets").get_json()["tickets"] == []
    real = press(shop, device_id="till-1", button="b1")
    assert real["result"] == "created" and real["ticket"]["id"] != test_id
    assert listed(shop) == [real["ticket"]["id"]]
    rows = [(a.actor, a.action, a.details) for a in audit_rows(shop, "device.test_mode")]
    assert rows == [("token:admin (bootstrap)", "device.test_mode", {"on": True}),
                    ("admin", "device.test_mode", {"on": False, "closed": [f"INC-{test_id:06d}"]})]


def test_a_real_ticket_open_before_test_mode_takes_no_test_press(shop):
    real = press(shop, device_id="till-1", button="b1")
    api(shop, "PATCH", "/api/v1/devices/till-1", json={"test_mode": True})
    test = press(shop, device_id="till-1", button="b1", press="long")
    assert test["result"] == "created" and test["ticket"]["id"] != real["ticket"]["id"]
    with shop.extensions["dashdesk"].db.read() as s:
        tickets = {t.id: (t.is_test, t.scope, t.occurrences) for t in s.scalars(select(Ticket))}
        kinds = [e.kind for e in s.scalars(select(Event).order_by(Event.id))]
    assert tickets == {real["ticket"]["id"]: (False, tickets[real["ticket"]["id"]][1], 1),
                       test["ticket"]["id"]: (True, "test:device:till-1", 1)}
    assert kinds == ["ticket.created", "test.created"]  # the desk's live updates announce no test ticket
    # a double press in test mode cancels the test report, the whole pipe works as for real
    cancel = press(shop, device_id="till-1", button="b1", press="double")
    assert cancel["result"] == "cancelled" and cancel["ticket"]["id"] == test["ticket"]["id"]
    assert api(shop, "GET", f"/api/v1/tickets/{real['ticket']['id']}").get_json()["status"] == "new"


def test_the_test_mode_form_is_for_admins_with_its_csrf_token(shop):
    admin, ann = Desk(shop, "admin"), Desk(shop, "ann")
    path = "/admin/devices/till-1/test-mode"
    assert admin.c.post(path, data={"on": "1"}).status_code == 400
    assert ann.c.post(path, data={"csrf_token": ann.token("/"), "on": "1"}).status_code == 403
    bridge = api(shop, "POST", "/api/v1/tokens", json={"name": "b", "role": "bridge"}).get_json()["token"]
    r = shop.test_client().patch("/api/v1/devices/till-1", json={"test_mode": True},
                                 headers={"Authorization": f"Bearer {bridge}"})
    assert r.status_code == 403
    assert api(shop, "GET", "/api/v1/devices/till-1").get_json()["test_mode"] is False
    assert audit_rows(shop, "device.test_mode") == []


def test_turning_test_mode_off_ends_the_hold_of_a_test_ticket_it_closes(shop):
    """A held test ticket it closes keeps no hold running: the hold is counted, as when an agent ends one."""
    api(shop, "PATCH", "/api/v1/devices/till-1", json={"test_mode": True})
    held_id = press(shop, device_id="till-1", button="b1")["ticket"]["id"]
    r = api(shop, "PATCH", f"/api/v1/tickets/{held_id}", json={"status": "on_hold", "note": "checking the cable"})
    assert r.status_code == 200 and r.get_json()["on_hold_since"] is not None
    with shop.extensions["dashdesk"].db.write() as s:
        t = s.get(Ticket, held_id)
        t.on_hold_since -= timedelta(minutes=10)  # on hold for ten minutes
    assert api(shop, "PATCH", "/api/v1/devices/till-1", json={"test_mode": False}).status_code == 200
    closed = api(shop, "GET", f"/api/v1/tickets/{held_id}").get_json()
    assert closed["status"] == "closed" and closed["on_hold_since"] is None
    assert 600 <= closed["held_s"] <= 605
    last = closed["history"][-1]
    assert last["kind"] == "test.updated" and last["data"]["changes"] == {"status": ["on_hold", "closed"]}
    assert last["data"]["sla_paused_s"] == closed["held_s"]
    with shop.extensions["dashdesk"].db.read() as s:
        assert s.scalars(select(Ticket.id).where(Ticket.on_hold_since.is_not(None))).all() == []
