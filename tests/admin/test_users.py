"""Users on /admin/users and /api/v1/users: create (agent or admin, a password given or made and shown once),
disable and enable, role, reset password, last sign-in; never leave the desk without an active admin."""

from __future__ import annotations

import re

import pytest

from server.domain.tokens import create_token

from .conftest import AGENT_PASSWORD, Desk, api, audit_rows, post

PAGES = ["/admin/users", "/admin/users/ann"]
FORMS = ["/admin/users", "/admin/users/ann/role", "/admin/users/ann/active", "/admin/users/ann/password"]


def shown_password(html: str) -> str:
    m = re.search(r'id="shown-password">([^<]+)<', html)
    assert m, "no password shown on the page"
    return m.group(1)


def test_an_admin_creates_an_agent_who_signs_in_and_the_list_shows_the_sign_in(app, admin):
    r = post(admin, "/admin/users", "/admin/users", username="carol", role="agent", password="carol-password-1")
    assert r.status_code == 303 and r.headers["Location"] == "/admin/users"
    page = admin.c.get("/admin/users").text
    assert "User carol created (agent)." in page
    row = re.search(r'<tr data-user="carol">.*?</tr>', page, re.S).group(0)
    assert "Agent" in row and "Active" in row and "never" in row
    carol = Desk(app, "carol", "carol-password-1")
    assert carol.c.get("/").status_code == 200  # signed in: the queue
    assert carol.c.get("/admin").status_code == 403  # an agent
    row = re.search(r'<tr data-user="carol">.*?</tr>', admin.c.get("/admin/users").text, re.S).group(0)
    assert "never" not in row  # the last sign-in is shown
    (created,) = audit_rows(app, "user.create")
    assert (created.actor, created.target, created.details) == ("admin", "user:carol",
                                                                {"role": "agent", "password_made": False})


def test_a_made_password_is_shown_once_and_works(app, admin):
    r = post(admin, "/admin/users", "/admin/users", username="dave", role="admin", password="")
    assert r.status_code == 200
    password = shown_password(r.text)
    assert len(password) >= 16 and "shown this once" in r.text
    assert password not in admin.c.get("/admin/users").text  # not again
    assert password not in str([a.details for a in audit_rows(app)])
    dave = Desk(app, "dave", password)
    assert dave.c.get("/admin").status_code == 200  # an admin
    listed = api(app, "GET", "/api/v1/users").get_json()["items"]
    assert {u["username"]: u["role"] for u in listed}["dave"] == "admin"
    assert all("password" not in u for u in listed)


def test_creating_a_user_refuses_a_taken_name_a_bad_name_and_a_short_password(app, admin):
    assert post(admin, "/admin/users", "/admin/users", username="ann", password="long-enough-1").status_code == 409
    r = post(admin, "/admin/users", "/admin/users", username="-bad name", password="long-enough-1")
    assert r.status_code == 422 and "A username is 1-100 letters" in r.text
    r = post(admin, "/admin/users", "/admin/users", username="eve", password="short")
    assert r.status_code == 422 and "8 to 1024 characters" in r.text
    assert audit_rows(app, "user.create") == []


def test_a_disabled_user_is_signed_out_and_cannot_sign_in_until_enabled(app, admin, ann):
    assert ann.c.get("/").status_code == 200
    r = post(admin, "/admin/users/ann/active", "/admin/users/ann", active="0")
    assert r.status_code == 303
    assert "ann is disabled" in admin.c.get("/admin/users/ann").text
    assert ann.c.get("/").status_code == 302  # signed out at the next request
    again = Desk(app)
    assert again.sign_in("ann", AGENT_PASSWORD).status_code == 401
    post(admin, "/admin/users/ann/active", "/admin/users/ann", active="1")
    assert Desk(app).sign_in("ann", AGENT_PASSWORD).status_code == 302
    assert [a.action for a in audit_rows(app) if a.target == "user:ann"] == ["user.disable", "user.enable"]


def test_the_last_active_admin_can_be_neither_disabled_nor_demoted(app, admin):
    page = admin.c.get("/admin/users/admin").text
    assert "is the last active admin" in page
    r = post(admin, "/admin/users/admin/active", "/admin/users/admin", active="0")
    assert r.status_code == 409 and "admin is the last active admin and cannot be disabled" in r.text
    r = post(admin, "/admin/users/admin/role", "/admin/users/admin", role="agent")
    assert r.status_code == 409 and "cannot be demoted" in r.text
    assert admin.c.get("/admin").status_code == 200  # still an admin, still signed in
    assert [a.action for a in audit_rows(app)] == []
    # With a second admin, the first may step down.
    post(admin, "/admin/users/ann/role", "/admin/users/ann", role="admin")
    r = post(admin, "/admin/users/admin/role", "/admin/users/admin", role="agent")
    assert r.status_code == 303
    assert admin.c.get("/admin").status_code == 403  # an agent from the next request on
    assert [(a.action, a.target, a.details) for a in audit_rows(app)] == [
        ("user.role", "user:ann", {"was": "agent", "now": "admin"}),
        ("user.role", "user:admin", {"was": "admin", "now": "agent"})]
    # and now ann is the last admin: the API refuses too
    r = api(app, "PATCH", "/api/v1/users/ann", json={"active": False})
    assert r.status_code == 409 and "last active admin" in r.get_json()["error"]["message"]


def test_an_admin_resets_a_password_given_or_made(app, admin):
    r = post(admin, "/admin/users/ann/password", "/admin/users/ann", password="new-ann-password")
    assert r.status_code == 303
    assert Desk(app).sign_in("ann", AGENT_PASSWORD).status_code == 401
    assert Desk(app).sign_in("ann", "new-ann-password").status_code == 302
    r = post(admin, "/admin/users/ann/password", "/admin/users/ann", password="")
    made = shown_password(r.text)
    assert Desk(app).sign_in("ann", made).status_code == 302
    assert post(admin, "/admin/users/ann/password", "/admin/users/ann", password="short").status_code == 422
    rows = [a for a in audit_rows(app, "user.password")]
    assert [a.details for a in rows] == [{"password_made": False}, {"password_made": True}]


def test_the_users_api_creates_lists_changes_and_resets(app):
    r = api(app, "POST", "/api/v1/users", json={"username": "frank", "role": "agent"})
    assert r.status_code == 201
    body = r.get_json()
    assert body["username"] == "frank" and body["active"] and body["last_login_at"] is None
    assert Desk(app).sign_in("frank", body["password"]).status_code == 302
    assert api(app, "GET", "/api/v1/users/frank").get_json()["last_login_at"].endswith("Z")
    r = api(app, "POST", "/api/v1/users", json={"username": "gina", "password": "gina-password", "role": "admin"})
    assert r.status_code == 201 and "password" not in r.get_json()
    assert api(app, "POST", "/api/v1/users", json={"username": "gina", "password": "gina-password"}).status_code == 409
    assert api(app, "POST", "/api/v1/users", json={"username": "x y", "password": "gina-password"}).status_code == 400
    assert api(app, "POST", "/api/v1/users", json={"username": "hal", "password": "short"}).status_code == 400
    r = api(app, "PATCH", "/api/v1/users/frank", json={"role": "admin", "active": False})
    assert r.status_code == 200 and (r.get_json()["role"], r.get_json()["active"]) == ("admin", False)
    assert api(app, "PATCH", "/api/v1/users/nobody", json={"active": False}).status_code == 404
    assert api(app, "PATCH", "/api/v1/users/frank", json={}).get_json()["active"] is False  # {} changes nothing
    assert api(app, "PATCH", "/api/v1/users/frank", json={"active": 1}).status_code == 400  # a JSON boolean
    r = api(app, "POST", "/api/v1/users/gina/password", json={})
    assert r.status_code == 200 and Desk(app).sign_in("gina", r.get_json()["password"]).status_code == 302
    actions = [(a.actor, a.action, a.target) for a in audit_rows(app)]
    assert actions == [("token:admin (bootstrap)", "user.create", "user:frank"),
                       ("token:admin (bootstrap)", "user.create", "user:gina"),
                       ("token:admin (bootstrap)", "user.role", "user:frank"),
                       ("token:admin (bootstrap)", "user.disable", "user:frank"),
                       ("token:admin (bootstrap)", "user.password", "user:gina")]


@pytest.mark.parametrize("path", PAGES)
def test_the_users_pages_are_for_admins(app, admin, ann, path):
    assert admin.c.get(path).status_code == 200
    assert ann.c.get(path).status_code == 403


@pytest.mark.parametrize("path", FORMS)
def test_the_users_forms_refuse_a_post_without_its_csrf_token(app, admin, ann, path):
    r = admin.c.post(path, data={"username": "x1", "password": "long-enough-1", "role": "admin", "active": "0"})
    assert r.status_code == 400 and "security token" in r.text
    assert ann.c.post(path, data={"csrf_token": ann.token("/"), "role": "admin", "active": "0"}).status_code == 403
    assert audit_rows(app) == []
    assert Desk(app).sign_in("ann", AGENT_PASSWORD).status_code == 302  # nothing changed


@pytest.mark.parametrize("method,path,body", [("GET", "/api/v1/users", None),
                                              ("POST", "/api/v1/users", {"username": "z1"}),
                                              ("GET", "/api/v1/users/ann", None),
                                              ("PATCH", "/api/v1/users/ann", {"active": False}),
                                              ("POST", "/api/v1/users/ann/password", {})])
def test_the_users_api_needs_an_admin_token(app, method, path, body):
    bridge = create_token(app.extensions["dashdesk"].db, "a bridge", "bridge")
    c = app.test_client()
    r = c.open(path, method=method, json=body, headers={"Authorization": f"Bearer {bridge}"})
    assert r.status_code == 403
    assert c.open(path, method=method, json=body).status_code == 401
    assert audit_rows(app) == []



def test_a_refusal_that_starts_with_a_user_name_keeps_the_name_as_written(app, admin):
    api(app, "POST", "/api/v1/users", json={"username": "jkowalski", "role": "admin", "password": "jk-password-123"})
    post(admin, "/admin/users/admin/role", "/admin/users/admin", role="agent")
    jk = Desk(app, "jkowalski", "jk-password-123")
    r = post(jk, "/admin/users/jkowalski/active", "/admin/users/jkowalski", active="0")
    assert r.status_code == 409
    assert "jkowalski is the last active admin and cannot be disabled" in r.text and "Jkowalski" not in r.text
    # a sentence that starts with a word still starts with a capital
    r = post(jk, "/admin/users/jkowalski/role", "/admin/users/jkowalski", role="boss")
    assert r.status_code == 409 and "Role must be one of agent, admin" in r.text
