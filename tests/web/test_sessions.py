"""Web sessions are rows of ``web_sessions``: signing out, a new password, disabling and a change of role end
them at once, a cookie copied before is worth nothing after, and an open live-update stream stops."""

from __future__ import annotations

import hashlib
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from dashdesk import wire
from server.app import create_app
from server.models import WebSession
from server.domain.users import create_user, set_active, set_password, set_role

from .conftest import ADMIN_PASSWORD, AGENT_PASSWORD, TOKEN, Desk, api, csrf_of

COOKIE = "dashdesk_session"


def copy_of(desk: Desk) -> Desk:
    """Another client holding a copy of ``desk``'s session cookie (as someone who took it would)."""
    other = Desk(desk.app)
    other.c.set_cookie(COOKIE, desk.c.get_cookie(COOKIE).value)
    return other


def signed_out(desk: Desk) -> bool:
    """Whether ``desk`` is signed out: the queue sends it to the sign-in page, the stream and /session answer 401."""
    queue = desk.c.get("/")
    if queue.status_code != 302 or not queue.headers["Location"].startswith("/login"):
        return False
    assert desk.c.get("/events/stream").status_code == 401
    assert desk.c.get("/session").status_code == 401
    return True


def rows(app) -> list[WebSession]:
    with app.extensions["dashdesk"].db.read() as s:
        return list(s.scalars(select(WebSession).order_by(WebSession.id)))


def test_a_cookie_copied_before_signing_out_opens_nothing_after(app, ann):
    copy = copy_of(ann)
    assert copy.c.get("/").status_code == 200  # the copy works while the session holds
    r = ann.c.post("/logout", data={"csrf_token": ann.token()})
    assert r.status_code == 302 and r.headers["Location"] == "/login"
    assert signed_out(copy)
    assert signed_out(ann)
    assert rows(app) == []


def test_the_database_keeps_only_a_hash_of_the_session_key_and_who_signed_in_with_what(app, ann):
    (row,) = rows(app)
    cookie = app.session_interface.get_signing_serializer(app).loads(ann.c.get_cookie(COOKIE).value)
    key = cookie["_user_id"]  # what Flask-Login keeps in the signed cookie: the session's key
    assert len(key) >= 43 and len(row.key_hash) == 64
    assert key not in repr(row.__dict__) and hashlib.sha256(key.encode()).hexdigest() == row.key_hash
    assert row.user_agent.startswith("Werkzeug/")
    assert row.expires_at - row.created_at == timedelta(hours=12)


def test_each_sign_in_is_a_session_of_its_own_and_signing_out_ends_only_that_one(app):
    first, second = Desk(app, "ann"), Desk(app, "ann")
    assert len(rows(app)) == 2
    first.c.post("/logout", data={"csrf_token": first.token()})
    assert signed_out(first)
    assert second.c.get("/").status_code == 200


def test_signing_in_again_in_the_same_browser_ends_its_former_session(app, ann):
    copy = copy_of(ann)
    # the sign-in form posted while signed in (a page of it left open in another tab)
    r = ann.c.post("/login", data={"csrf_token": ann.token(), "username": "bob", "password": AGENT_PASSWORD})
    assert r.status_code == 302
    assert "bob" in ann.c.get("/").text
    assert signed_out(copy)
    assert len(rows(app)) == 1


@pytest.mark.parametrize("change", ["password", "disable", "demote", "promote"])
def test_a_change_to_a_user_ends_their_sessions_at_once_from_the_admin_pages(app, admin, change):
    create_user(app.extensions["dashdesk"].db, "cy", AGENT_PASSWORD, "admin" if change == "demote" else "agent")
    cy, cy_elsewhere = Desk(app, "cy"), Desk(app, "cy")
    ann = Desk(app, "ann")
    path, form = {"password": ("password", {"password": "a-new-password-1"}),
                  "disable": ("active", {"active": "0"}),
                  "demote": ("role", {"role": "agent"}),
                  "promote": ("role", {"role": "admin"})}[change]
    r = admin.c.post(f"/admin/users/cy/{path}", data={"csrf_token": admin.token("/admin/users/cy"), **form})
    assert r.status_code == 303
    assert signed_out(cy) and signed_out(cy_elsewhere)
    assert ann.c.get("/").status_code == 200 and admin.c.get("/admin").status_code == 200  # others stay


@pytest.mark.parametrize("change", ["password", "disable", "role"])
def test_a_change_through_the_api_ends_the_users_sessions(app, change):
    ann = Desk(app, "ann")
    if change == "password":
        r = api(app, "POST", "/api/v1/users/ann/password", json={"password": "a-new-password-1"})
    else:
        r = api(app, "PATCH", "/api/v1/users/ann", json={"active": False} if change == "disable" else {"role": "admin"})
    assert r.status_code == 200
    assert signed_out(ann)


def test_server_users_functions_end_the_sessions_as_the_command_line_calls_them(app):
    """``dashdesk user password|disable|role`` call these (tests/integration/test_cli.py runs the commands)."""
    db = app.extensions["dashdesk"].db
    for name, change in (("cy", lambda: set_password(db, "cy", "a-new-password-1", "cli:root")),
                         ("dee", lambda: set_role(db, "dee", "admin", "cli:root")),
                         ("eli", lambda: set_active(db, "eli", False, "cli:root"))):
        create_user(db, name, AGENT_PASSWORD, "agent")
        desk = Desk(app, name)
        assert desk.c.get("/").status_code == 200
        change()
        assert signed_out(desk), name


def test_an_admin_who_sets_their_own_password_keeps_a_fresh_session_and_their_other_sessions_end(app, admin):
    elsewhere = Desk(app, "admin")
    before = copy_of(admin)
    r = admin.c.post("/admin/users/admin/password", data={"csrf_token": admin.token("/admin/users/admin"),
                                                          "password": "a-new-admin-password"})
    assert r.status_code == 303
    page = admin.c.get("/admin/users/admin")
    assert page.status_code == 200 and "admin&#39;s password is changed." in page.text  # this browser goes on
    assert signed_out(elsewhere) and signed_out(before)  # the cookie it had before is worth nothing
    assert len(rows(app)) == 1
    # and a form on the page it now shows works with the new session's token
    page = admin.c.get("/admin/users/ann").text
    r = admin.c.post("/admin/users/ann/role", data={"csrf_token": csrf_of(page), "role": "admin"})
    assert r.status_code == 303


def test_an_admin_who_steps_down_goes_on_as_an_agent(app, admin):
    admin.c.post("/admin/users/ann/role", data={"csrf_token": admin.token("/admin/users/ann"), "role": "admin"})
    before = copy_of(admin)
    r = admin.c.post("/admin/users/admin/role", data={"csrf_token": admin.token("/admin/users/admin"),
                                                      "role": "agent"})
    assert r.status_code == 303
    assert admin.c.get("/").status_code == 200 and admin.c.get("/admin").status_code == 403
    assert signed_out(before)


def test_a_session_ends_at_its_lifetime_and_expired_rows_go_at_the_next_sign_in(app, ann):
    db = app.extensions["dashdesk"].db
    (ann_row,) = rows(app)
    bob = Desk(app, "bob")
    with db.write() as s:
        s.execute(update(WebSession).where(WebSession.id == ann_row.id)
                  .values(expires_at=wire.utcnow() - timedelta(seconds=1)))
    assert signed_out(ann)  # its cookie is still signed and unexpired: the row says no
    assert bob.c.get("/").status_code == 200
    assert len(rows(app)) == 2
    Desk(app, "admin")
    left = rows(app)
    assert len(left) == 2 and ann_row.id not in [r.id for r in left]  # gone at the sign-in; bob's and admin's stay


def test_the_last_seen_time_is_written_at_most_every_few_minutes(app, ann):
    from server.domain import web_sessions

    db = app.extensions["dashdesk"].db
    (row,) = rows(app)
    ann.c.get("/")
    assert rows(app)[0].last_seen_at == row.last_seen_at  # not at every request
    with db.write() as s:
        s.execute(update(WebSession).values(last_seen_at=row.last_seen_at - web_sessions.SEEN_EVERY))
    ann.c.get("/")
    assert rows(app)[0].last_seen_at > row.last_seen_at


def test_a_page_does_not_wait_for_another_writer_to_note_that_its_session_was_seen(app, ann):
    """The last-seen time is bookkeeping: with the database's write lock held by another process, a page that is
    due to write it answers at once without it (it waited for the lock, then answered 503, before)."""
    import sqlite3

    from server.domain import web_sessions

    db = app.extensions["dashdesk"].db
    (row,) = rows(app)
    old = row.last_seen_at - web_sessions.SEEN_EVERY
    with db.write() as s:
        s.execute(update(WebSession).values(last_seen_at=old))
    other = sqlite3.connect(db.engine.url.database, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        r = ann.c.get("/")
        took = time.monotonic() - started
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert r.status_code == 200 and took < 2.0, (r.status_code, took)
    assert rows(app)[0].last_seen_at == old  # not written this time; the next request will
    ann.c.get("/")
    assert rows(app)[0].last_seen_at > old


@pytest.fixture
def long_stream_app(tmp_path, monkeypatch):
    """A server whose live-update streams last 60 s, as by default: longer than any test waits."""
    monkeypatch.setenv("DASHDESK_ADMIN_TOKEN", TOKEN)
    monkeypatch.setenv("DASHDESK_ADMIN_PASSWORD", ADMIN_PASSWORD)
    app = create_app({"data_dir": str(tmp_path), "server": {"sse_lifetime_s": 60}})
    create_user(app.extensions["dashdesk"].db, "ann", AGENT_PASSWORD, "agent")
    yield app
    app.extensions["dashdesk"].db.close()


@pytest.mark.parametrize("how", ["sign-out", "disable"])
def test_an_open_stream_stops_within_a_second_or_two_of_the_session_ending(long_stream_app, how):
    from server.desk import stream as web

    app = long_stream_app
    ann = Desk(app, "ann")
    stream = ann.c.get("/events/stream", buffered=False)
    assert stream.status_code == 200
    chunks = iter(stream.response)
    assert "dashdesk events" in next(chunks).decode()
    ended = threading.Event()

    def drain() -> None:
        for _ in chunks:
            pass
        ended.set()

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    time.sleep(0.5)
    assert not ended.is_set()  # open, as long as the session holds
    started = time.monotonic()
    if how == "sign-out":
        other = copy_of(ann)
        other.c.post("/logout", data={"csrf_token": other.token()})
    else:
        api(app, "PATCH", "/api/v1/users/ann", json={"active": False})
    # SESSION_CHECK_S (1 s) and a poll (0.2 s); a loaded machine gets many times that, far short of 60 s.
    assert ended.wait(15), "the stream went on serving a user signed out"
    took = time.monotonic() - started
    assert took < 15 and web.SESSION_CHECK_S == 1.0
    stream.close()
    assert ann.c.get("/events/stream").status_code == 401


def test_an_admin_sees_where_a_user_is_signed_in_and_signs_them_out_everywhere(app, admin):
    ann_here, ann_there = Desk(app, "ann"), Desk(app, "ann")
    page = admin.c.get("/admin/users/ann").text
    assert page.count("<tr data-session=") == 2 and "Werkzeug/" in page and "for 12 h from its sign-in" in page
    r = admin.c.post("/admin/users/ann/sign-out", data={"csrf_token": admin.token("/admin/users/ann")})
    assert r.status_code == 303
    page = admin.c.get("/admin/users/ann").text
    assert "ann is signed out everywhere (2 sessions)." in page and 'id="no-sessions"' in page
    assert signed_out(ann_here) and signed_out(ann_there)
    from tests.admin.conftest import audit_rows

    (row,) = audit_rows(app, "user.sign_out")
    assert (row.actor, row.target, row.details) == ("admin", "user:ann", {"sessions": 2})
    # an agent may not; nor without the form's token
    bob = Desk(app, "bob")
    assert bob.c.post("/admin/users/ann/sign-out", data={"csrf_token": bob.token()}).status_code == 403
    assert admin.c.post("/admin/users/ann/sign-out").status_code == 400


def test_an_admin_signs_out_their_other_sessions_and_goes_on_here(app, admin):
    elsewhere = Desk(app, "admin")
    page = admin.c.get("/admin/users/admin").text
    assert '<tr data-session="this">' in page and "(this browser)" in page
    r = admin.c.post("/admin/users/admin/sign-out", data={"csrf_token": admin.token("/admin/users/admin")})
    assert r.status_code == 303
    page = admin.c.get("/admin/users/admin").text
    assert "Your other sessions are ended (1)." in page and page.count("<tr data-session=") == 1
    assert signed_out(elsewhere)


def test_a_change_to_oneself_that_changes_nothing_keeps_the_session(app, admin):
    before = copy_of(admin)
    r = admin.c.post("/admin/users/admin/role", data={"csrf_token": admin.token("/admin/users/admin"), "role": "admin"})
    assert r.status_code == 303 and "Nothing changed." in admin.c.get("/admin/users/admin").text
    assert before.c.get("/admin").status_code == 200  # the same session as before


def test_a_user_changes_their_own_password_keeps_a_fresh_session_and_their_others_end(app, ann):
    elsewhere, before = Desk(app, "ann"), copy_of(ann)
    page = ann.c.get("/password")
    assert page.status_code == 200 and 'href="/password"' in page.text
    form = {"csrf_token": csrf_of(page.text), "current": AGENT_PASSWORD, "password": "ann-new-password",
            "again": "ann-new-password"}
    for wrong, status, says in (({"current": "not-it-at-all"}, 403, "Your current password is not that."),
                                ({"again": "something-else"}, 422, "differ"),
                                ({"password": "short", "again": "short"}, 422, "8 to 1024 characters")):
        r = ann.c.post("/password", data={**form, **wrong})
        assert r.status_code == status and says in r.text
    assert elsewhere.c.get("/").status_code == 200  # nothing changed yet
    assert ann.c.post("/password", data={**form, "csrf_token": "forged"}).status_code == 400
    r = ann.c.post("/password", data=form)
    assert r.status_code == 303 and r.headers["Location"] == "/"
    assert "Your password is changed; you are signed out everywhere else." in ann.c.get("/").text
    assert signed_out(elsewhere) and signed_out(before)
    assert Desk(app).sign_in("ann", AGENT_PASSWORD).status_code == 401
    assert Desk(app).sign_in("ann", "ann-new-password").status_code == 302
    from tests.admin.conftest import audit_rows

    (row,) = audit_rows(app, "user.password")
    assert (row.actor, row.target) == ("ann", "user:ann")


def test_guessing_the_current_password_is_limited(app, ann):
    form = {"csrf_token": ann.token("/password"), "current": "wrong-guess", "password": "ann-new-password",
            "again": "ann-new-password"}
    assert [ann.c.post("/password", data=form).status_code for _ in range(6)] == [403] * 5 + [429]
    assert ann.c.get("/").status_code == 200  # still signed in, password unchanged


def test_hostile_values_in_the_own_password_form_get_a_reason_and_change_nothing(app, ann):
    token = ann.token("/password")
    form = {"csrf_token": token, "current": AGENT_PASSWORD}
    for values, status, says in (
            ({"password": "x" * 100_000, "again": "x" * 100_000}, 422, "8 to 1024 characters"),
            ({"password": "nul\x00password", "again": "nul\x00password"}, 400, "NUL"),
            ({"current": "\x00" * 9, "password": "ann-new-password", "again": "ann-new-password"}, 400, "NUL"),
            ({"password": "١٢٣٤٥٦٧٨٩٠", "again": "١٢٣٤٥٦٧٨٩١"}, 422, "differ"),
            ({"password": "\u202eann-new-password", "again": "ann-new-password"}, 422, "differ")):
        r = ann.c.post("/password", data={**form, **values})
        assert (r.status_code, says in r.text) == (status, True), values
    # A lone surrogate, percent-escaped as a browser cannot send it: read as U+FFFD, never a 5xx.
    r = ann.c.post("/password", data=f"csrf_token={token}&current={AGENT_PASSWORD}&password=%ED%A0%80abcdefgh"
                                     "&again=%ED%A0%81abcdefgh", content_type="application/x-www-form-urlencoded")
    assert r.status_code == 422 and "differ" in r.text
    assert ann.c.get("/").status_code == 200  # still signed in, in the same session
    assert Desk(app).sign_in("ann", AGENT_PASSWORD).status_code == 302  # the password is what it was
