"""The devices pages: the pending list first, approve or reject, and what a device page shows
(site, kind, firmware, online state, battery and signal from telemetry, open tickets)."""

from __future__ import annotations

from .conftest import Desk, api, audit_rows, post, press


def telemetry(app, device_id, **values):
    r = api(app, "POST", f"/api/v1/devices/{device_id}/telemetry", json={"telemetry": values})
    assert r.status_code == 204


def test_the_overview_lists_pending_devices_first_and_approves_them(app, admin):
    api(app, "POST", "/api/v1/sites", json={"code": "hs-01", "name": "High Street"})
    ticket = press(app, device_id="new-a")["ticket"]
    press(app, device_id="new-b")
    page = admin.c.get("/admin").text
    assert page.index("Pending devices") < page.index("At a glance")
    assert page.index('data-device="new-b"') < page.index('data-device="new-a"')  # newest first
    r = post(admin, "/admin/devices/new-a/approve", "/admin", site="hs-01", next="/admin")
    assert r.status_code == 303 and r.headers["Location"] == "/admin"
    page = admin.c.get("/admin").text
    assert "new-a is approved into hs-01." in page and 'data-device="new-a"' not in page
    device = api(app, "GET", "/api/v1/devices/new-a").get_json()
    assert (device["status"], device["site"]) == ("active", "hs-01")
    (row,) = audit_rows(app, "device.approve")
    assert (row.actor, row.target, row.details) == ("admin", "device:new-a", {"site": "hs-01", "was": "pending",
                                                                              "placed": [ticket["number"]]})
    # reject the other one from the overview
    post(admin, "/admin/devices/new-b/reject", "/admin", next="/admin")
    assert api(app, "GET", "/api/v1/devices/new-b").get_json()["status"] == "rejected"
    assert "No device is waiting for approval." in admin.c.get("/admin").text


def test_approving_into_an_unknown_site_is_refused_with_the_reason(app, admin):
    press(app, device_id="new-a")
    r = post(admin, "/admin/devices/new-a/approve", "/admin/devices/new-a", site="nowhere")
    assert r.status_code == 303
    assert "No site nowhere; create it first" in admin.c.get(r.headers["Location"]).text
    assert api(app, "GET", "/api/v1/devices/new-a").get_json()["status"] == "pending"
    assert audit_rows(app) == []


def test_the_device_list_filters_by_status_and_site(app, admin):
    api(app, "POST", "/api/v1/sites", json={"code": "hs-01", "name": "High Street"})
    api(app, "POST", "/api/v1/sites", json={"code": "mm-02", "name": "Market Mall"})
    for device, site in (("dev-1", "hs-01"), ("dev-2", "mm-02"), ("dev-3", None)):
        press(app, device_id=device)
        if site:
            api(app, "POST", f"/api/v1/devices/{device}/approve", json={"site": site})
    page = admin.c.get("/admin/devices?status=pending").text
    assert 'data-device="dev-3"' in page and 'data-device="dev-1"' not in page and "1 device" in page
    page = admin.c.get("/admin/devices?site=mm-02").text
    assert 'data-device="dev-2"' in page and 'data-device="dev-1"' not in page
    page = admin.c.get("/admin/devices?status=active").text
    assert 'data-device="dev-1"' in page and 'data-device="dev-2"' in page and 'data-device="dev-3"' not in page
    assert [d["device_id"] for d in api(app, "GET", "/api/v1/devices?site=hs-01").get_json()["items"]] == ["dev-1"]
    assert api(app, "GET", "/api/v1/devices?status=lost").status_code == 400


def test_a_device_page_shows_its_health_and_open_tickets(app, admin):
    api(app, "POST", "/api/v1/sites", json={"code": "hs-01", "name": "High Street"})
    ticket = press(app, device_id="dev-1")["ticket"]
    api(app, "POST", "/api/v1/devices/dev-1/approve", json={"site": "hs-01"})
    telemetry(app, "dev-1", battery_pct=14, rssi_dbm=-58, firmware="1.4.2", probes={"printer": {"ok": False}})
    assert api(app, "POST", "/api/v1/devices/dev-1/status", json={"online": False}).status_code == 204
    page = admin.c.get("/admin/devices/dev-1").text
    for text in ("High Street", "1.4.2", "14 %", "-58 dBm", 'class="offline">offline', "battery low",
                 f'href="/tickets/{ticket["id"]}">{ticket["number"]}', "physical"):
        assert text in page, text
    listing = admin.c.get("/admin/devices").text
    assert "1.4.2" in listing and "14 %" in listing and f'href="/admin/devices/dev-1#tickets">1<' in listing
    api(app, "POST", "/api/v1/devices/dev-1/status", json={"online": True})
    assert 'class="online">online' in admin.c.get("/admin/devices/dev-1").text
    assert api(app, "GET", "/api/v1/devices/dev-1").get_json()["firmware"] == "1.4.2"
    assert admin.c.get("/admin/devices/ghost").status_code == 404


def test_retire_from_the_device_page(app, admin):
    press(app, device_id="dev-1")
    r = post(admin, "/admin/devices/dev-1/retire", "/admin/devices/dev-1", reason="broken")
    assert r.status_code == 303
    page = admin.c.get("/admin/devices/dev-1").text
    assert "dev-1 is retired" in page and "Retire device" not in page
    again = post(admin, "/admin/devices/dev-1/retire", "/admin/devices/dev-1")
    assert "Device dev-1 is already retired" in admin.c.get(again.headers["Location"]).text
    assert len(audit_rows(app, "device.retire")) == 1


def test_posting_a_known_device_again_keeps_the_kind_and_status_it_is_not_given(app):
    api(app, "POST", "/api/v1/sites", json={"code": "hs-01", "name": "High Street"})
    r = api(app, "POST", "/api/v1/devices", json={"device_id": "ph-1", "kind": "phone", "status": "pending"})
    assert r.status_code == 201 and (r.get_json()["kind"], r.get_json()["status"]) == ("phone", "pending")
    r = api(app, "POST", "/api/v1/devices", json={"device_id": "ph-1", "site": "hs-01"})
    assert r.status_code == 200, r.text
    assert (r.get_json()["kind"], r.get_json()["status"], r.get_json()["site"]) == ("phone", "pending", "hs-01")
    assert [(a.action, a.details.get("changes")) for a in audit_rows(app) if a.target == "device:ph-1"] == [
        ("device.create", None), ("device.update", {"site": [None, "hs-01"]})]
    # given, they change as before; the site not given stays
    r = api(app, "POST", "/api/v1/devices", json={"device_id": "ph-1", "kind": "physical", "status": "active"})
    assert (r.get_json()["kind"], r.get_json()["status"], r.get_json()["site"]) == ("physical", "active", "hs-01")
    r = api(app, "POST", "/api/v1/devices", json={"device_id": "ph-1", "site": None})
    assert (r.get_json()["status"], r.get_json()["site"]) == ("active", None)
    # a new device still gets the defaults
    r = api(app, "POST", "/api/v1/devices", json={"device_id": "new-1"})
    assert r.status_code == 201 and (r.get_json()["kind"], r.get_json()["status"]) == ("physical", "active")


def history_notes(app, ticket_id):
    return [e["data"].get("note") for e in api(app, "GET", f"/api/v1/tickets/{ticket_id}").get_json()["history"]
            if e["data"].get("note")]


def test_approving_a_pending_device_places_the_tickets_it_reported_in_its_site(app, admin):
    api(app, "POST", "/api/v1/sites", json={"code": "hs-01", "name": "High Street"})
    api(app, "POST", "/api/v1/devices", json={"device_id": "dev-1", "site": "hs-01"})
    at_site = press(app, device_id="dev-1", button="b1")["ticket"]  # "other", open at hs-01
    api(app, "PUT", "/api/v1/devices/new-a/buttons/b2", json={"category": "printer"})
    api(app, "PATCH", "/api/v1/devices/new-a", json={"status": "pending"})
    other = press(app, device_id="new-a", button="b1")["ticket"]  # pending: unplaced
    printer = press(app, device_id="new-a", button="b2")["ticket"]
    before = api(app, "GET", f"/api/v1/tickets/{printer['id']}").get_json()
    assert before["site"] is None and before["title"].endswith(" at new-a")
    r = post(admin, "/admin/devices/new-a/approve", "/admin", site="hs-01", next="/admin")
    assert r.status_code == 303
    placed = api(app, "GET", f"/api/v1/tickets/{printer['id']}").get_json()
    assert placed["site"] == "hs-01" and placed["title"] == before["title"].replace(" at new-a", " at High Street")
    assert placed["status"] == "new" and placed["assignee"] is None
    assert history_notes(app, printer["id"]) == ["new-a was placed in hs-01"]
    # agents see the shop in the queue, not "unplaced"
    queue = Desk(app, "ann").c.get("/").text
    assert "unplaced" not in queue
    # dedup per site applies from now on: the next printer press at the site merges into it
    again = press(app, device_id="new-a", button="b2")
    assert (again["result"], again["ticket"]["id"]) == ("merged", printer["id"])
    # the site had an open ticket of that category already: both are left open; later presses go to the site's
    assert api(app, "GET", f"/api/v1/tickets/{other['id']}").get_json()["site"] == "hs-01"
    assert history_notes(app, other["id"]) == [
        f"new-a was placed in hs-01; {at_site['number']} was open for the same category there already: later "
        "presses go to it (merge the two if they are one problem)"]
    merged = press(app, device_id="new-a", button="b1")
    assert (merged["result"], merged["ticket"]["id"]) == ("merged", at_site["id"])
    (row,) = audit_rows(app, "device.approve")
    assert row.details == {"site": "hs-01", "was": "pending", "placed": [other["number"], printer["number"]]}


def test_a_rejected_devices_tickets_stay_open_for_an_agent_with_a_note_and_approval_places_them(app, admin):
    api(app, "POST", "/api/v1/sites", json={"code": "hs-01", "name": "High Street"})
    ticket = press(app, device_id="new-b")["ticket"]
    post(admin, "/admin/devices/new-b/reject", "/admin/devices/new-b", reason="not one of ours")
    kept = api(app, "GET", f"/api/v1/tickets/{ticket['id']}").get_json()
    assert (kept["status"], kept["site"]) == ("new", None)  # left for an agent, unplaced
    assert history_notes(app, ticket["id"]) == [
        "new-b, which reported this, was rejected by an admin (not one of ours): its later presses are refused. "
        "Approving it into a site places this ticket there."]
    page = Desk(app, "ann").c.get(f"/tickets/{ticket['id']}").text
    assert "was rejected by an admin (not one of ours)" in page
    # approved after all (through the API, by giving it a site and a status): the ticket is placed
    r = api(app, "PATCH", "/api/v1/devices/new-b", json={"site": "hs-01", "status": "active"})
    assert r.status_code == 200
    assert api(app, "GET", f"/api/v1/tickets/{ticket['id']}").get_json()["site"] == "hs-01"


def test_the_pages_say_where_pending_devices_are_and_what_their_presses_make(app, admin):
    overview = admin.c.get("/admin").text
    assert "Their presses still report, as unplaced tickets" in overview and "as their own site" not in overview
    listing = admin.c.get("/admin/devices").text
    assert "(above)" not in listing
    assert 'waits as pending, listed on the\n    <a href="/admin">Admin overview</a>' in listing
    # a refusal that starts with a device id keeps it as written
    api(app, "POST", "/api/v1/devices", json={"device_id": "tpl-1"})
    api(app, "POST", "/api/v1/devices", json={"device_id": "dev-2"})
    r = post(admin, "/admin/devices/copy-mapping", "/admin/devices/copy-mapping", **{"from": "tpl-1", "to": "dev-2"})
    assert r.status_code == 409 and "tpl-1 has no button mapping to copy" in r.text and "Tpl-1" not in r.text
