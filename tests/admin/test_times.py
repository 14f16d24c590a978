"""Times on the admin pages and the phone enrolments page read as people read them: 2026-11-23 21:44:04 UTC."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from server.pages.formatting import readable_time

from .conftest import api, post, press

# An RFC 3339 time as the API writes it, e.g. 2026-11-23T21:44:04.120Z.
MACHINE_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d")
READABLE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC")


def test_a_time_reads_to_the_second_in_utc():
    t = datetime(2026, 11, 23, 21, 44, 4, 987000, tzinfo=timezone.utc)
    assert readable_time(t) == "2026-11-23 21:44:04 UTC"
    assert readable_time(t.astimezone(timezone(timedelta(hours=1)))) == "2026-11-23 21:44:04 UTC"
    assert readable_time(datetime(2026, 1, 2, 3, 4, 5)) == "2026-01-02 03:04:05 UTC"  # naive: UTC
    assert readable_time("2026-11-23T21:44:04.120Z") == "2026-11-23 21:44:04 UTC"  # as the API writes it
    assert readable_time("2026-11-23T22:44:04+01:00") == "2026-11-23 21:44:04 UTC"
    assert readable_time(None) == readable_time("") == ""
    assert readable_time("soon") == "soon"


def visible_text(html: str) -> str:
    """What a page shows: its text without the tags (a ``<time datetime>`` keeps the machine's form)."""
    return re.sub(r"<[^>]*>", " ", html)


def test_admin_pages_show_readable_times_and_no_machine_ones(app, admin):
    assert api(app, "POST", "/api/v1/sites", json={"code": "hs-01", "name": "High Street"}).status_code == 201
    assert api(app, "POST", "/api/v1/devices", json={"device_id": "till-1", "site": "hs-01"}).status_code == 201
    press(app, device_id="till-1")
    press(app, device_id="new-1")  # pending: on the overview with its first and last press
    api(app, "POST", "/api/v1/devices/till-1/telemetry", json={"telemetry": {"battery_pct": 80}})
    api(app, "PATCH", "/api/v1/devices/till-1", json={"test_mode": True})
    press(app, device_id="till-1")  # a test ticket: its last press on the device page
    assert api(app, "PATCH", "/api/v1/categories/printer", json={"priority": 2}).status_code == 200
    made = api(app, "POST", "/api/v1/tokens", json={"name": "spare", "role": "bridge"}).get_json()
    api(app, "DELETE", f"/api/v1/tokens/{made['id']}")
    assert post(admin, "/admin/enrolments", "/admin/enrolments", site="hs-01", source_device="",
                expires_in_h="2").status_code == 201
    pages = ["/admin", "/admin/audit", "/admin/devices", "/admin/devices/till-1", "/admin/sites/hs-01",
             "/admin/categories/printer", "/admin/tokens", "/admin/users", "/admin/users/ann", "/admin/enrolments"]
    for path in pages:
        r = admin.c.get(path)
        assert r.status_code == 200, path
        text = visible_text(r.text)
        assert not MACHINE_TIME.search(text), (path, MACHINE_TIME.search(text).group(0))
        if path != "/admin/devices":  # the list says "5 s ago", the time is its title
            assert READABLE.search(text), path
    assert READABLE.search(re.search(r'<td title="([^"]*)">', admin.c.get("/admin/devices").text).group(1))
    device = visible_text(admin.c.get("/admin/devices/till-1").text)
    assert len(READABLE.findall(device)) >= 5  # first and last seen, telemetry, the test ticket, presses
    tokens = visible_text(admin.c.get("/admin/tokens").text)
    assert re.search(r"Revoked \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", tokens)
    enrolments = admin.c.get("/admin/enrolments").text
    assert re.search(r'<time datetime="\d{4}-\d\d-\d\dT[^"]+Z">\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC</time>',
                     enrolments)
    # and the audit log's details: the enrolment's expiry as people read it
    assert re.search(r"expires_at: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC",
                     visible_text(admin.c.get("/admin/audit?target=site:hs-01").text))
