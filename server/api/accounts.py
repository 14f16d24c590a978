"""The admin API of people and machines: web users and API tokens.

Registered on ``server.api.api`` (imported by ``server.api_admin``). Admin tokens only;
the changes and their audit rows are ``server.users``'s and ``server.auth``'s, as for the
admin pages and the command line. A password or token dashdesk makes is answered once and
kept only as a hash.
"""

from __future__ import annotations

from typing import Any

from apiflask import abort
from sqlalchemy import select
from sqlalchemy.orm import Session

from dashdesk import wire

from server.api import schemas
from server.api.auth import auth
from server.api.core import api, caller_actor, ext
from server.domain import tokens as auth_tokens
from server.domain import users
from server.domain.tokens import TokenError, add_token, revoke
from server.models import ApiToken, User


def _t(value: Any) -> str | None:
    return wire.format_time(value) if value else None


def user_dict(u: User) -> dict[str, Any]:
    return {"username": u.username, "role": u.role, "active": bool(u.active), "created_at": _t(u.created_at),
            "last_login_at": _t(u.last_login_at)}


def token_dict(t: ApiToken) -> dict[str, Any]:
    return {"id": t.id, "name": t.name, "role": t.role, "created_at": _t(t.created_at),
            "last_used_at": _t(t.last_used_at), "revoked_at": _t(t.revoked_at)}


def _user_or_404(s: Session, username: str) -> User:
    try:
        return users.get(s, username)
    except users.NoSuchUser as exc:
        abort(404, str(exc))


# ---------------------------------------------------------------- users


@api.get("/users")
@api.auth_required(auth)
@api.output(schemas.UserList)
@api.doc(summary="The web users: role, active, created, last sign-in", tags=["Admin"])
def list_users() -> dict[str, Any]:
    with ext().db.read() as s:
        return {"items": [user_dict(u) for u in s.scalars(select(User).order_by(User.username))]}


@api.post("/users")
@api.auth_required(auth)
@api.input(schemas.UserIn, arg_name="body")
@api.output(schemas.UserOut, status_code=201)
@api.doc(summary="Create a web user (agent or admin) with an initial password (given, or made and answered once)",
         responses={409: "the username is taken"}, tags=["Admin"])
def create_user(body: dict[str, Any]) -> tuple[dict[str, Any], int]:
    actor = caller_actor()
    made = "password" not in body
    password = users.generate_password() if made else body["password"]
    try:
        user = users.create_user(ext().db, body["username"], password, body["role"], actor, password_made=made)
    except users.UserExists as exc:
        abort(409, str(exc))
    except users.UserError as exc:
        abort(422, str(exc))
    out = user_dict(user)
    if made:
        out["password"] = password
    return out, 201


@api.get("/users/<username>")
@api.auth_required(auth)
@api.output(schemas.UserOut)
@api.doc(summary="One web user", tags=["Admin"])
def get_user(username: str) -> dict[str, Any]:
    with ext().db.read() as s:
        return user_dict(_user_or_404(s, username))


@api.patch("/users/<username>")
@api.auth_required(auth)
@api.input(schemas.UserPatch, arg_name="body")
@api.output(schemas.UserOut)
@api.doc(summary="Change a user's role, or disable (signed out at the next request) or enable them; `{}` changes "
                 "nothing",
         responses={409: "it would leave no active admin"}, tags=["Admin"])
def patch_user(username: str, body: dict[str, Any]) -> dict[str, Any]:
    actor = caller_actor()
    with ext().db.write() as s:
        user = _user_or_404(s, username)
        try:
            if "role" in body:
                users.change_role(s, user, body["role"], actor)
            if "active" in body:
                users.change_active(s, user, body["active"], actor)
        except users.UserError as exc:
            abort(409, str(exc))
        return user_dict(user)


@api.post("/users/<username>/password")
@api.auth_required(auth)
@api.input(schemas.PasswordIn, arg_name="body")
@api.output(schemas.UserOut)
@api.doc(summary="Set a user's password (given, or made and answered once)", tags=["Admin"])
def reset_password(username: str, body: dict[str, Any]) -> dict[str, Any]:
    actor = caller_actor()
    made = "password" not in body
    password = users.generate_password() if made else body["password"]
    try:
        user = users.set_password(ext().db, username, password, actor, password_made=made)
    except users.NoSuchUser as exc:
        abort(404, str(exc))
    except users.UserError as exc:
        abort(422, str(exc))
    out = user_dict(user)
    if made:
        out["password"] = password
    return out


# ---------------------------------------------------------------- API tokens


@api.get("/tokens")
@api.auth_required(auth)
@api.output(schemas.TokenList)
@api.doc(summary="API tokens: name, role, created, last used, revoked (never the token itself)", tags=["Admin"])
def list_tokens() -> dict[str, Any]:
    with ext().db.read() as s:
        return {"items": [token_dict(t) for t in auth_tokens.list_tokens(s)]}


@api.post("/tokens")
@api.auth_required(auth)
@api.input(schemas.TokenIn, arg_name="body")
@api.output(schemas.TokenOut, status_code=201)
@api.doc(summary="Create an API token (`admin`, or `bridge`: presses and the feed); answered this once",
         tags=["Admin"])
def create_token(body: dict[str, Any]) -> tuple[dict[str, Any], int]:
    actor = caller_actor()
    with ext().db.write() as s:
        try:
            row, token = add_token(s, body["name"], body["role"], actor)
        except TokenError as exc:
            abort(422, str(exc))
        out = token_dict(row)
    out["token"] = token
    return out, 201


@api.delete("/tokens/<int:token_id>")
@api.auth_required(auth)
@api.output(schemas.TokenOut)
@api.doc(summary="Revoke an API token: it is refused (401) from then on (other server workers: within 2 s)",
         responses={404: "no such token"}, tags=["Admin"])
def revoke_token(token_id: int) -> dict[str, Any]:
    actor = caller_actor()
    with ext().db.write() as s:
        row = s.get(ApiToken, token_id) if 0 < token_id < 2**63 else None
        if row is None:
            abort(404, f"no token {token_id}")
        revoke(s, row, actor)
        out = token_dict(row)
    ext().tokens.forget(token_id)
    return out
