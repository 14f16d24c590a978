"""API tokens on /admin/tokens and /api/v1/tokens: created with a name and role and shown once (stored as a
hash), listed with created and last-used times, revoked (401 from then on); all audited.
A revoked token over real HTTP: tests/integration/test_admin_broker.py."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from server.domain.tokens import hash_token
from server.models import ApiToken

from .conftest import api, audit_rows, post


def shown_token(html: str) -> str:
    m = re.search(r'id="shown-token">([^<]+)<', html)
    assert m, "no token shown on the page"
    return m.group(1)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_token_made_on_the_page_is_shown_once_works_and_is_stored_hashed(app, admin):
    r = post(admin, "/admin/tokens", "/admin/tokens", name="inventory script", role="admin")
    assert r.status_code == 200 and "shown this once" in r.text
    token = shown_token(r.text)
    assert token.startswith("dd_") and len(token) > 40
    listing = admin.c.get("/admin/tokens").text
    assert "inventory script" in listing and token not in listing
    with app.extensions["dashdesk"].db.read() as s:
        row = s.scalar(select(ApiToken).where(ApiToken.name == "inventory script"))
        assert row.token_hash == hash_token(token) and token not in row.token_hash
    c = app.test_client()
    assert c.get("/api/v1/sites", headers=bearer(token)).status_code == 200
    listed = {t["name"]: t for t in api(app, "GET", "/api/v1/tokens").get_json()["items"]}
    item = listed["inventory script"]
    assert item["role"] == "admin" and item["created_at"].endswith("Z") and item["last_used_at"].endswith("Z")
    assert item["revoked_at"] is None and "token" not in item and "token_hash" not in item
    (row,) = audit_rows(app, "token.create")
    assert (row.actor, row.target, row.details) == ("admin", f"token:{item['id']}",
                                                    {"name": "inventory script", "role": "admin"})
    assert token not in str([a.details for a in audit_rows(app)])


def test_a_revoked_token_gets_401_at_once_and_the_list_says_so(app, admin):
    r = post(admin, "/admin/tokens", "/admin/tokens", name="old bridge", role="bridge")
    token = shown_token(r.text)
    c = app.test_client()
    assert c.get("/api/v1/events", headers=bearer(token)).status_code == 200  # cached as valid now
    token_id = int(re.search(r'<tr data-token="(\d+)">\s*<td>old bridge<', admin.c.get("/admin/tokens").text).group(1))
    r = post(admin, f"/admin/tokens/{token_id}/revoke", "/admin/tokens", confirm="1")
    assert r.status_code == 303
    page = admin.c.get("/admin/tokens").text
    assert "Token old bridge is revoked" in page and "Revoked" in page
    r = c.get("/api/v1/events", headers=bearer(token))
    assert r.status_code == 401 and r.get_json()["error"]["code"] == "unauthorized"
    # revoking again changes nothing and is not audited twice
    post(admin, f"/admin/tokens/{token_id}/revoke", "/admin/tokens", confirm="1")
    assert [(a.action, a.target) for a in audit_rows(app)] == [("token.create", f"token:{token_id}"),
                                                                ("token.revoke", f"token:{token_id}")]


def test_revoking_a_bridge_token_on_the_page_asks_first_and_says_presses_stop(app, admin):
    made = post(admin, "/admin/tokens", "/admin/tokens", name="bridge", role="bridge")
    token = shown_token(made.text)
    token_id = int(re.search(r'<tr data-token="(\d+)">\s*<td>bridge<', admin.c.get("/admin/tokens").text).group(1))
    asked = post(admin, f"/admin/tokens/{token_id}/revoke", "/admin/tokens")  # the list's Revoke button
    assert asked.status_code == 200
    assert "Revoke bridge token bridge?" in asked.text and "no press reaches the desk" in asked.text
    assert re.search(r'name="confirm" value="1">\s*<button type="submit" class="danger">Revoke bridge token bridge<',
                     asked.text)
    assert app.test_client().get("/api/v1/events", headers=bearer(token)).status_code == 200  # not revoked
    assert audit_rows(app, "token.revoke") == []
    done = admin.c.post(f"/admin/tokens/{token_id}/revoke", data={"csrf_token": shown_csrf(asked.text), "confirm": "1"})
    assert done.status_code == 303
    assert app.test_client().get("/api/v1/events", headers=bearer(token)).status_code == 401
    assert [a.target for a in audit_rows(app, "token.revoke")] == [f"token:{token_id}"]
    # An admin token is revoked at once, as before.
    other = shown_token(post(admin, "/admin/tokens", "/admin/tokens", name="script", role="admin").text)
    other_id = int(re.search(r'<tr data-token="(\d+)">\s*<td>script<', admin.c.get("/admin/tokens").text).group(1))
    assert post(admin, f"/admin/tokens/{other_id}/revoke", "/admin/tokens").status_code == 303
    assert app.test_client().get("/api/v1/sites", headers=bearer(other)).status_code == 401


def shown_csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_the_tokens_api_creates_lists_and_revokes(app):
    r = api(app, "POST", "/api/v1/tokens", json={"name": "bridge 2", "role": "bridge"})
    assert r.status_code == 201
    made = r.get_json()
    c = app.test_client()
    # a bridge token hands over presses but may not administer
    assert c.get("/api/v1/events", headers=bearer(made["token"])).status_code == 200
    assert c.get("/api/v1/tokens", headers=bearer(made["token"])).status_code == 403
    r = api(app, "DELETE", f"/api/v1/tokens/{made['id']}")
    assert r.status_code == 200 and r.get_json()["revoked_at"].endswith("Z")
    assert c.get("/api/v1/events", headers=bearer(made["token"])).status_code == 401
    assert api(app, "DELETE", "/api/v1/tokens/99999").status_code == 404
    assert api(app, "POST", "/api/v1/tokens", json={"name": "x", "role": "root"}).status_code == 400
    assert api(app, "POST", "/api/v1/tokens", json={"name": ""}).status_code == 400
    names = [t["name"] for t in api(app, "GET", "/api/v1/tokens").get_json()["items"]]
    assert names == ["admin (bootstrap)", "bridge 2"]
    assert [(a.actor, a.action) for a in audit_rows(app)] == [("token:admin (bootstrap)", "token.create"),
                                                              ("token:admin (bootstrap)", "token.revoke")]


def test_a_token_needs_a_name_and_a_known_role_on_the_page(app, admin):
    assert post(admin, "/admin/tokens", "/admin/tokens", name="", role="admin").status_code == 422
    assert post(admin, "/admin/tokens", "/admin/tokens", name="x", role="root").status_code == 422
    assert audit_rows(app) == []


def test_the_tokens_pages_are_for_admins_and_need_csrf(app, admin, ann):
    assert admin.c.get("/admin/tokens").status_code == 200
    assert ann.c.get("/admin/tokens").status_code == 403
    for path in ("/admin/tokens", "/admin/tokens/1/revoke"):
        r = admin.c.post(path, data={"name": "sneaky", "role": "admin"})
        assert r.status_code == 400 and "security token" in r.text
        assert ann.c.post(path, data={"csrf_token": ann.token("/"), "name": "sneaky"}).status_code == 403
    assert audit_rows(app) == []
    assert app.test_client().get("/api/v1/sites", headers={"Authorization": "Bearer web-unit-admin-token"}
                                 ).status_code == 200  # the bootstrap token was not revoked


@pytest.mark.parametrize("method,path,body", [("GET", "/api/v1/tokens", None),
                                              ("POST", "/api/v1/tokens", {"name": "t"}),
                                              ("DELETE", "/api/v1/tokens/1", None)])
def test_the_tokens_api_needs_an_admin_token(app, method, path, body):
    bridge = api(app, "POST", "/api/v1/tokens", json={"name": "b", "role": "bridge"}).get_json()["token"]
    c = app.test_client()
    assert c.open(path, method=method, json=body, headers=bearer(bridge)).status_code == 403
    assert c.open(path, method=method, json=body).status_code == 401
    assert len(audit_rows(app)) == 1  # only the bridge token's creation
