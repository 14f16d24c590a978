"""API tokens: make, list, revoke (``/api/v1/tokens``)."""

from __future__ import annotations

from typing import Any

from apiflask import abort

from server.api import schemas
from server.api.auth import auth
from server.api.blueprint import api, caller_actor, time_or_none
from server.context import ext
from server.domain import tokens as auth_tokens
from server.domain.tokens import TokenError, add_token, revoke
from server.models import ApiToken


def token_dict(t: ApiToken) -> dict[str, Any]:
    return {"id": t.id, "name": t.name, "role": t.role, "created_at": time_or_none(t.created_at),
            "last_used_at": time_or_none(t.last_used_at), "revoked_at": time_or_none(t.revoked_at)}


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
        row = auth_tokens.get(s, token_id)
        revoke(s, row, actor)
        out = token_dict(row)
    ext().tokens.forget(token_id)
    return out
