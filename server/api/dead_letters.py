"""Payloads the bridge could not take (``/api/v1/dead-letters``), kept for people to look at."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from server.api import schemas
from server.api.auth import auth
from server.api.blueprint import api, time_or_none
from server.context import ext
from server.models import DeadLetter


@api.post("/dead-letters")
@api.auth_required(auth)
@api.input(schemas.DeadLetterIn, arg_name="body")
@api.output({}, status_code=204)
@api.doc(summary="Keep a payload the bridge rejected (idempotent on `key`)")
def post_dead_letter(body: dict[str, Any]) -> tuple[str, int]:
    with ext().db.write() as s:
        if s.scalar(select(DeadLetter.id).where(DeadLetter.key == body["key"])) is None:
            s.add(DeadLetter(**body))
    return "", 204


@api.get("/dead-letters")
@api.auth_required(auth)
@api.output(schemas.DeadLetterList)
@api.doc(summary="Payloads the bridge rejected, newest first")
def list_dead_letters() -> dict[str, Any]:
    with ext().db.read() as s:
        rows = s.scalars(select(DeadLetter).order_by(DeadLetter.id.desc()).limit(500))
        return {"items": [{"id": d.id, "topic": d.topic, "payload_prefix": d.payload_prefix,
                           "payload_size": d.payload_size, "reason": d.reason,
                           "received_at": time_or_none(d.received_at)} for d in rows]}
