"""Sign-in, sessions, CSRF, redirects when signed out, roles, users and the session key."""

from __future__ import annotations

import os
import re
import stat
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

import pytest
from sqlalchemy import select

from server.app import create_app
from server.models import User
from server.domain.users import UserError, authenticate, bootstrap_admin, create_user, secret_key

from .conftest import ADMIN_PASSWORD, AGENT_PASSWORD, Desk, api, press


def test_login_page_has_the_contract_labels(app):
    page = app.test_client().get("/login")
    assert page.status_code == 200
    assert '<label for="username">Username</label>' in page.text
    assert '<label for="password">Password</label>' in page.text
    assert ">Sign in</button>" in page.text
    assert 'name="csrf_token"' in page.text


@pytest.mark.parametrize("path", ["/", "/tickets/1", "/admin", "/?status=new&q=shop"])
def test_signed_out_pages_redirect_to_login_with_next(app, path):
    r = app.test_client().get(path)
    assert r.status_code == 302
    assert r.headers["Location"].startswith("/login?next=")
    from urllib.parse import parse_qs, urlsplit
    assert parse_qs(urlsplit(r.headers["Location"]).query)["next"] == [path]


def test_signed_out_stream_and_fragment_answer_401_and_api_and_health_stay_open(app):
    c = app.test_client()
    assert c.get("/events/stream").status_code == 401
    r = c.get("/?partial=1")
    assert r.status_code == 401 and "Sign in again to see this." in r.text
    assert c.get("/healthz").status_code == 200
    assert c.get("/api/v1/tickets").status_code == 401  # the API's own bearer check, not a redirect
    assert api(app, "GET", "/api/v1/tickets").status_code == 200


def test_sign_in_goes_to_next_and_sets_a_safe_cookie(app):
    d = Desk(app)
    r = d.sign_in("ann", AGENT_PASSWORD, next_url="/tickets/7")
    assert r.status_code == 302 and r.headers["Location"] == "/tickets/7"
    cookie = next(h for h in r.headers.getlist("Set-Cookie") if h.startswith("dashdesk_session="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    expires = parsedate_to_datetime(cookie.split("Expires=")[1].split(";")[0])
    assert abs(expires - (datetime.now(timezone.utc) + timedelta(hours=12))) < timedelta(minutes=2)
    page = d.c.get("/")
    assert page.status_code == 200 and "ann" in page.text


@pytest.mark.parametrize("evil", ["//evil.example/x", "http://evil.example/", "/\\evil.example", "javascript:alert(1)",
                                  "https:/evil.example"])
def test_next_must_be_a_local_path(app, evil):
    r = Desk(app).sign_in("ann", AGENT_PASSWORD, next_url=evil)
    assert r.status_code == 302 and r.headers["Location"] == "/"


def test_wrong_password_and_unknown_user_are_refused_alike(app):
    d = Desk(app)
    for user, password in (("ann", "wrong-password"), ("nobody", "wrong-password")):
        r = d.sign_in(user, password)
        assert r.status_code == 401
        assert "Wrong username or password." in r.text
    assert d.c.get("/").status_code == 302


def test_session_lifetime_is_configurable(tmp_path, monkeypatch):
    monkeypatch.setenv("DASHDESK_ADMIN_PASSWORD", ADMIN_PASSWORD)
    app = create_app({"data_dir": str(tmp_path), "server": {"session_lifetime_h": 1}})
    r = Desk(app).sign_in("admin", ADMIN_PASSWORD)
    cookie = next(h for h in r.headers.getlist("Set-Cookie") if h.startswith("dashdesk_session="))
    expires = parsedate_to_datetime(cookie.split("Expires=")[1].split(";")[0])
    assert abs(expires - (datetime.now(timezone.utc) + timedelta(hours=1))) < timedelta(minutes=2)
    app.extensions["dashdesk"].db.close()


def test_sign_out_is_a_post_with_a_token(app, ann):
    assert ann.c.get("/logout").status_code == 405
    assert ann.c.post("/logout").status_code == 400  # no token
    assert ann.c.get("/").status_code == 200
    r = ann.c.post("/logout", data={"csrf_token": ann.token()})
    assert r.status_code == 302 and r.headers["Location"] == "/login"
    assert ann.c.get("/").status_code == 302


def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(app, ann):
    ticket_id = press(app)["ticket"]["id"]
    before = api(app, "GET", f"/api/v1/tickets/{ticket_id}").get_json()
    for data in ({"resolution": "fixed"}, {"resolution": "fixed", "csrf_token": "forged"}):
        r = ann.c.post(f"/tickets/{ticket_id}/resolve", data=data)
        assert r.status_code == 400
        assert "security token" in r.text
    # a token from another session is refused too
    other = Desk(app, "bob")
    r = ann.c.post(f"/tickets/{ticket_id}/resolve", data={"resolution": "fixed", "csrf_token": other.token()})
    assert r.status_code == 400
    after = api(app, "GET", f"/api/v1/tickets/{ticket_id}").get_json()
    assert after == before
    assert after["status"] == "new" and len(after["history"]) == 1


def test_login_itself_needs_the_token(app):
    r = app.test_client().post("/login", data={"username": "ann", "password": AGENT_PASSWORD})
    assert r.status_code == 400


def test_the_api_is_exempt_from_csrf_even_with_a_session_cookie(app, ann):
    ticket_id = press(app)["ticket"]["id"]
    r = ann.c.patch(f"/api/v1/tickets/{ticket_id}", json={"status": "in_progress"},
                    headers={"Authorization": "Bearer web-unit-admin-token"})
    assert r.status_code == 200 and r.get_json()["status"] == "in_progress"
    # a session cookie is no API credential
    assert ann.c.get("/api/v1/tickets").status_code == 401


def test_admin_page_is_for_admins_only(app, admin, ann):
    r = ann.c.get("/admin")
    assert r.status_code == 403 and "for admins" in r.text
    assert admin.c.get("/admin").status_code == 200
    assert 'href="/admin"' in admin.c.get("/").text
    assert 'href="/admin"' not in ann.c.get("/").text


def test_a_deactivated_user_is_signed_out_and_cannot_sign_in(app, ann):
    db = app.extensions["dashdesk"].db
    with db.write() as s:
        s.scalar(select(User).where(User.username == "ann")).active = False
    assert ann.c.get("/").status_code == 302
    assert Desk(app).sign_in("ann", AGENT_PASSWORD).status_code == 401


def test_create_user_validates_and_hashes_with_argon2id(app):
    db = app.extensions["dashdesk"].db
    user = create_user(db, "cat", "a-long-password", "admin")
    assert user.role == "admin" and user.active
    with db.read() as s:
        stored = s.scalar(select(User.password_hash).where(User.username == "cat"))
    assert stored.startswith("$argon2id$") and "a-long-password" not in stored
    assert authenticate(db, "cat", "a-long-password").username == "cat"
    assert authenticate(db, "cat", "a-long-passwor") is None
    for args, message in ((("cat", "another-password", "agent"), "already exists"),
                          (("dan", "short", "agent"), "8 to"),
                          (("dan", "a-long-password", "boss"), "role"),
                          (("-dan", "a-long-password", "agent"), "username")):
        with pytest.raises(UserError, match=message):
            create_user(db, *args)


def test_bootstrap_admin_happens_once(app):
    db = app.extensions["dashdesk"].db
    assert bootstrap_admin(db, "a-different-password") is False  # made at start already
    assert authenticate(db, "admin", ADMIN_PASSWORD).role == "admin"
    assert authenticate(db, "admin", "a-different-password") is None
    assert bootstrap_admin(db, None) is False


def test_secret_key_is_made_once_kept_0600_and_configurable(tmp_path):
    key = secret_key(None, tmp_path)
    path = tmp_path / "secret_key"
    assert len(key) >= 48 and path.read_text().strip() == key
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert secret_key(None, tmp_path) == key
    assert secret_key("configured", tmp_path) == "configured"


def test_sessions_survive_a_restart(tmp_path, monkeypatch):
    monkeypatch.setenv("DASHDESK_ADMIN_PASSWORD", ADMIN_PASSWORD)
    first = create_app({"data_dir": str(tmp_path)})
    d = Desk(first, "admin")
    cookie = d.c.get_cookie("dashdesk_session")
    first.extensions["dashdesk"].db.close()
    second = create_app({"data_dir": str(tmp_path)})
    c = second.test_client()
    c.set_cookie("dashdesk_session", cookie.value)
    assert c.get("/").status_code == 200
    second.extensions["dashdesk"].db.close()


def test_env_secret_key_is_read(tmp_path, monkeypatch):
    from dashdesk import config
    cfg = config.load(env={"DASHDESK_SECRET_KEY": "from-env", "DASHDESK_CONFIG": str(tmp_path / "none.toml")})
    assert cfg["server"]["secret_key"] == "from-env"


def test_failed_sign_ins_are_limited_per_address_and_username_and_successes_are_free(tmp_path, monkeypatch):
    monkeypatch.setenv("DASHDESK_ADMIN_TOKEN", "t")
    app = create_app({"data_dir": str(tmp_path), "server": {"login_limit_per_user": "3 per minute",
                                                            "login_limit_per_address": "5 per minute"}})
    db = app.extensions["dashdesk"].db
    for name in ("ann", "bob", "cy"):
        create_user(db, name, AGENT_PASSWORD, "agent")
    try:
        for _ in range(4):  # successful sign-ins cost nothing
            assert Desk(app).sign_in("ann", AGENT_PASSWORD).status_code == 302
        d = Desk(app)
        assert [d.sign_in("ann", "wrong-password").status_code for _ in range(3)] == [401, 401, 401]
        blocked = d.sign_in("ann", AGENT_PASSWORD)  # even the right password waits now
        assert blocked.status_code == 429 and "Too many failed sign-ins" in blocked.text
        assert int(blocked.headers["Retry-After"]) > 0
        assert d.c.get("/").status_code == 302  # not signed in
        # Another user from the same address still may, until the address's own limit.
        assert d.sign_in("bob", "wrong-password").status_code == 401
        assert d.sign_in("bob", "wrong-password").status_code == 401
        assert d.sign_in("cy", AGENT_PASSWORD).status_code == 429  # 5 failures from this address
        # The API (bearer tokens) is not limited by the web's sign-in failures.
        assert app.test_client().get("/api/v1/categories", headers={"Authorization": "Bearer t"}).status_code == 200
    finally:
        db.close()


def test_a_new_password_ends_the_sessions_signed_in_with_the_old_one(app):
    from server.domain.users import set_password

    ann = Desk(app, "ann")
    assert ann.c.get("/").status_code == 200
    set_password(app.extensions["dashdesk"].db, "ann", "a-brand-new-password")
    assert ann.c.get("/").status_code == 302  # signed out
    again = Desk(app, "ann", "a-brand-new-password")
    assert again.c.get("/").status_code == 200


def test_a_rehash_at_sign_in_keeps_that_session(app, monkeypatch):
    from argon2 import PasswordHasher

    from server.domain import users

    db = app.extensions["dashdesk"].db

    def stored() -> str:
        with db.read() as s:
            return s.scalar(select(User.password_hash).where(User.username == "ann"))

    before = stored()
    assert "$m=1024,t=1,p=1$" in before
    # Stronger parameters than the stored hash: the sign-in rehashes it.
    users.use_hasher(PasswordHasher(time_cost=2, memory_cost=2048, parallelism=1))  # put back by cheap_password_hashes
    ann = Desk(app, "ann")
    assert ann.c.get("/").status_code == 200
    after = stored()
    assert after != before and "$m=2048,t=2,p=1$" in after
    assert users.check_password(after, AGENT_PASSWORD)
    # Signing in again finds nothing to upgrade, and the session made at the rehash still holds.
    assert Desk(app, "ann").c.get("/").status_code == 200
    assert stored() == after
    assert ann.c.get("/").status_code == 200


def test_an_open_page_can_ask_whether_its_session_holds_and_for_its_form_token(app, ann):
    r = ann.c.get("/session")
    assert r.status_code == 204 and r.headers["X-CSRF-Token"]
    # the token it gives is the one the session's forms take
    tid = press(app, "shop-session")["ticket"]["id"]
    assert ann.c.post(f"/tickets/{tid}/take", data={"csrf_token": r.headers["X-CSRF-Token"]}).status_code == 303
    ann.c.post("/logout", data={"csrf_token": ann.token()})
    r = ann.c.get("/session")
    assert r.status_code == 401 and "X-CSRF-Token" not in r.headers
    assert app.test_client().get("/session").status_code == 401


BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.mark.parametrize("method, path, status", [
    ("GET", "/tickets/abc", 404), ("GET", "/tickets/-1", 404), ("GET", "/tickets/99999", 404),
    ("GET", "/tickets/1/take", 405), ("GET", "/tickets/1/nonsense", 405), ("GET", "/nowhere", 404),
    ("POST", "/", 405)])
def test_a_wrong_desk_address_answers_the_desks_error_page(app, ann, method, path, status):
    press(app, "shop-errors")
    r = ann.c.open(path, method=method, headers={"Accept": BROWSER_ACCEPT},
                   data={"csrf_token": ann.token()} if method == "POST" else None)
    assert r.status_code == status
    assert r.mimetype == "text/html" and "<h1>" in r.text and "Back to the queue" in r.text, r.text[:300]
    assert "Sign out" in r.text  # the desk's own page, signed in
    # the API's addresses answer JSON, whatever the client accepts
    r = ann.c.get("/api/v1/nowhere", headers={"Accept": BROWSER_ACCEPT})
    assert r.status_code in (401, 404) and r.is_json


def test_every_desk_page_names_its_icon(app, ann):
    page = ann.c.get("/").text
    icon = re.search(r'<link rel="icon" href="([^"]+)"', page)
    assert icon and app.test_client().get(icon.group(1)).status_code == 200
    assert app.test_client().get("/favicon.ico").status_code == 200
