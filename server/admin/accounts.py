"""The admin pages of people and machines: web users (``/admin/users``) and API tokens (``/admin/tokens``).

On the ``admin`` blueprint (admins only, CSRF-protected forms). A password or token dashdesk
makes is shown once, on the page that answers the form (never in a redirect, a flash message
or a log), and kept only as a hash. The changes and their audit rows are ``server.domain.users``'s and
``server.api.auth``'s, as for the API and the command line.
"""

from __future__ import annotations

from typing import Any

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import Session

from dashdesk import wire

from server.admin.blueprint import admin, me, refused
from server.context import ext
from server.domain import audit, tokens, users, web_sessions
from server.domain.errors import NotFound
from server.domain.tokens import TOKEN_ROLES, TokenError, add_token, revoke
from server.models import USER_ROLES, ApiToken, User
from server.pages.session import renew_session


ROLE_LABELS = {"agent": "Agent", "admin": "Admin"}
TOKEN_ROLE_HINTS = {"admin": "everything, the admin API included", "bridge": "hand over presses, read the feed "
                    "(what `dashdesk bridge` needs)"}


# ------------------------------------------------------------------ users


@admin.get("/users")
def user_list(form: dict[str, Any] | None = None, error: str | None = None, shown: dict[str, str] | None = None,
              status: int = 200) -> Any:
    with ext().db.read() as s:
        rows = s.scalars(select(User).order_by(User.username)).all()
        admins = users.active_admins(s)
    return render_template("admin/users.html", rows=rows, form=form or {"role": "agent"}, error=error,
                           shown=shown, roles=USER_ROLES, role_labels=ROLE_LABELS, admins=admins), status


@admin.post("/users")
def user_create() -> Any:
    form = {"username": request.form.get("username", "").strip(), "role": request.form.get("role", "agent")}
    password = request.form.get("password", "")
    made = not password
    if made:
        password = users.generate_password()
    try:
        users.create_user(ext().db, form["username"], password, form["role"], me(), password_made=made)
    except users.UserError as exc:
        return user_list(form=form, error=refused(exc), status=409 if isinstance(exc, users.UserExists) else 422)
    flash(f"User {form['username']} created ({ROLE_LABELS[form['role']].lower()}).", "ok")
    if made:
        return user_list(shown={"username": form["username"], "password": password})
    return redirect(url_for("admin.user_list"), 303)


@admin.get("/users/<username>")
def user(username: str, error: str | None = None, shown: str | None = None, status: int = 200) -> Any:
    with ext().db.read() as s:
        row = users.get(s, username)
        admins = users.active_admins(s)
        history = s.scalars(audit.query(audit.AuditFilter(target=f"user:{row.username}")).limit(20)).all()
        sessions = web_sessions.of_user(s, row.id, wire.utcnow())
    last_admin = row.role == "admin" and row.active and admins <= 1
    return render_template("admin/user.html", u=row, error=error, shown=shown, roles=USER_ROLES,
                           role_labels=ROLE_LABELS, last_admin=last_admin, history=history,
                           me=me(), sessions=sessions, this_session=current_user.session_id,
                           lifetime_h=f"{current_app.permanent_session_lifetime.total_seconds() / 3600:g}"), status


def _user_change(username: str, run: Any) -> Any:
    try:
        with ext().db.write() as s:
            message = run(s, users.get(s, username))
    except NotFound:
        raise  # the 404 page (server.app)
    except users.UserError as exc:
        return user(username, error=refused(exc), status=409)
    if username == me():
        renew_session()  # a change of their own role ended their sessions: this one goes on, as they are now
    flash(message, "ok")
    return redirect(url_for("admin.user", username=username), 303)


@admin.post("/users/<username>/role")
def user_role(username: str) -> Any:
    role = request.form.get("role", "")

    def run(s: Session, u: User) -> str:
        if not users.change_role(s, u, role, me()):
            return "Nothing changed."
        return f"{username} is now {'an admin' if role == 'admin' else 'an agent'}."

    return _user_change(username, run)


@admin.post("/users/<username>/active")
def user_active(username: str) -> Any:
    active = request.form.get("active") == "1"

    def run(s: Session, u: User) -> str:
        if not users.change_active(s, u, active, me()):
            return "Nothing changed."
        return (f"{username} is enabled: they can sign in again." if active else
                f"{username} is disabled: signed out at once, and cannot sign in.")

    return _user_change(username, run)


@admin.post("/users/<username>/sign-out")
def user_sign_out(username: str) -> Any:
    """End every session of the user (on their own page: every other one, this one goes on anew)."""

    def run(s: Session, u: User) -> str:
        ended = users.sign_out(s, u, me())
        if username == me():
            return f"Your other sessions are ended ({ended - 1})." if ended > 1 else "You had no other session."
        return f"{username} is signed out everywhere ({ended} session{'s' if ended != 1 else ''})."

    return _user_change(username, run)


@admin.post("/users/<username>/password")
def user_password(username: str) -> Any:
    password = request.form.get("password", "")
    made = not password
    if made:
        password = users.generate_password()
    try:
        users.set_password(ext().db, username, password, me(), password_made=made)
    except NotFound:
        raise  # the 404 page (server.app)
    except users.UserError as exc:
        return user(username, error=refused(exc), status=422)
    if username == me():
        renew_session()  # their own new password ended every session of theirs but this one, made anew
    flash(f"{username}'s password is changed.", "ok")
    if made:
        return user(username, shown=password)
    return redirect(url_for("admin.user", username=username), 303)


# ------------------------------------------------------------------ API tokens


@admin.get("/tokens")
def token_list(form: dict[str, Any] | None = None, error: str | None = None, shown: dict[str, Any] | None = None,
               status: int = 200, confirm: ApiToken | None = None) -> Any:
    with ext().db.read() as s:
        rows = s.scalars(select(ApiToken).order_by(ApiToken.revoked_at.is_not(None), ApiToken.id.desc())).all()
    return render_template("admin/tokens.html", rows=rows, form=form or {"role": "admin"}, error=error, shown=shown,
                           roles=TOKEN_ROLES, hints=TOKEN_ROLE_HINTS, confirm=confirm), status


@admin.post("/tokens")
def token_create() -> Any:
    form = {"name": request.form.get("name", "").strip(), "role": request.form.get("role", "admin")}
    try:
        with ext().db.write() as s:
            row, token = add_token(s, form["name"], form["role"], me())
            shown = {"id": row.id, "name": row.name, "role": row.role, "token": token}
    except TokenError as exc:
        return token_list(form=form, error=refused(exc) + ".", status=422)
    flash(f"Token {form['name']} created.", "ok")
    return token_list(shown=shown)


@admin.post("/tokens/<int:token_id>/revoke")
def token_revoke(token_id: int) -> Any:
    """Revoke a token; a bridge's only once confirmed (``confirm=1``): until the bridge has a new one, no press
    reaches the desk (they wait in its outbox). Without it, the page asks, saying so."""
    with ext().db.read() as s:
        row = tokens.get(s, token_id)
    if row.role == "bridge" and row.revoked_at is None and request.form.get("confirm") != "1":
        return token_list(confirm=row)
    with ext().db.write() as s:
        row = s.get(ApiToken, token_id)
        name = row.name
        revoke(s, row, me())
    ext().tokens.forget(token_id)
    flash(f"Token {name} is revoked: it is refused from now on.", "ok")
    return redirect(url_for("admin.token_list"), 303)
