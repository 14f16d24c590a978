"""Replacing a broken device, through the real press path on both SQL paths: the new one takes its site, its
button mapping (copied: the mapping belongs to the place) and its open tickets (listed on the new device's
``tickets`` topic, and its presses merge into them, device-scoped categories included); the old one is retired."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from server.domain.devices import open_tickets_by_device
from server.models import ButtonMapping, Ticket

from .conftest import Desk, api, audit_rows, post, press


@pytest.fixture
def app(paths_app):
    return paths_app


@pytest.fixture
def shop(app):
    """Site hs-01: till-1 (b1 till, b2 printer, double press of b1 cancels) and till-2 (b2 printer).
    "till" merges per device, "printer" per site."""
    assert api(app, "POST", "/api/v1/sites", json={"code": "hs-01", "name": "High Street"}).status_code == 201
    for device in ("till-1", "till-2"):
        api(app, "POST", "/api/v1/devices", json={"device_id": device, "site": "hs-01"})
        api(app, "PUT", f"/api/v1/devices/{device}/buttons/b2", json={"category": "printer", "label": "Printer"})
    api(app, "PUT", "/api/v1/devices/till-1/buttons/b1", json={"category": "till", "label": "Till 1"})
    api(app, "PUT", "/api/v1/devices/till-1/buttons/b1", json={"press": "double", "action": "cancel"})
    assert api(app, "PATCH", "/api/v1/categories/till", json={"dedup_scope": "device"}).status_code == 200
    return app


def mapping_of(app, device_id):
    with app.extensions["dashdesk"].db.read() as s:
        return sorted((m.button, m.press, m.action, m.category.slug if m.category else None, m.label)
                      for m in s.scalars(select(ButtonMapping).where(ButtonMapping.device_id == device_id)))


def topic(app, device_id):
    return [t["id"] for t in api(app, "GET", f"/api/v1/devices/{device_id}/tickets").get_json()["tickets"]]


def test_a_new_device_takes_over_site_mapping_and_open_tickets_and_its_presses_merge(shop):
    till = press(shop, device_id="till-1", button="b1")["ticket"]  # device scope: device:till-1
    printer = press(shop, device_id="till-2", button="b2")["ticket"]  # site scope; till-1 merges into it
    assert press(shop, device_id="till-1", button="b2")["result"] == "merged"
    own = press(shop, device_id="till-9", button="b7")["ticket"]  # the new button pressed once: pending, unplaced
    old_mapping = mapping_of(shop, "till-1")
    admin = Desk(shop, "admin")
    r = post(admin, "/admin/devices/till-1/replace", "/admin/devices/till-1", by="till-9")
    assert r.status_code == 303 and r.headers["Location"] == "/admin/devices/till-9"
    page = admin.c.get("/admin/devices/till-9").text
    assert ("till-9 replaced till-1: site hs-01, 3 button mappings, 2 open tickets "
            f"(INC-{till['id']:06d}, INC-{printer['id']:06d}). till-1 is retired.") in page
    new, old = (api(shop, "GET", f"/api/v1/devices/{d}").get_json() for d in ("till-9", "till-1"))
    assert (new["status"], new["site"]) == ("active", "hs-01")
    assert (old["status"], old["replaced_by"]) == ("retired", "till-9")
    assert mapping_of(shop, "till-9") == old_mapping and mapping_of(shop, "till-1") == old_mapping  # copied
    # the tickets it reported name the new device; its tickets topic lists both
    assert api(shop, "GET", f"/api/v1/tickets/{till['id']}").get_json()["device_id"] == "till-9"
    assert api(shop, "GET", f"/api/v1/tickets/{printer['id']}").get_json()["device_id"] == "till-2"
    assert topic(shop, "till-9") == [till["id"], printer["id"], own["id"]]
    assert topic(shop, "till-1") == [till["id"], printer["id"]]
    assert [t["id"] for t in api(shop, "GET", "/api/v1/tickets?device_id=till-9").get_json()["items"]] == [
        own["id"], till["id"]]
    # its presses merge: the device-scoped till ticket and the site's printer ticket
    a = press(shop, device_id="till-9", button="b1")
    b = press(shop, device_id="till-9", button="b2")
    assert (a["result"], a["ticket"]["id"]) == ("merged", till["id"])
    assert (b["result"], b["ticket"]["id"]) == ("merged", printer["id"])
    with shop.extensions["dashdesk"].db.read() as s:
        assert s.get(Ticket, till["id"]).scope == "device:till-9"
    # the double press mapping came along: it withdraws the last report of b1 on the new device (the till one)
    withdrawn = press(shop, device_id="till-9", button="b1", press="double")
    assert (withdrawn["result"], withdrawn["ticket"]["id"]) == ("cancelled", till["id"])
    # the old one is refused
    assert press(shop, device_id="till-1", button="b1")["reason"] == "device retired"
    history = api(shop, "GET", f"/api/v1/tickets/{till['id']}").get_json()["history"]
    taken = [e for e in history if e["kind"] == "ticket.updated"]
    assert taken[0]["data"]["changes"] == {"device_id": ["till-1", "till-9"]}
    assert set(taken[0]["devices"]) >= {"till-1", "till-9"}  # the bridge refreshes both tickets topics
    rows = {(a.action, a.target): a.details for a in audit_rows(shop) if a.action.startswith("device.replace")}
    assert rows[("device.replace", "device:till-1")] == {
        "by": "till-9", "was": "active", "mappings": 3,
        "tickets": [f"INC-{till['id']:06d}", f"INC-{printer['id']:06d}"]}
    assert rows[("device.replaces", "device:till-9")]["replaces"] == "till-1"


def test_the_replaced_device_is_retired_by_the_retire_step_with_its_audit_row(shop):
    r = api(shop, "POST", "/api/v1/devices/till-1/replace", json={"by": "till-9"})
    assert r.status_code == 200, r.text
    rows = [(a.action, a.target, a.details) for a in audit_rows(shop) if a.target == "device:till-1"]
    assert [(action, details.get("was"), details.get("reason")) for action, _, details in rows][-2:] == [
        ("device.retire", "active", "replaced by till-9"), ("device.replace", "active", None)]
    # an old device retired before is not retired again: the replacement alone is recorded
    assert api(shop, "POST", "/api/v1/devices/till-2/retire", json={"reason": "broken"}).status_code == 200
    assert api(shop, "POST", "/api/v1/devices/till-2/replace", json={"by": "till-8"}).status_code == 200
    assert [a.action for a in audit_rows(shop) if a.target == "device:till-2"][-2:] == [
        "device.retire", "device.replace"]
    assert [a.details.get("reason") for a in audit_rows(shop, "device.retire") if a.target == "device:till-2"] == [
        "broken"]


def test_a_resolved_device_scoped_ticket_is_reopened_by_the_new_device(shop):
    till = press(shop, device_id="till-1", button="b1")["ticket"]
    assert api(shop, "PATCH", f"/api/v1/tickets/{till['id']}", json={"status": "resolved"}).status_code == 200
    r = api(shop, "POST", "/api/v1/devices/till-1/replace", json={"by": "till-new"})
    assert r.status_code == 200
    body = r.get_json()
    assert body["tickets"] == [] and body["mappings"] == 3  # nothing open to take over
    assert (body["device"]["device_id"], body["device"]["status"], body["device"]["site"]) == (
        "till-new", "active", "hs-01")  # unknown until now: created
    assert body["replaced"]["status"] == "retired" and body["device"]["broker"]["credentials"] == "not_needed"
    again = press(shop, device_id="till-new", button="b1")
    assert (again["result"], again["ticket"]["id"]) == ("reopened", till["id"])


def test_a_replacement_in_test_mode_reports_for_real_and_chains_of_replacements_keep_the_tickets(shop):
    till = press(shop, device_id="till-1", button="b1")["ticket"]
    api(shop, "POST", "/api/v1/devices", json={"device_id": "till-b", "status": "pending"})
    api(shop, "PATCH", "/api/v1/devices/till-b", json={"test_mode": True})
    press(shop, device_id="till-b", button="b1")  # the installer's test press before the swap
    assert api(shop, "POST", "/api/v1/devices/till-1/replace", json={"by": "till-b"}).status_code == 200
    assert api(shop, "GET", "/api/v1/devices/till-b").get_json()["test_mode"] is False
    assert press(shop, device_id="till-b", button="b1")["ticket"]["id"] == till["id"]
    assert api(shop, "POST", "/api/v1/devices/till-b/replace", json={"by": "till-c"}).status_code == 200
    assert topic(shop, "till-c") == [till["id"]]
    # asked together (as the event feed asks for every device an event names): each list is whole
    with shop.extensions["dashdesk"].db.read() as s:
        lists = open_tickets_by_device(s, ["till-1", "till-b", "till-c"])
    assert {d: [t["id"] for t in ts] for d, ts in lists.items()} == {
        "till-1": [till["id"]], "till-b": [till["id"]], "till-c": [till["id"]]}
    assert press(shop, device_id="till-c", button="b1")["ticket"]["id"] == till["id"]


def test_replace_refuses_what_does_not_fit(shop):
    press(shop, device_id="stray")  # pending, no site
    cases = [("till-1", {"by": "till-1"}, 409, "cannot replace itself"),
             ("till-1", {"by": "Bad Id"}, 400, "Validation error"),
             ("ghost", {"by": "till-7"}, 404, "no device ghost"),
             ("stray", {"by": "till-7"}, 409, "only an active (or retired) device is replaced")]
    for old, body, status, message in cases:
        r = api(shop, "POST", f"/api/v1/devices/{old}/replace", json=body)
        assert r.status_code == status and message in r.get_json()["error"]["message"], (old, r.text)
    api(shop, "POST", "/api/v1/devices/till-2/retire", json={})
    r = api(shop, "POST", "/api/v1/devices/till-1/replace", json={"by": "till-2"})
    assert r.status_code == 409 and "a retired device cannot take another's place" in r.get_json()["error"]["message"]
    assert api(shop, "GET", "/api/v1/devices/till-1").get_json()["status"] == "active"  # nothing changed
    assert not [a for a in audit_rows(shop) if a.action.startswith("device.replace")]
    admin = Desk(shop, "admin")
    r = post(admin, "/admin/devices/till-1/replace", "/admin/devices/till-1", by="till-2")
    assert r.status_code == 303 and "a retired device cannot take" in admin.c.get(r.headers["Location"]).text


def test_the_replace_form_and_api_are_for_admins(shop):
    admin, ann = Desk(shop, "admin"), Desk(shop, "ann")
    path = "/admin/devices/till-1/replace"
    assert admin.c.post(path, data={"by": "till-9"}).status_code == 400
    assert ann.c.post(path, data={"csrf_token": ann.token("/"), "by": "till-9"}).status_code == 403
    bridge = api(shop, "POST", "/api/v1/tokens", json={"name": "b", "role": "bridge"}).get_json()["token"]
    c = shop.test_client()
    r = c.post("/api/v1/devices/till-1/replace", json={"by": "till-9"}, headers={"Authorization": f"Bearer {bridge}"})
    assert r.status_code == 403
    assert c.post("/api/v1/devices/till-1/replace", json={"by": "till-9"}).status_code == 401
    assert api(shop, "GET", "/api/v1/devices/till-1").get_json()["status"] == "active"
    assert api(shop, "GET", "/api/v1/devices/till-9").status_code == 404


def test_replacing_again_by_the_same_device_changes_nothing_and_by_another_is_refused(shop):
    till = press(shop, device_id="till-1", button="b1")["ticket"]
    first = api(shop, "POST", "/api/v1/devices/till-1/replace", json={"by": "till-9"})
    assert first.status_code == 200 and first.get_json()["already_replaced"] is False
    # the new device's own mapping changes after the swap; a request sent again must not undo it
    api(shop, "PUT", "/api/v1/devices/till-9/buttons/b3", json={"category": "printer", "label": "Back printer"})
    mapping = mapping_of(shop, "till-9")
    rows = len(audit_rows(shop))
    again = api(shop, "POST", "/api/v1/devices/till-1/replace", json={"by": "till-9"})
    assert again.status_code == 200, again.text
    body = again.get_json()
    assert body["already_replaced"] is True and (body["mappings"], body["tickets"]) == (0, [])
    assert body["device"]["device_id"] == "till-9" and body["replaced"]["replaced_by"] == "till-9"
    assert "broker" not in body["device"]  # no new credentials
    assert mapping_of(shop, "till-9") == mapping and len(audit_rows(shop)) == rows
    # another device cannot take the place of one that was replaced already
    other = api(shop, "POST", "/api/v1/devices/till-1/replace", json={"by": "till-10"})
    assert other.status_code == 409
    assert "till-1 was already replaced by till-9" in other.get_json()["error"]["message"]
    assert api(shop, "GET", "/api/v1/devices/till-10").status_code == 404
    assert api(shop, "GET", "/api/v1/devices/till-1").get_json()["replaced_by"] == "till-9"
    assert api(shop, "POST", "/api/v1/devices/till-2/replace", json={"by": "till-9"}).status_code == 200
    assert api(shop, "POST", "/api/v1/devices/till-1/replace", json={"by": "till-2"}).status_code == 409
    assert api(shop, "GET", "/api/v1/tickets/" + str(till["id"])).get_json()["device_id"] == "till-9"
    assert [a.target for a in audit_rows(shop, "device.replace")] == ["device:till-1", "device:till-2"]


def test_the_replace_page_redirects_and_a_form_sent_twice_replaces_once(shop):
    admin = Desk(shop, "admin")
    r = post(admin, "/admin/devices/till-1/replace", "/admin/devices/till-1", by="till-9")
    assert r.status_code == 303 and r.headers["Location"] == "/admin/devices/till-9"
    page = admin.c.get(r.headers["Location"]).text
    assert "till-9 replaced till-1" in page and "Replace with a new device" in page  # till-9 may be replaced later
    assert "Replace with a new device" not in admin.c.get("/admin/devices/till-1").text  # replaced already
    # the same form again (the browser's back button and resend): nothing is done a second time
    r = post(admin, "/admin/devices/till-1/replace", "/admin/devices/till-9", by="till-9")
    assert r.status_code == 303 and r.headers["Location"] == "/admin/devices/till-9"
    page = admin.c.get(r.headers["Location"]).text
    assert "till-1 was already replaced by till-9: nothing changed." in page
    assert len(audit_rows(shop, "device.replaces")) == 1
    r = post(admin, "/admin/devices/till-1/replace", "/admin/devices/till-9", by="till-8")
    assert r.status_code == 303 and r.headers["Location"] == "/admin/devices/till-1"
    page = admin.c.get(r.headers["Location"]).text
    assert "Device till-1 was already replaced by till-9; to swap that one too, replace till-9" in page
    assert api(shop, "GET", "/api/v1/devices/till-8").status_code == 404
