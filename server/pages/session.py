"""Signing in to the pages (desk and admin): who the user is, their session (a row of ``web_sessions`` whose key
Flask's signed cookie carries, via Flask-Login), the forms' CSRF tokens (Flask-WTF), the sign-in limits
(Flask-Limiter), the guards a blueprint puts before its pages and the headers after them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Response, abort, current_app, redirect, request, session, url_for
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager, UserMixin, current_user, login_user
from flask_wtf.csrf import CSRFProtect

from dashdesk import wire

from server.context import ext
from server.db import DatabaseBusy
from server.domain import rules, web_sessions
from server.models import User


csrf = CSRFProtect()


login_manager = LoginManager()


# Guessing passwords: failed sign-ins are counted (server.login_limit_*), others are free.
limiter = Limiter(get_remote_address, default_limits=[])


@dataclass
class WebUser(UserMixin):
    """The signed-in user of a request, and the session (``web_sessions`` row) they are signed in with."""

    id: int
    username: str
    role: str
    session_key: str = ""  # what the cookie carries (Flask-Login's user id); the database keeps its hash
    session_id: int = 0

    def get_id(self) -> str:
        return self.session_key

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@login_manager.user_loader
def _load_user(key: str) -> WebUser | None:
    """The session's user: one look-up of the cookie's key joined with its user, on every page request. None
    (signed out) once the session has ended: signed out, a new password, disabled, another role, expired."""
    now = wire.utcnow()
    db = ext().db
    with db.read() as s:
        found = web_sessions.find(s, key, now)
    if found is None:
        return None
    if web_sessions.needs_seen(found, now):
        # Bookkeeping for the admins' list of sessions: never worth a page waiting for another writer.
        try:
            with db.write(wait=False) as s:
                web_sessions.seen(s, found.session_id, now)
        except DatabaseBusy:
            pass  # the next request of this session tries again
    return WebUser(found.user_id, found.username, found.role, key, found.session_id)


def start_session(user_id: int, username: str, role: str) -> None:
    """Sign ``username`` in on this browser: a new session (a new cookie key, a new CSRF token). Ends the one the
    browser had, if any."""
    db = ext().db
    with db.write() as s:
        if current_user.is_authenticated:
            web_sessions.end(s, current_user.session_key)
        key, session_id = web_sessions.start(s, user_id, current_app.permanent_session_lifetime, wire.utcnow(),
                                             request.user_agent.string)
    session.clear()  # a fresh session (and CSRF token) for whoever signs in
    session.permanent = True
    login_user(WebUser(user_id, username, role, key, session_id))


def renew_session() -> None:
    """After a change to the signed-in user that ended their sessions (their own new password, their own role),
    a fresh one for this browser, as they are now; none if they disabled themselves. Nothing if this session
    still holds (the change changed nothing)."""
    with ext().db.read() as s:
        if web_sessions.alive(s, current_user.session_id, wire.utcnow()):
            return
        row = s.get(User, current_user.id)
    if row is not None and row.active:
        start_session(row.id, row.username, row.role)


@login_manager.unauthorized_handler
def _unauthorized() -> Response:
    if request.args.get("partial") or request.path.startswith("/events/") or request.endpoint == "web.session_state":
        abort(401)
    return redirect(url_for("web.login", next=request.full_path.rstrip("?")))


def safe_next(target: str | None) -> str:
    """``target`` if it is a path on this site, else the queue: never an open redirect."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return url_for("web.queue")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or any(ord(c) < 32 for c in target):
        return url_for("web.queue")
    return target


def no_store(response: Response) -> Response:
    # Pages show people's work as it is now; neither browsers nor proxies keep them.
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    return response


def admins_only() -> Any:
    """A guard for the admin pages: sign in first, and be an admin."""
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    if not current_user.is_admin:
        abort(403, "This page is for admins.")
    return None


def init_pages(app: Flask, exempt: list[Any]) -> None:
    """Sessions, CSRF protection (not for ``exempt`` blueprints: they take bearer tokens), the sign-in limits and
    what every page's templates use."""
    from server.pages.formatting import readable_time

    login_manager.init_app(app)
    csrf.init_app(app)
    limiter.init_app(app)
    for blueprint in exempt:
        csrf.exempt(blueprint)
    app.jinja_env.globals.update(ticket_number=rules.ticket_number)
    app.jinja_env.filters["when"] = readable_time
