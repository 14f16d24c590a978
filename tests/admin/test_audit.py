"""The audit log: every admin action, written with its change; read on /admin/audit and GET /api/v1/audit."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from server import audit, sites
from server.models import AuditLog, Site

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
