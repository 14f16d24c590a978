"""Web users: agents and admins of the desk pages (``/api/v1/users``)."""

from __future__ import annotations

from typing import Any

from apiflask import abort
from sqlalchemy import select

from server.api import schemas
from server.api.auth import auth
from server.api.blueprint import api, caller_actor, time_or_none
from server.context import ext
from server.domain import users
from server.domain.errors import NotFound
from server.models import User


def user_dict(u: User) -> dict[str, Any]:
    return {"username": u.username, "role": u.role, "active": bool(u.active), "created_at": time_or_none(u.created_at),
            "last_login_at": time_or_none(u.last_login_at)}


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
        return user_dict(users.get(s, username))


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
        user = users.get(s, username)
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
    except NotFound:
        raise  # 404 (server.app)
    except users.UserError as exc:
        abort(422, str(exc))
    out = user_dict(user)
    if made:
        out["password"] = password
    return out
