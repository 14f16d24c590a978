"""Signing in and out, and one's own password: ``/login``, ``/logout``, ``/password``, ``/session``."""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, flash, redirect, render_template, request, session, url_for
from flask_limiter.util import get_remote_address
from flask_login import current_user, logout_user
from flask_wtf import FlaskForm
from flask_wtf.csrf import generate_csrf
from wtforms import PasswordField, StringField, SubmitField
from wtforms.validators import DataRequired, Length

from server.context import ext
from server.desk.blueprint import web
from server.domain import users, web_sessions
from server.models import User
from server.pages.session import limiter, renew_session, safe_next, start_session


@web.get("/favicon.ico")
def favicon() -> Response:
    """The app's icon, for whatever asks for /favicon.ico (the pages name it in their head)."""
    return current_app.send_static_file("app/icons/icon-192.png")


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=100)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=users.MAX_PASSWORD)])
    submit = SubmitField("Sign in")


def _sign_in_failed(response: Response) -> bool:
    return response.status_code == 401


def _address_and_username() -> str:
    return f"{get_remote_address()}|{(request.form.get('username') or '').strip().lower()[:100]}"


@web.route("/login", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["DASHDESK_LOGIN_LIMIT_PER_USER"], key_func=_address_and_username,
               methods=["POST"], deduct_when=_sign_in_failed, scope="login-user")
@limiter.limit(lambda: current_app.config["DASHDESK_LOGIN_LIMIT_PER_ADDRESS"], methods=["POST"],
               deduct_when=_sign_in_failed, scope="login-address")
def login() -> Any:
    form = LoginForm()
    next_url = safe_next(request.args.get("next"))
    if current_user.is_authenticated and request.method == "GET":
        return redirect(next_url)
    if form.validate_on_submit():
        user = users.authenticate(ext().db, form.username.data.strip(), form.password.data)
        if user is not None:
            start_session(user.id, user.username, user.role)
            return redirect(next_url)
        form.password.errors.append("Wrong username or password.")
        return render_template("login.html", form=form, next_url=next_url), 401
    return render_template("login.html", form=form, next_url=next_url), 400 if form.errors else 200


@web.post("/logout")
def logout() -> Any:
    with ext().db.write() as s:
        web_sessions.end(s, current_user.session_key)  # the cookie, kept or copied, opens nothing any more
    logout_user()
    session.clear()
    flash("You are signed out.", "info")
    return redirect(url_for("web.login"))


def _own_password_wrong(response: Response) -> bool:
    return response.status_code == 403


@web.route("/password", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["DASHDESK_LOGIN_LIMIT_PER_USER"], key_func=lambda: f"pw|{current_user.id}",
               methods=["POST"], deduct_when=_own_password_wrong, scope="own-password")
def own_password() -> Any:
    """Change one's own password (the current one, then the new one twice). Every other session of the user ends;
    this browser goes on in a new one."""
    if request.method == "GET":
        return render_template("password.html", error=None)
    current = request.form.get("current", "")
    new, again = request.form.get("password", ""), request.form.get("again", "")
    with ext().db.read() as s:
        row = s.get(User, current_user.id)
    if row is None or not users.check_password(row.password_hash, current[:users.MAX_PASSWORD]):
        return render_template("password.html", error="Your current password is not that."), 403
    if new != again:
        return render_template("password.html", error="The new password and its repetition differ."), 422
    try:
        users.set_password(ext().db, current_user.username, new, current_user.username)
    except users.UserError as exc:
        message = str(exc)
        return render_template("password.html", error=message[0].upper() + message[1:] + "."), 422
    renew_session()
    flash("Your password is changed; you are signed out everywhere else.", "ok")
    return redirect(url_for("web.queue"), 303)


@web.get("/session")
def session_state() -> Any:
    """204 while signed in, 401 once signed out: an open desk page asks before it sends a form, so that
    what the agent typed stays on the page rather than going to the sign-in page. The 204 carries the
    session's form token, which a new sign-in (in another tab) changes."""
    return "", 204, {"X-CSRF-Token": generate_csrf()}
