"""The admin pages are for admins: agents get 403, the signed-out the sign-in page; every form needs its
CSRF token; the admin API needs an admin token."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import text

from server.domain.tokens import create_token

from .conftest import API, api, audit_rows, press

PAGES = ["/admin", "/admin/sites", "/admin/sites/hs-01", "/admin/sites/import", "/admin/devices",
         "/admin/devices?status=pending", "/admin/devices/shop-1", "/admin/devices/copy-mapping",
         "/admin/categories", "/admin/categories/till", "/admin/audit"]
FORMS = ["/admin/sites", "/admin/sites/hs-01", "/admin/sites/import", "/admin/devices/shop-1/approve",
         "/admin/devices/shop-1/reject", "/admin/devices/shop-1/retire", "/admin/devices/shop-1/buttons",
         "/admin/devices/shop-1/buttons/remove", "/admin/devices/copy-mapping", "/admin/categories",
         "/admin/categories/till"]


@pytest.fixture
def known(app):
    """A site hs-01 and a pending device shop-1, so that every page exists."""
    press(app, device_id="shop-1")
    assert api(app, "POST", "/api/v1/sites", json={"code": "hs-01", "name": "High Street"}).status_code == 201
    return app


@pytest.mark.parametrize("path", PAGES)
def test_every_admin_page_is_200_for_an_admin_403_for_an_agent(known, admin, ann, path):
    assert admin.c.get(path).status_code == 200
    r = ann.c.get(path)
    assert r.status_code == 403 and "for admins" in r.text


@pytest.mark.parametrize("path", PAGES)
def test_signed_out_every_admin_page_redirects_to_sign_in(known, path):
    r = known.test_client().get(path)
    assert r.status_code == 302
    assert parse_qs(urlsplit(r.headers["Location"]).query)["next"] == [path]
    assert urlsplit(r.headers["Location"]).path == "/login"


@pytest.mark.parametrize("path", FORMS)
def test_every_admin_form_refuses_a_post_without_its_csrf_token(known, admin, ann, path):
    before = len(audit_rows(known))
    r = admin.c.post(path, data={"site": "hs-01", "code": "x-1", "name": "X", "button": "b1", "target": "till",
                                 "from": "shop-1", "to": "shop-2", "slug": "new-cat", "csv": "code,name\nx,X\n"})
    assert r.status_code == 400 and "security token" in r.text
    assert admin.c.post(path, data={"csrf_token": "forged"}).status_code == 400
    # an agent with a valid token of their own is still refused
    assert ann.c.post(path, data={"csrf_token": ann.token("/")}).status_code == 403
    assert known.test_client().post(path).status_code in (302, 400)
    assert len(audit_rows(known)) == before


def test_the_nav_links_to_admin_for_admins_only(known, admin, ann):
    assert 'href="/admin"' in admin.c.get("/").text
    assert 'href="/admin"' not in ann.c.get("/").text
    page = admin.c.get("/admin/devices").text
    assert 'href="/static/admin.css' in page and 'aria-current="page"' in page


ADMIN_API = [("GET", "/api/v1/sites", None), ("POST", "/api/v1/sites", {"code": "a", "name": "A"}),
             ("GET", "/api/v1/sites/hs-01", None), ("PATCH", "/api/v1/sites/hs-01", {"name": "B"}),
             ("PATCH", "/api/v1/categories/till", {"priority": 1}),
             ("POST", "/api/v1/devices/shop-1/approve", {"site": "hs-01"}),
             ("POST", "/api/v1/devices/shop-1/reject", {}), ("POST", "/api/v1/devices/shop-1/retire", {}),
             ("POST", "/api/v1/devices/copy-mapping", {"from": "shop-1", "to": ["shop-2"]}),
             ("GET", "/api/v1/audit", None), ("PUT", "/api/v1/devices/shop-1/buttons/b1", {"category": "till"})]


@pytest.mark.parametrize("method,path,body", ADMIN_API)
def test_the_admin_api_needs_an_admin_token(known, method, path, body):
    bridge = create_token(known.extensions["dashdesk"].db, "a bridge", "bridge")
    c = known.test_client()
    r = c.open(path, method=method, json=body, headers={"Authorization": f"Bearer {bridge}"})
    assert r.status_code == 403 and r.get_json()["error"]["message"] == "this needs an admin token"
    assert c.open(path, method=method, json=body).status_code == 401


def test_the_csv_import_needs_an_admin_token(known):
    bridge = create_token(known.extensions["dashdesk"].db, "a bridge", "bridge")
    r = known.test_client().post("/api/v1/sites/import", data="code,name\nx,X\n", content_type="text/csv",
                                 headers={"Authorization": f"Bearer {bridge}"})
    assert r.status_code == 403


def _api_routes(app):
    """Every (method, path, endpoint) of the token API, with made-up values in its URL."""
    import re

    out = []
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith(("api.", "enrolments_api.")):
            continue  # the OpenAPI document and its page need no token
        path = re.sub(r"<int:[^>]+>", "1", rule.rule)
        path = re.sub(r"<[^>]+>", "shop-1", path)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            out.append((method, path, rule.endpoint))
    return out


def test_a_bridge_token_may_call_only_what_the_bridge_calls(known):
    """Tickets, devices, categories, dead letters and every admin endpoint: 403 JSON for a bridge token; only
    the bridge's own requests (presses, the feed, dead letters, telemetry and status) get past."""
    from server.api.auth import BRIDGE_ENDPOINTS

    ticket = press(known, device_id="shop-1")["ticket"]["id"]
    bridge = create_token(known.extensions["dashdesk"].db, "a bridge", "bridge")
    c = known.test_client()
    routes = _api_routes(known)
    assert len(routes) > 40 and {e for _, _, e in routes} >= BRIDGE_ENDPOINTS
    before = len(audit_rows(known))
    for method, path, endpoint in routes:
        r = c.open(path.replace("/tickets/1", f"/tickets/{ticket}"), method=method, json={},
                   headers={"Authorization": f"Bearer {bridge}"})
        if endpoint in BRIDGE_ENDPOINTS:
            assert r.status_code != 403, (method, path)
        else:
            assert r.status_code == 403, (method, path, r.status_code)
            assert r.get_json() == {"error": {"code": "forbidden", "message": "this needs an admin token"}}
    assert len(audit_rows(known)) == before
    r = c.patch(f"/api/v1/tickets/{ticket}", json={"status": "resolved"}, headers={"Authorization": f"Bearer {bridge}"})
    assert r.status_code == 403
    assert api(known, "GET", f"/api/v1/tickets/{ticket}").get_json()["status"] == "new"
    # The bridge's own calls work with it.
    event = {"event_id": "e-bridge-1", "device_id": "shop-1", "button": "b1", "pressed_at": "2026-01-05T10:00:00Z"}
    assert c.post("/api/v1/incidents", json=event, headers={"Authorization": f"Bearer {bridge}",
                                                            "Idempotency-Key": "e-bridge-1"}).status_code == 200
    assert c.get("/api/v1/events?with_tickets=1", headers={"Authorization": f"Bearer {bridge}"}).status_code == 200
    assert c.post("/api/v1/devices/shop-1/status", json={"online": True},
                  headers={"Authorization": f"Bearer {bridge}"}).status_code == 204


def _is_error_page(r, status: int, *words: str) -> bool:
    text = r.get_data(as_text=True)
    return (r.status_code == status and r.mimetype == "text/html" and "<!doctype html>" in text
            and all(w in text for w in words) and '"error"' not in text)


def test_every_error_on_an_admin_page_is_the_html_error_page_and_the_api_keeps_json(known, admin):
    import io

    big = io.BytesIO(b"code,name\n" + b"x" * (8 * 1024 * 1024 + 100))
    r = admin.c.post("/admin/sites/import", data={"csrf_token": admin.token("/admin/sites/import"),
                                                  "file": (big, "chain.csv")}, content_type="multipart/form-data")
    assert _is_error_page(r, 413, "Too large", "at most 8 MiB"), r.get_data(as_text=True)[:300]
    big = io.BytesIO(b"version = 1\n" + b"#" * (8 * 1024 * 1024 + 100))
    r = admin.c.post("/admin/config/import", data={"csrf_token": admin.token("/admin/config/import"),
                                                   "file": (big, "chain.toml")}, content_type="multipart/form-data")
    assert _is_error_page(r, 413, "Too large", "at most 8 MiB")
    # an ordinary form over the app's limit (256 KiB)
    r = admin.c.post("/admin/sites", data={"csrf_token": admin.token("/admin/sites"), "name": "x" * 300_000})
    assert _is_error_page(r, 413, "Too large", "at most 0.25 MiB")
    r = admin.c.get("/admin/sites/hs-01/nothing-here")
    assert _is_error_page(r, 404, "Not found")
    r = admin.c.delete("/admin/sites")
    assert _is_error_page(r, 405, "Not a page") and "GET" in r.headers["Allow"]
    # the database fails under a page: 500, on the HTML page, nothing of the error shown
    with known.extensions["dashdesk"].db.write() as s:
        s.execute(text("DROP TABLE audit_log"))
    r = admin.c.get("/admin/audit")
    assert _is_error_page(r, 500, "Something went wrong", "tell your admin") and "audit_log" not in r.text
    # the desk's pages too
    assert _is_error_page(admin.c.delete("/"), 405, "Not a page")
    # the API answers JSON, as before
    r = known.test_client().get("/api/v1/audit", headers=API)
    assert r.status_code == 500 and r.get_json()["error"]["code"] == "internal_error"
    r = known.test_client().get("/api/v1/nothing-here", headers=API)
    assert r.status_code == 404 and r.get_json()["error"]["code"] == "not_found"
    r = known.test_client().post("/api/v1/sites/import", data=b"x" * (8 * 1024 * 1024 + 100), content_type="text/csv",
                                 headers=API)
    assert r.status_code == 413 and r.get_json()["error"]["code"] == "payload_too_large"
