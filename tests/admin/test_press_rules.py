"""What admins set changes what the next press does, through the real press path
(``POST /api/v1/incidents``, as the bridge hands presses over), on both SQL paths:
device status, per-category dedup scope and reopen window, button mappings, copies of them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from dashdesk import wire
from server.models import Ticket

from .conftest import Desk, api, audit_rows, post, press


@pytest.fixture
def app(paths_app):
    return paths_app


@pytest.fixture
def shop(app):
    """Site hs-01 with two active devices, till-1 and till-2, whose b1 reports "till" and b2 "printer"."""
    assert api(app, "POST", "/api/v1/sites", json={"code": "hs-01", "name": "High Street"}).status_code == 201
    for device in ("till-1", "till-2"):
        press(app, device_id=device, button="b9")  # unknown until now: registered as pending
        assert api(app, "POST", f"/api/v1/devices/{device}/approve", json={"site": "hs-01"}).status_code == 200
        api(app, "PUT", f"/api/v1/devices/{device}/buttons/b1", json={"category": "till", "label": "Till"})
        api(app, "PUT", f"/api/v1/devices/{device}/buttons/b2", json={"category": "printer"})
    return app


def resolve(app, ticket_id, minutes_ago=0.0):
    assert api(app, "PATCH", f"/api/v1/tickets/{ticket_id}", json={"status": "resolved"}).status_code == 200
    if minutes_ago:
        with app.extensions["dashdesk"].db.write() as s:
            s.execute(update(Ticket).where(Ticket.id == ticket_id)
                      .values(resolved_at=wire.utcnow() - timedelta(minutes=minutes_ago)))


# ------------------------------------------------------------------ device status


def test_a_pending_device_reports_until_approved_then_reports_for_its_site(app):
    first = press(app, device_id="new-1")
    assert first["result"] == "created"
    assert api(app, "GET", f"/api/v1/tickets/{first['ticket']['id']}").get_json()["site"] is None  # unplaced
    assert api(app, "GET", "/api/v1/devices?status=pending").get_json()["items"][0]["device_id"] == "new-1"
    api(app, "POST", "/api/v1/sites", json={"code": "hs-01", "name": "High Street"})
    r = api(app, "POST", "/api/v1/devices/new-1/approve", json={"site": "hs-01"})
    assert r.status_code == 200 and (r.get_json()["status"], r.get_json()["site"]) == ("active", "hs-01")
    # its open ticket is placed in the site, and the site's dedup takes the next press into it
    assert api(app, "GET", f"/api/v1/tickets/{first['ticket']['id']}").get_json()["site"] == "hs-01"
    second = press(app, device_id="new-1")
    assert second["result"] == "merged" and second["ticket"]["id"] == first["ticket"]["id"]
    other = press(app, device_id="new-1", button="b2")  # the site's own dedup: a new problem, a new ticket
    assert api(app, "GET", f"/api/v1/tickets/{other['ticket']['id']}").get_json()["site"] == "hs-01"


def test_a_retired_device_is_rejected_with_the_reason_and_keeps_its_history(shop):
    admin = Desk(shop, "admin")
    first = press(shop, device_id="till-1", button="b1")
    r = post(admin, "/admin/devices/till-1/retire", "/admin/devices/till-1", reason="stolen")
    assert r.status_code == 303
    answer = press(shop, device_id="till-1", button="b1")
    assert answer == {**answer, "result": "rejected", "ticket": None, "reason": "device retired"}
    ticket = api(shop, "GET", f"/api/v1/tickets/{first['ticket']['id']}").get_json()
    assert ticket["device_id"] == "till-1" and ticket["status"] == "new"  # history kept
    assert api(shop, "GET", "/api/v1/devices/till-1").get_json()["status"] == "retired"
    page = admin.c.get("/admin/devices/till-1").text
    assert "rejected: device retired" in page and "This device is retired" in page
    (row,) = audit_rows(shop, "device.retire")
    assert (row.actor, row.target, row.details) == ("admin", "device:till-1", {"was": "active", "reason": "stolen"})


def test_a_rejected_device_is_refused_and_can_be_approved_later(app):
    first = press(app, device_id="stranger")["ticket"]
    r = api(app, "POST", "/api/v1/devices/stranger/reject", json={"reason": "not ours"})
    assert r.status_code == 200 and r.get_json()["status"] == "rejected"
    answer = press(app, device_id="stranger")
    assert answer["result"] == "rejected" and answer["reason"] == "device rejected by an admin"
    assert api(app, "GET", f"/api/v1/tickets/{first['id']}").get_json()["status"] == "new"  # left for an agent
    api(app, "POST", "/api/v1/sites", json={"code": "hs-01", "name": "High Street"})
    assert api(app, "POST", "/api/v1/devices/stranger/approve", json={"site": "hs-01"}).status_code == 200
    again = press(app, device_id="stranger")  # its ticket, placed in the site, takes the press
    assert (again["result"], again["ticket"]["id"]) == ("merged", first["id"])
    api(app, "PATCH", f"/api/v1/tickets/{first['id']}", json={"status": "closed"})
    assert press(app, device_id="stranger")["result"] == "created"


def test_approve_reject_and_retire_refuse_what_does_not_fit(shop):
    assert api(shop, "POST", "/api/v1/devices/till-1/approve", json={"site": "hs-01"}).status_code == 409
    assert api(shop, "POST", "/api/v1/devices/till-1/reject", json={}).status_code == 409
    press(shop, device_id="new-2")
    r = api(shop, "POST", "/api/v1/devices/new-2/approve", json={"site": "nowhere"})
    assert r.status_code == 404 and "no site nowhere" in r.get_json()["error"]["message"]
    assert api(shop, "POST", "/api/v1/devices/ghost/retire", json={}).status_code == 404
    assert api(shop, "POST", "/api/v1/devices/till-1/retire", json={}).status_code == 200
    assert api(shop, "POST", "/api/v1/devices/till-1/retire", json={}).status_code == 409
    assert api(shop, "POST", "/api/v1/devices/till-1/approve", json={}).status_code == 400


# ------------------------------------------------------------------ per-category dedup scope


def test_dedup_scope_site_merges_a_shops_presses_and_device_keeps_them_apart(shop):
    admin = Desk(shop, "admin")
    # printer (site scope, the default): two devices of one shop, one ticket
    a, b = press(shop, device_id="till-1", button="b2"), press(shop, device_id="till-2", button="b2")
    assert (a["result"], b["result"]) == ("created", "merged") and a["ticket"]["id"] == b["ticket"]["id"]
    # till set to device scope on the admin page: each device its own ticket, each merging its own presses
    form = admin.c.get("/admin/categories/till")
    assert form.status_code == 200
    r = post(admin, "/admin/categories/till", "/admin/categories/till", **category_form(shop, "till",
                                                                                        dedup_scope="device"))
    assert r.status_code == 303, r.text[:500]
    c, d = press(shop, device_id="till-1", button="b1"), press(shop, device_id="till-2", button="b1")
    assert (c["result"], d["result"]) == ("created", "created") and c["ticket"]["id"] != d["ticket"]["id"]
    e = press(shop, device_id="till-2", button="b1")
    assert e["result"] == "merged" and e["ticket"]["id"] == d["ticket"]["id"]
    # and back to site scope through the API: the next press merges at the shop again
    assert api(shop, "PATCH", "/api/v1/categories/till", json={"dedup_scope": "site"}).status_code == 200
    f, g = press(shop, device_id="till-1", button="b1"), press(shop, device_id="till-2", button="b1")
    assert (f["result"], g["result"]) == ("created", "merged") and f["ticket"]["id"] == g["ticket"]["id"]
    rows = audit_rows(shop, "category.update")
    assert [r.details["changes"]["dedup_scope"] for r in rows] == [["site", "device"], ["device", "site"]]
    assert [r.actor for r in rows] == ["admin", "token:admin (bootstrap)"]


def category_form(app, slug, **change):
    """The category's form as the page fills it, with ``change`` applied."""
    from server.admin.categories import category_form as form_of
    from server.models import Category
    from sqlalchemy import select

    with app.extensions["dashdesk"].db.read() as s:
        form = form_of(s.scalar(select(Category).where(Category.slug == slug)))
    return {**form, **change}


# ------------------------------------------------------------------ per-category reopen window


def test_each_category_has_its_own_reopen_window(shop):
    # the server's default is 60 min (reopen_window_s=3600); till: 5 min; printer: 120 min
    assert api(shop, "PATCH", "/api/v1/categories/till", json={"reopen_window_min": 5}).status_code == 200
    assert api(shop, "PATCH", "/api/v1/categories/printer", json={"reopen_window_min": 120}).status_code == 200
    till, printer = press(shop, device_id="till-1", button="b1"), press(shop, device_id="till-1", button="b2")
    resolve(shop, till["ticket"]["id"], minutes_ago=10)
    resolve(shop, printer["ticket"]["id"], minutes_ago=90)
    again_till = press(shop, device_id="till-1", button="b1")
    assert again_till["result"] == "created" and again_till["ticket"]["id"] != till["ticket"]["id"]
    again_printer = press(shop, device_id="till-1", button="b2")
    assert again_printer["result"] == "reopened" and again_printer["ticket"]["id"] == printer["ticket"]["id"]
    # within till's 5 minutes it reopens; with the window set to 0 it never does
    resolve(shop, again_till["ticket"]["id"], minutes_ago=2)
    assert press(shop, device_id="till-1", button="b1")["result"] == "reopened"
    api(shop, "PATCH", "/api/v1/categories/till", json={"reopen_window_min": 0})
    resolve(shop, again_till["ticket"]["id"])
    assert press(shop, device_id="till-1", button="b1")["result"] == "created"
    # null: the server's default again (60 min)
    r = api(shop, "PATCH", "/api/v1/categories/printer", json={"reopen_window_min": None})
    assert r.get_json()["reopen_window_min"] is None
    resolve(shop, printer["ticket"]["id"], minutes_ago=90)
    assert press(shop, device_id="till-1", button="b2")["result"] == "created"


def test_the_reopen_window_is_set_in_minutes_on_the_category_page(shop):
    admin = Desk(shop, "admin")
    r = post(admin, "/admin/categories/till", "/admin/categories/till",
             **category_form(shop, "till", reopen_window_min="3"))
    assert r.status_code == 303
    assert api(shop, "GET", "/api/v1/categories").get_json()["items"][-1]["reopen_window_min"] == 3
    first = press(shop, device_id="till-1", button="b1")
    resolve(shop, first["ticket"]["id"], minutes_ago=4)
    assert press(shop, device_id="till-1", button="b1")["result"] == "created"


# ------------------------------------------------------------------ mappings


def test_a_mapping_changed_on_the_page_takes_effect_on_the_next_press(shop):
    admin = Desk(shop, "admin")
    assert press(shop, device_id="till-1", button="b3")["ticket"]["category"] == "other"  # not mapped
    r = post(admin, "/admin/devices/till-1/buttons", "/admin/devices/till-1", button="b3", press="",
             target="network", label="Router")
    assert r.status_code == 303
    first = press(shop, device_id="till-1", button="b3")
    assert first["ticket"]["category"] == "network"
    assert api(shop, "GET", f"/api/v1/tickets/{first['ticket']['id']}").get_json()["title"] == "Router at High Street"
    # remap b3 to printer: the very next press reports printer, no restart
    post(admin, "/admin/devices/till-1/buttons", "/admin/devices/till-1", button="b3", press="", target="printer",
         label="Printer")
    assert press(shop, device_id="till-1", button="b3")["ticket"]["category"] == "printer"
    # a long press of b3 mapped on its own wins over the button's mapping
    post(admin, "/admin/devices/till-1/buttons", "/admin/devices/till-1", button="b3", press="long",
         target="sales-app", label="Sales app, urgent")
    assert press(shop, device_id="till-1", button="b3", press="long")["ticket"]["category"] == "sales-app"
    assert press(shop, device_id="till-1", button="b3")["ticket"]["category"] == "printer"
    # removed: back to "other"
    post(admin, "/admin/devices/till-1/buttons/remove", "/admin/devices/till-1", button="b3", press="")
    assert press(shop, device_id="till-1", button="b3")["ticket"]["category"] == "other"
    actions = [a.action for a in audit_rows(shop) if a.actor == "admin"]
    assert actions == ["mapping.set", "mapping.set", "mapping.set", "mapping.remove"]
    assert audit_rows(shop, "mapping.remove")[0].details["was"]["category"] == "printer"


def test_a_button_mapped_to_cancel_last_report_cancels(shop):
    admin = Desk(shop, "admin")
    post(admin, "/admin/devices/till-1/buttons", "/admin/devices/till-1", button="b4", press="", target="!cancel",
         label="Oops")
    page = admin.c.get("/admin/devices/till-1").text
    assert "cancel last report" in page
    first = press(shop, device_id="till-1", button="b1")
    answer = press(shop, device_id="till-1", button="b4")
    assert answer["result"] == "cancelled" and answer["ticket"]["id"] == first["ticket"]["id"]
    assert api(shop, "GET", f"/api/v1/tickets/{first['ticket']['id']}").get_json()["status"] == "cancelled"
    buttons = api(shop, "GET", "/api/v1/devices/till-1").get_json()["buttons"]
    assert {"button": "b4", "press": None, "category": None, "label": "Oops", "action": "cancel"} in buttons


def test_a_wrong_mapping_form_is_refused_and_changes_nothing(shop):
    admin = Desk(shop, "admin")
    r = post(admin, "/admin/devices/till-1/buttons", "/admin/devices/till-1", button="B 1", press="", target="till")
    assert r.status_code == 422 and "must match" in r.text
    r = post(admin, "/admin/devices/till-1/buttons", "/admin/devices/till-1", button="b1", press="", target="nope")
    assert r.status_code == 404 and "no category nope" in r.text.lower()
    assert press(shop, device_id="till-1", button="b1")["ticket"]["category"] == "till"
    assert [a.action for a in audit_rows(shop) if a.actor == "admin"] == []


def test_copy_a_mapping_to_many_devices(shop):
    admin = Desk(shop, "admin")
    for i in range(5):
        press(shop, device_id=f"roll-{i}")
        api(shop, "PUT", f"/api/v1/devices/roll-{i}/buttons/b7", json={"category": "network"})  # replaced below
    api(shop, "PUT", "/api/v1/devices/till-1/buttons/b1", json={"category": "till", "press": "double",
                                                                "label": "Till, twice"})
    r = post(admin, "/admin/devices/copy-mapping", "/admin/devices/copy-mapping", **{
        "from": "till-1", "to": "roll-0, roll-1\nroll-2 roll-3 roll-4", "site": ""})
    assert r.status_code == 303
    assert "Copied 3 mappings of till-1 to 5 devices" in admin.c.get(r.headers["Location"]).text
    for i in range(5):
        assert press(shop, device_id=f"roll-{i}", button="b1")["ticket"]["category"] == "till"
        assert press(shop, device_id=f"roll-{i}", button="b2")["ticket"]["category"] == "printer"
        assert press(shop, device_id=f"roll-{i}", button="b7")["ticket"]["category"] == "other"  # theirs replaced
    buttons = api(shop, "GET", "/api/v1/devices/roll-3").get_json()["buttons"]
    assert [(b["button"], b["press"], b["category"], b["label"]) for b in buttons] == [
        ("b1", None, "till", "Till"), ("b1", "double", "till", "Till, twice"), ("b2", None, "printer", "")]
    (row,) = audit_rows(shop, "mapping.copy")
    assert row.target == "device:till-1" and row.details["to"] == [f"roll-{i}" for i in range(5)]


def test_copy_mapping_through_the_api_and_to_a_whole_site(shop):
    api(shop, "POST", "/api/v1/sites", json={"code": "mm-02", "name": "Market Mall"})
    for i in range(3):
        press(shop, device_id=f"mm-{i}")
        api(shop, "POST", f"/api/v1/devices/mm-{i}/approve", json={"site": "mm-02"})
    r = api(shop, "POST", "/api/v1/devices/copy-mapping", json={"from": "till-1", "to": ["mm-0", "mm-1"]})
    assert r.status_code == 200 and r.get_json() == {"copied": 2, "devices": ["mm-0", "mm-1"]}
    assert press(shop, device_id="mm-1", button="b1")["ticket"]["category"] == "till"
    admin = Desk(shop, "admin")
    r = post(admin, "/admin/devices/copy-mapping", "/admin/devices/copy-mapping",
             **{"from": "till-2", "to": "", "site": "mm-02"})
    assert r.status_code == 303
    assert press(shop, device_id="mm-2", button="b2")["ticket"]["category"] == "printer"
    assert audit_rows(shop, "mapping.copy")[-1].details["to"] == ["mm-0", "mm-1", "mm-2"]


@pytest.mark.parametrize("body,status,says", [
    ({"from": "till-1", "to": ["till-2", "ghost-1"]}, 404, "no device ghost-1"),
    ({"from": "ghost", "to": ["till-2"]}, 404, "no device ghost"),
    ({"from": "till-1", "to": ["till-1"]}, 409, "leave it out"),
    ({"from": "till-1", "to": []}, 400, "Length must be between 1 and 2000"),
    ({"from": "till-1", "to": ["Not An Id"]}, 400, "must match"),
])
def test_copy_mapping_is_all_or_nothing(shop, body, status, says):
    api(shop, "PUT", "/api/v1/devices/till-2/buttons/b5", json={"category": "network"})
    r = api(shop, "POST", "/api/v1/devices/copy-mapping", json=body)
    assert r.status_code == status and says in str(r.get_json()["error"])
    assert press(shop, device_id="till-2", button="b5")["ticket"]["category"] == "network"  # unchanged
    assert audit_rows(shop, "mapping.copy") == []
