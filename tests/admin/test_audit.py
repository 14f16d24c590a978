"""The audit log: every admin action, written with its change; read on /admin/audit and GET /api/v1/audit."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from server.domain import audit, sites
from server.models import AuditLog, Site
from server.pages.formatting import details_text

from .conftest import api, audit_rows, post


def entry_count(page: str) -> str:
    """The audit page's count line, whole: "61 entries, newest first"."""
    m = re.search(r'<p class="count">([^<]*)</p>', page)
    assert m, "no count on the audit page"
    return m.group(1)


def test_the_audit_page_is_newest_first_filters_and_pages(app, admin):
    for i in range(60):
        api(app, "POST", "/api/v1/sites", json={"code": f"s-{i:02d}", "name": f"S {i}"})
    post(admin, "/admin/sites/s-00", "/admin/sites/s-00", code="s-00", name="Renamed", timezone="UTC")
    page = admin.c.get("/admin/audit").text
    assert entry_count(page) == "61 entries, newest first" and "Page 1 of 2" in page
    assert page.index("site:s-00") < page.index("site:s-59") < page.index("site:s-58")
    assert "site:s-09" not in page  # on page 2
    assert "site:s-09" in admin.c.get("/admin/audit?page=1").text
    mine = admin.c.get("/admin/audit?actor=admin").text
    assert entry_count(mine) == "1 entry, newest first" and "site.update" in mine and "site.create" not in mine
    one = admin.c.get("/admin/audit?target=site:s-00").text
    assert entry_count(one) == "2 entries, newest first" and "Renamed" in one
    prefix = admin.c.get("/admin/audit?target=site:s-1").text
    assert entry_count(prefix) == "10 entries, newest first"
    assert entry_count(admin.c.get("/admin/audit?target=device:").text) == "0 entries, newest first"


def test_the_audit_api_lists_filters_and_pages_with_a_cursor(app):
    for i in range(5):
        api(app, "POST", "/api/v1/sites", json={"code": f"s-{i}", "name": f"S {i}"})
    page = api(app, "GET", "/api/v1/audit?limit=2").get_json()
    seen = [a["target"] for a in page["items"]]
    while page["next"]:
        page = api(app, "GET", f"/api/v1/audit?limit=2&cursor={page['next']}").get_json()
        seen += [a["target"] for a in page["items"]]
    assert seen == [f"site:s-{i}" for i in reversed(range(5))]
    item = api(app, "GET", "/api/v1/audit?target=site:s-3").get_json()["items"][0]
    assert item["actor"] == "token:admin (bootstrap)" and item["action"] == "site.create"
    assert item["details"]["name"] == "S 3" and item["created_at"].endswith("Z")
    assert api(app, "GET", "/api/v1/audit?actor=nobody").get_json()["items"] == []
    assert api(app, "GET", "/api/v1/audit?limit=0").status_code == 400


def test_an_audit_row_commits_with_its_change_or_not_at_all(app):
    db = app.extensions["dashdesk"].db
    with pytest.raises(RuntimeError):
        with db.write() as s:
            sites.create(s, sites.clean({"code": "x-1", "name": "X"}), "admin")
            s.flush()
            raise RuntimeError("the change fails after its audit row was added")
    with db.read() as s:
        assert s.scalars(select(Site)).all() == [] and s.scalars(select(AuditLog)).all() == []
    with db.write() as s:
        sites.create(s, sites.clean({"code": "x-1", "name": "X"}), "admin")
    assert [(a.action, a.target) for a in audit_rows(app)] == [("site.create", "site:x-1")]


def test_audit_filters_are_exact_for_actor_and_a_prefix_for_target(app):
    db = app.extensions["dashdesk"].db
    with db.write() as s:
        for actor, target in (("ann", "site:a"), ("annie", "site:ab"), ("ann", "device:a")):
            audit.record(s, actor, "x.y", target)
    with db.read() as s:
        assert [r.target for r in s.scalars(audit.query(audit.AuditFilter(actor="ann")))] == ["device:a", "site:a"]
        assert [r.target for r in s.scalars(audit.query(audit.AuditFilter(target="site:a")))] == ["site:ab", "site:a"]
        assert audit.count(s, audit.AuditFilter(target="site:")) == 2


# ------------------------------------------------------------------ the details, as the pages show them


def test_details_read_as_text_with_what_changed_as_old_to_new():
    assert details_text({"site": "adm-01", "changes": {"status": ["active", "retired"]}}) == \
        "site: adm-01; changes: (status: active → retired)"
    assert details_text({"changes": {"name": ["Old", "New"], "timezone": ["UTC", "Europe/Warsaw"]}}) == \
        "changes: (name: Old → New; timezone: UTC → Europe/Warsaw)"


def test_details_nest_dicts_in_parentheses_and_lists_comma_separated():
    mapping = {"button": "b1", "press": None, "action": "report", "category": "printer", "label": "Till"}
    assert details_text({"was": None, "now": mapping}) == \
        "was: —; now: (button: b1; press: —; action: report; category: printer; label: Till)"
    assert details_text({"to": ["mm-0", "mm-1"], "kept": []}) == "to: mm-0, mm-1; kept: —"
    hours = {"mon": [["05:00", "12:00"], ["13:00", "18:00"]]}
    assert details_text({"changes": {"hours": [{}, hours], "sla": [{"1": {"respond_min": 15}},
                                                                          {"1": {"respond_min": 10}}]}}) == \
        ("changes: (hours: — → (mon: (05:00, 12:00), (13:00, 18:00)); "
         "sla: (1: (respond_min: 15)) → (1: (respond_min: 10)))")
    assert details_text({"counts": {"sites": {"added": 1}}}) == "counts: (sites: (added: 1))"


def test_details_say_yes_no_nothing_and_times_as_people_read_them():
    assert details_text({"on": False, "password_made": True}) == "on: no; password_made: yes"
    assert details_text({}) == "—"
    assert details_text({"enrolment": 3, "expires_at": "2026-11-23T21:44:04.120Z", "source_device": None}) == \
        "enrolment: 3; expires_at: 2026-11-23 21:44:04 UTC; source_device: —"
    assert details_text({"reason": "2026-11-23T21:44 is when it broke"}) == \
        "reason: 2026-11-23T21:44 is when it broke"  # only a whole time is one


def test_long_details_are_cut():
    text = details_text({"to": [f"device-{i}" for i in range(500)]}, limit=60)
    assert len(text) <= 62 and text.startswith("to: device-0, device-1") and text.endswith(" …")


def test_the_audit_page_shows_details_as_text(app, admin):
    api(app, "POST", "/api/v1/sites", json={"code": "adm-01", "name": "Admin Street"})
    post(admin, "/admin/sites/adm-01", "/admin/sites/adm-01", code="adm-01", name="Admin Road", timezone="UTC")
    page = admin.c.get("/admin/audit").text
    assert "changes: (name: Admin Street → Admin Road)" in page
    assert "name: Admin Street; address: —; timezone: UTC" in page
    assert "&#34;" not in page and "{&" not in page  # no JSON


def history(app, target):
    """The audit rows about ``target``, oldest first: (action, details)."""
    return [(a.action, a.details) for a in audit_rows(app) if a.target == target]


def test_a_csv_import_records_each_site_it_creates_or_changes_with_what_changed(app, admin):
    r = api(app, "POST", "/api/v1/sites/import", content_type="text/csv",
            data="code,name,timezone\nhs-01,High Street,Europe/London\nmm-02,Market Mall,UTC\n")
    assert r.status_code == 200
    assert history(app, "site:hs-01") == [("site.create", {
        "name": "High Street", "address": "", "timezone": "Europe/London", "hours": {}, "contact": "",
        "via": "CSV import"})]
    r = api(app, "POST", "/api/v1/sites/import", content_type="text/csv",
            data="code,name,timezone\nhs-01,High Street,Europe/Warsaw\nmm-02,Market Mall,UTC\n")
    assert r.get_json() == {"rows": 2, "created": 0, "updated": 1, "unchanged": 1}
    assert history(app, "site:hs-01")[-1] == (
        "site.update", {"changes": {"timezone": ["Europe/London", "Europe/Warsaw"]}, "via": "CSV import"})
    assert [a for a, _ in history(app, "site:mm-02")] == ["site.create"]  # unchanged: no row
    assert len(audit_rows(app, "site.import")) == 2  # and the import's own row each time
    page = admin.c.get("/admin/sites/hs-01").text
    assert "Nothing yet" not in page and "timezone: Europe/London → Europe/Warsaw" in page


def test_a_mapping_copy_is_recorded_under_each_device_it_changed(app):
    api(app, "POST", "/api/v1/sites", json={"code": "hs-01", "name": "High Street"})
    for device in ("tpl", "d-1", "d-2"):
        api(app, "POST", "/api/v1/devices", json={"device_id": device, "site": "hs-01"})
    api(app, "PUT", "/api/v1/devices/tpl/buttons/b1", json={"category": "printer", "label": "Printer"})
    api(app, "PUT", "/api/v1/devices/d-1/buttons/b9", json={"category": "till"})
    api(app, "PUT", "/api/v1/devices/d-2/buttons/b1", json={"category": "printer", "label": "Printer"})
    r = api(app, "POST", "/api/v1/devices/copy-mapping", json={"from": "tpl", "to": ["d-1", "d-2"]})
    assert r.status_code == 200
    now = [{"button": "b1", "press": None, "action": "report", "category": "printer", "label": "Printer"}]
    assert history(app, "device:d-1")[-1] == ("mapping.copied", {
        "from": "tpl", "was": [{"button": "b9", "press": None, "action": "report", "category": "till",
                                "label": ""}], "now": now})
    assert "mapping.copied" not in [a for a, _ in history(app, "device:d-2")]  # it had that mapping already
    assert history(app, "device:tpl")[-1][0] == "mapping.copy"


def test_a_configuration_import_records_each_thing_it_adds_changes_or_removes(app):
    api(app, "POST", "/api/v1/sites", json={"code": "hs-01", "name": "High Street"})
    api(app, "POST", "/api/v1/devices", json={"device_id": "old-1", "site": "hs-01"})
    api(app, "PUT", "/api/v1/devices/old-1/buttons/b1", json={"category": "till"})
    text = """
[[site]]
code = "hs-01"
name = "High Street (new)"

[[site]]
code = "mm-02"
name = "Market Mall"

[[device]]
device_id = "new-1"
site = "mm-02"

[[device.button]]
button = "b1"
category = "printer"
"""
    r = api(app, "POST", "/api/v1/config/import", data=text.encode(), content_type="application/toml",
            query_string={"prune": "true"})
    assert r.status_code == 200, r.text
    via = {"via": "configuration import"}
    assert history(app, "site:hs-01")[-1] == ("site.update", {"changes": {"name": ["High Street",
                                                                                    "High Street (new)"]}, **via})
    assert history(app, "site:mm-02")[0][0] == "site.create"
    assert history(app, "device:new-1") == [
        ("device.create", {"site": "mm-02", "kind": "physical", "status": "active", "test_mode": False, **via}),
        ("mapping.import", {"added": [{"button": "b1", "press": None, "action": "report", "category": "printer",
                                       "label": ""}], **via})]
    old = history(app, "device:old-1")
    assert ("mapping.import", {"removed": [{"button": "b1", "press": None, "action": "report",
                                            "category": "till", "label": ""}], **via}) in old
    assert ("device.retire", {"was": "active", "reason": "not in an imported configuration"}) in old
    assert ("category.delete", {"via": "configuration import (prune)"}) in history(app, "category:network")


def test_a_site_renamed_keeps_its_history_under_its_new_code(app, admin):
    api(app, "POST", "/api/v1/sites", json={"code": "hs-01", "name": "High Street"})
    api(app, "PATCH", "/api/v1/sites/hs-01", json={"contact": "Ann"})
    r = post(admin, "/admin/sites/hs-01", "/admin/sites/hs-01", code="hs-001", name="High Street", timezone="UTC")
    assert r.status_code == 303 and r.headers["Location"] == "/admin/sites/hs-001"
    assert [a for a, _ in history(app, "site:hs-001")] == ["site.create", "site.update", "site.update"]
    assert history(app, "site:hs-001")[-1][1]["changes"]["code"] == ["hs-01", "hs-001"]
    assert history(app, "site:hs-01") == []
    page = admin.c.get("/admin/sites/hs-001").text
    assert "site.create" in page and "code: hs-01 → hs-001" in page
    items = api(app, "GET", "/api/v1/audit?target=site:hs-001").get_json()["items"]
    assert [i["action"] for i in items] == ["site.update", "site.update", "site.create"]
    # a new site that takes the old code starts with a history of its own
    api(app, "POST", "/api/v1/sites", json={"code": "hs-01", "name": "Another shop"})
    assert [a for a, _ in history(app, "site:hs-01")] == ["site.create"]
