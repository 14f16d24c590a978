"""Enrolment links for phones, for scripts (``/api/v1/enrolments``): make, list, withdraw (admin tokens)."""

from __future__ import annotations

from typing import Any, NoReturn

from apiflask import APIBlueprint, Schema
from apiflask import abort as api_abort
from apiflask.fields import Integer, List, Nested, String
from apiflask.validators import Length, OneOf, Range

from dashdesk import wire

from server.api import schemas
from server.api.auth import auth
from server.api.blueprint import caller_actor
from server.api.fields import JsonNumber, Plain
from server.context import app_settings, ext, public_base
from server.domain.enrolments import (
    MAX_EXPIRY_H,
    STATES,
    EnrolmentError,
    as_dict,
    create,
    default_expiry_h,
    find,
    listing,
    made_dict,
    revoke,
)


api = APIBlueprint("enrolments_api", __name__, url_prefix="/api/v1", tag="Enrolments")


class EnrolmentIn(schemas.Strict):
    site = String(required=True, validate=[Length(1, 64), schemas.NOT_BLANK],
                  metadata={"description": "an existing site's code"})
    source_device = String(load_default=None, allow_none=True, validate=schemas.DEVICE_OR_NONE,
                           metadata={"description": "the device whose buttons the phone gets; null or empty: one "
                                                    "button per category"})
    expires_in_h = JsonNumber(load_default=None, allow_none=True,
                                      validate=Range(min=0, max=MAX_EXPIRY_H, min_inclusive=False),
                                      metadata={"exclusiveMinimum": 0, "description": "hours the link works"})


class EnrolmentOut(Schema):
    id = Integer()
    code_hint = String(metadata={"description": "the code's first 4 characters (the code is kept as a hash)"})
    site = String()
    site_name = String()
    source_device = String(allow_none=True)
    state = String(metadata={"description": "active, used, expired or revoked"})
    created_by = String()
    created_at = String()
    expires_at = String()
    used_at = String(allow_none=True)
    device_id = String(allow_none=True, metadata={"description": "the phone it set up"})
    revoked_at = String(allow_none=True)
    revoked_by = String(allow_none=True)


class EnrolmentMade(EnrolmentOut):
    code = String(metadata={"description": "shown this once"})
    link = String(metadata={"description": "what the phone opens: /app/enroll/{code}"})
    qr_svg_url = String(metadata={"description": "the link's QR code, SVG"})


class EnrolmentList(Schema):
    items = List(Nested(EnrolmentOut))


class EnrolmentQuery(schemas.Query):
    site = String(validate=[Length(1, 64), Plain()])
    state = String(validate=OneOf(STATES))


def _api_refuse(exc: EnrolmentError) -> NoReturn:
    api_abort(exc.status, exc.message, detail={"code": exc.code})


@api.post("/enrolments")
@api.auth_required(auth)
@api.input(EnrolmentIn, arg_name="body")
@api.output(EnrolmentMade, status_code=201)
@api.doc(summary="Make a one-time enrolment link for a phone (admin)",
         description="Returns the `code` (shown this once), the `link` a phone opens (`/app/enroll/{code}`) and "
                     "`qr_svg_url`, its QR code as SVG. The link works once, until `expires_at` (`expires_in_h`, "
                     "default `[app] enrolment_expiry_h`, 24 h). The phone gets the button mapping of "
                     "`source_device`, or one button per category.",
         responses={201: "made", 404: "no such site or source device", 409: "the source device has no mapping"})
def post_enrolment(body: dict[str, Any]) -> tuple[dict[str, Any], int]:
    actor = caller_actor()
    try:
        with ext().db.write() as s:
            made = create(s, body["site"], actor, body.get("source_device"), body.get("expires_in_h"),
                          default_expiry_h(app_settings()))
            return made_dict(made, public_base()), 201
    except EnrolmentError as exc:
        _api_refuse(exc)


@api.get("/enrolments")
@api.auth_required(auth)
@api.input(EnrolmentQuery, location="query", arg_name="q", unknown=None)
@api.output(EnrolmentList)
@api.doc(summary="List enrolments, newest first (admin); codes are not shown again")
def list_enrolments(q: dict[str, Any]) -> dict[str, Any]:
    now = wire.utcnow()
    with ext().db.read() as s:
        rows = s.scalars(listing(q.get("site", ""), q.get("state", "")).limit(500)).unique()
        return {"items": [as_dict(e, now) for e in rows]}


@api.delete("/enrolments/<code>")
@api.auth_required(auth)
@api.output({}, status_code=204)
@api.doc(summary="Withdraw an unused enrolment link, by its code or its id (admin)",
         responses={204: "withdrawn", 404: "no such enrolment", 409: "already used or withdrawn"})
def delete_enrolment(code: str) -> tuple[str, int]:
    actor = caller_actor()
    try:
        with ext().db.write() as s:
            row = find(s, code)
            if row is None:
                api_abort(404, "no such enrolment")
            revoke(s, row, actor)
    except EnrolmentError as exc:
        _api_refuse(exc)
    return "", 204
