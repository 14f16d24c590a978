"""Enrolments: one-time links that turn a phone into a device of a site (the phone app, ``server.phone``).

An admin makes an enrolment for a site (``/admin/enrolments`` or ``POST /api/v1/enrolments``): a
random code, shown once as the link ``/app/enroll/<code>`` and its QR code, valid for a while
(``[app] enrolment_expiry_h``, 24 h) and for one phone. Opening the link on a phone and tapping
"Set up this phone" redeems it: the phone becomes an active device of kind ``phone`` of that site
(``phone-<site>-<random>``), with the button mapping of a source device or one button per
category, broker credentials when the broker asks for them, and a token of its own to read its
configuration with. Code and token are kept as SHA-256 hashes only.

Each function works in the caller's session (one transaction with its audit row) and raises
:class:`EnrolmentError` with an HTTP status, a code and a sentence for people when it refuses.

>>> # with db.write() as s:
>>> #     made = create(s, "shop-042", actor="admin", expires_in_h=24)
>>> #     made.code  # shown once: the link is /app/enroll/<made.code>
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable, NoReturn

from apiflask import APIBlueprint, Schema, abort as api_abort
from apiflask.fields import Integer, List, Nested, String
from apiflask.validators import Length, OneOf, Range
from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, joinedload

from dashdesk import wire

from server.domain import audit, devices, inputs, sites
from server.api import schemas
from server.api.fields import JsonNumber, Plain
from server.api.auth import auth
from server.models import ButtonMapping, Category, Device, Enrolment, Site

# 16 random bytes (22 URL-safe characters): not guessable, short enough for a QR code a phone reads
# from across a counter.
CODE_BYTES = 16
CODE_PATTERN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
TOKEN_BYTES = 32
DEFAULT_EXPIRY_H = 24.0
# An enrolment link is for setting up a phone now, not a standing invitation.
MAX_EXPIRY_H = 24.0 * 30
# The random part of a phone's device id: letters and digits that cannot be mistaken for each other.
DEVICE_SUFFIX_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
DEVICE_SUFFIX_LEN = 6
STATES = ("active", "used", "expired", "revoked")
PAGE_SIZE = 50


class EnrolmentError(Exception):
    """An enrolment action refused: ``status`` is the HTTP status, ``code`` a stable name, the message says why."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


# ---------------------------------------------------------------- codes and tokens


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_code() -> str:
    while True:
        code = secrets.token_urlsafe(CODE_BYTES)
        # An all-digit code would read as an enrolment's id in DELETE /api/v1/enrolments/{code}.
        if _enrolment_id(code) is None:
            return code


def new_app_token() -> str:
    return "dda_" + secrets.token_urlsafe(TOKEN_BYTES)


def valid_code(code: str) -> bool:
    return CODE_PATTERN.fullmatch(code or "") is not None


def state(e: Enrolment, now: datetime | None = None) -> str:
    """``revoked``, ``used``, ``expired`` or ``active`` (the order in which they count)."""
    if e.revoked_at is not None:
        return "revoked"
    if e.used_at is not None:
        return "used"
    if (now or wire.utcnow()) >= e.expires_at:
        return "expired"
    return "active"


REFUSALS = {
    "unknown": (404, "enrolment_unknown", "This enrolment link is not valid. Ask your admin for a new one."),
    "used": (410, "enrolment_used", "This enrolment link was already used: a link sets up one phone. "
                                    "Ask your admin for a new one."),
    "expired": (410, "enrolment_expired", "This enrolment link has expired. Ask your admin for a new one."),
    "revoked": (410, "enrolment_revoked", "This enrolment link was withdrawn by an admin. Ask your admin for a "
                                          "new one."),
}


def refusal(what: str) -> EnrolmentError:
    return EnrolmentError(*REFUSALS[what])


def by_code(s: Session, code: str, *, for_update: bool = False) -> Enrolment | None:
    """The enrolment of ``code``; ``for_update`` locks its row (PostgreSQL; SQLite's writer lock does it there)."""
    if not valid_code(code):
        return None
    stmt = select(Enrolment).options(joinedload(Enrolment.site)).where(Enrolment.code_hash == hash_secret(code))
    return s.scalar(stmt.with_for_update(of=Enrolment) if for_update else stmt)


# ---------------------------------------------------------------- create, list, revoke


@dataclass(frozen=True)
class Made:
    """A new enrolment and its code (shown once)."""

    enrolment: Enrolment
    code: str


def check_expiry(expires_in_h: Any, default_h: float = DEFAULT_EXPIRY_H) -> float:
    if expires_in_h is None or expires_in_h == "":
        return default_h
    hours = inputs.parse_decimal(expires_in_h, high=float("inf"))
    if hours is None:
        raise EnrolmentError(400, "bad_request", "the validity (expires_in_h) must be a number of hours")
    if not 0 < hours <= MAX_EXPIRY_H:
        raise EnrolmentError(400, "bad_request", f"the validity (expires_in_h) must be more than 0 and at most "
                                                 f"{MAX_EXPIRY_H:g} hours")
    return hours


def create(s: Session, site_code: str, actor: str, source_device: str | None = None,
           expires_in_h: float | None = None, default_h: float = DEFAULT_EXPIRY_H) -> Made:
    """A new enrolment for ``site_code``, valid ``expires_in_h`` hours (``default_h`` if None); the phone
    gets ``source_device``'s buttons, or one per category."""
    site_code = (site_code or "").strip()
    site = sites.by_code(s, site_code) if site_code else None
    if site is None:
        raise EnrolmentError(404 if site_code else 400, "not_found" if site_code else "bad_request",
                             f"no site {site_code[:70]}; create it first (Admin → Sites)" if site_code
                             else "choose the site the phone is for")
    source = (source_device or "").strip() or None
    if source is not None:
        if not wire.valid_id(source):
            raise EnrolmentError(400, "bad_request", f"'{source[:70]}' is not a device id")
        if s.scalar(select(Device.id).where(Device.device_id == source)) is None:
            raise EnrolmentError(404, "not_found", f"no device {source}")
        if s.scalar(select(func.count()).select_from(ButtonMapping).where(ButtonMapping.device_id == source)) == 0:
            raise EnrolmentError(409, "conflict", f"{source} has no button mapping to copy; choose another device, "
                                                  "or none for one button per category")
    hours = check_expiry(expires_in_h, default_h)
    now = wire.utcnow()
    code = new_code()
    row = Enrolment(code_hash=hash_secret(code), code_hint=code[:4], site=site, source_device=source,
                    created_by=actor[:120], created_at=now, expires_at=now + timedelta(hours=hours))
    s.add(row)
    s.flush()
    audit.record(s, actor, "enrolment.create", f"site:{site.code}", enrolment=row.id,
                 expires_at=wire.format_time(row.expires_at), source_device=source)
    return Made(row, code)


def revoke(s: Session, enrolment: Enrolment, actor: str) -> Enrolment:
    """Withdraw a link not used yet: opening it then says so."""
    now_state = state(enrolment)
    if now_state in ("used", "revoked"):
        raise EnrolmentError(409, "conflict", f"enrolment {enrolment.id} is {now_state}"
                             + (f" (it set up {enrolment.device_id}: retire that device instead)"
                                if now_state == "used" else ""))
    enrolment.revoked_at, enrolment.revoked_by = wire.utcnow(), actor[:120]
    audit.record(s, actor, "enrolment.revoke", f"site:{enrolment.site.code}", enrolment=enrolment.id)
    return enrolment


def find(s: Session, key: str) -> Enrolment | None:
    """An enrolment by its code, or by its id (all digits)."""
    key = (key or "").strip()
    enrolment_id = _enrolment_id(key)
    if enrolment_id is not None:
        return s.scalar(select(Enrolment).options(joinedload(Enrolment.site)).where(Enrolment.id == enrolment_id))
    return by_code(s, key)


def _enrolment_id(key: str) -> int | None:
    """An enrolment's id, if ``key`` is one (ASCII digits); else None: a code."""
    return inputs.parse_int(key)


def listing(site_code: str = "", state_: str = "") -> Any:
    """The enrolments to list, newest first (a site's, or those in a state)."""
    stmt = select(Enrolment).options(joinedload(Enrolment.site)).order_by(Enrolment.id.desc())
    if site_code:
        stmt = stmt.where(Enrolment.site_id == sites.id_of(site_code))
    now = wire.utcnow()
    if state_ == "active":
        stmt = stmt.where(Enrolment.revoked_at.is_(None), Enrolment.used_at.is_(None), Enrolment.expires_at > now)
    elif state_ == "used":
        stmt = stmt.where(Enrolment.revoked_at.is_(None), Enrolment.used_at.is_not(None))
    elif state_ == "expired":
        stmt = stmt.where(Enrolment.revoked_at.is_(None), Enrolment.used_at.is_(None), Enrolment.expires_at <= now)
    elif state_ == "revoked":
        stmt = stmt.where(Enrolment.revoked_at.is_not(None))
    return stmt


def as_dict(e: Enrolment, now: datetime | None = None) -> dict[str, Any]:
    t = lambda v: wire.format_time(v) if v else None  # noqa: E731
    return {"id": e.id, "code_hint": e.code_hint, "site": e.site.code, "site_name": e.site.name,
            "source_device": e.source_device, "state": state(e, now), "created_by": e.created_by,
            "created_at": t(e.created_at), "expires_at": t(e.expires_at), "used_at": t(e.used_at),
            "device_id": e.device_id, "revoked_at": t(e.revoked_at), "revoked_by": e.revoked_by}


# ---------------------------------------------------------------- redeeming


def _slug(code: str, room: int) -> str:
    """A site code as a piece of a device id: lower case, only a-z 0-9 _ -."""
    text = re.sub(r"[^a-z0-9_-]+", "-", code.lower()).strip("-_")
    return (text[:room].rstrip("-_") or "site")


def new_device_id(s: Session, site_code: str) -> str:
    """``phone-<site>-<6 random>``, free, within the 63 characters of an id."""
    prefix = "phone-" + _slug(site_code, 63 - len("phone-") - 1 - DEVICE_SUFFIX_LEN) + "-"
    while True:
        device_id = prefix + "".join(secrets.choice(DEVICE_SUFFIX_ALPHABET) for _ in range(DEVICE_SUFFIX_LEN))
        assert wire.valid_id(device_id), device_id
        if s.scalar(select(Device.id).where(Device.device_id == device_id)) is None:
            return device_id


def template_mapping(s: Session, source_device: str | None) -> tuple[list[ButtonMapping], str]:
    """The mapping a new phone gets (unsaved rows without a device) and where it came from.

    The source device's, as it is now; if it has none any more (or none was chosen), one
    button per category, named after it, in order of priority.
    """
    if source_device:
        rows = list(s.scalars(select(ButtonMapping).where(ButtonMapping.device_id == source_device)
                              .order_by(ButtonMapping.button, ButtonMapping.press)))
        if rows:
            return devices.copy_rows(rows), f"device:{source_device}"
    categories = s.scalars(select(Category).order_by(Category.priority, Category.name, Category.slug))
    return [ButtonMapping(button=c.slug, press="", category_id=c.id, label=c.name, action="report")
            for c in categories], "categories"


@dataclass(frozen=True)
class Redeemed:
    """A phone set up: its device id and the token it reads its configuration with (shown once)."""

    enrolment_id: int
    device_id: str
    site_code: str
    site_name: str
    app_token: str


def redeem(s: Session, code: str, user_agent: str = "") -> Redeemed:
    """Use the enrolment of ``code`` (once): make the phone's device, its buttons and its token.

    Raises :class:`EnrolmentError` (404 unknown, 410 used, expired or revoked). The caller's
    write transaction makes two phones racing for one code come out as one winner.
    """
    enrolment = by_code(s, code, for_update=True)
    if enrolment is None:
        raise refusal("unknown")
    now = wire.utcnow()
    what = state(enrolment, now)
    if what != "active":
        raise refusal(what)
    site = enrolment.site
    device_id = new_device_id(s, site.code)
    device = Device(device_id=device_id, site=site, status="active", kind="phone", first_seen_at=now)
    s.add(device)
    rows, origin = template_mapping(s, enrolment.source_device)
    for m in rows:
        m.device_id = device_id
        s.add(m)
    token = new_app_token()
    enrolment.used_at, enrolment.device_id = now, device_id
    enrolment.app_token_hash = hash_secret(token)
    enrolment.used_user_agent = inputs.without_controls(user_agent or "")[:300] or None
    s.flush()
    audit.record(s, f"enrolment:{enrolment.id}", "device.enrol", f"device:{device_id}", site=site.code,
                 enrolment=enrolment.id, kind="phone", mapping_from=origin, buttons=len(rows))
    return Redeemed(enrolment.id, device_id, site.code, site.name, token)


def undo(s: Session, redeemed: Redeemed, reason: str) -> None:
    """Take a redemption back (its broker account could not be made): the code works again."""
    enrolment = s.get(Enrolment, redeemed.enrolment_id)
    if enrolment is None or enrolment.device_id != redeemed.device_id:
        return
    enrolment.used_at = enrolment.device_id = enrolment.app_token_hash = enrolment.used_user_agent = None
    s.execute(delete(ButtonMapping).where(ButtonMapping.device_id == redeemed.device_id))
    s.execute(delete(Device).where(Device.device_id == redeemed.device_id))
    audit.record(s, f"enrolment:{redeemed.enrolment_id}", "device.enrol_undo", f"device:{redeemed.device_id}",
                 reason=reason[:500])


def phone_of_token(s: Session, token: str) -> tuple[Enrolment, Device] | None:
    """The enrolment and device a phone's app token belongs to."""
    if not token or len(token) > 200:
        return None
    enrolment = s.scalar(select(Enrolment).where(Enrolment.app_token_hash == hash_secret(token)))
    if enrolment is None or enrolment.device_id is None:
        return None
    device = s.scalar(select(Device).options(joinedload(Device.site)).where(Device.device_id == enrolment.device_id))
    return (enrolment, device) if device is not None else None


# ---------------------------------------------------------------- QR code


def qr_svg(link: str, scale: int = 6) -> str:
    """The QR code of ``link`` as an SVG document (segno; error correction M, dark on white)."""
    import io

    import segno

    qr = segno.make_qr(link, error="m")
    out = io.BytesIO()
    qr.save(out, kind="svg", scale=scale, border=4, dark="#000", light="#fff", xmldecl=False,
            title="Enrolment QR code", svgclass="enrolment-qr")
    return out.getvalue().decode()


# ---------------------------------------------------------------- where links point


def app_settings() -> dict[str, Any]:
    """The ``[app]`` section of the server's configuration."""
    cfg = current_app.config.get("DASHDESK_CONFIG") or {}
    return dict(cfg.get("app", {}) or {})


def public_base() -> str:
    """The server's address as phones reach it: ``[app] public_url``, else the one this request came to."""
    base = str(app_settings().get("public_url") or "").strip()
    return (base or request.host_url).rstrip("/")


def link_for(code: str) -> str:
    return f"{public_base()}/app/enroll/{code}"


def qr_path(code: str) -> str:
    return f"/app/enroll/{code}/qr.svg"


def default_expiry_h() -> float:
    try:
        hours = float(app_settings().get("enrolment_expiry_h", DEFAULT_EXPIRY_H))
    except (TypeError, ValueError):
        return DEFAULT_EXPIRY_H
    return hours if 0 < hours <= MAX_EXPIRY_H else DEFAULT_EXPIRY_H


def made_dict(made: Made) -> dict[str, Any]:
    out = as_dict(made.enrolment)
    out.update(code=made.code, link=link_for(made.code), qr_svg_url=public_base() + qr_path(made.code))
    return out


def _ext() -> Any:
    return current_app.extensions["dashdesk"]


# ---------------------------------------------------------------- admin pages (/admin/enrolments)

admin_pages = Blueprint("enrolments", __name__, url_prefix="/admin/enrolments")
admin_pages.enable_openapi = False  # type: ignore[attr-defined]


@admin_pages.before_request
def _admins_only() -> Any:
    from server.desk.views import login_manager

    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    if not current_user.is_admin:
        abort(403, "This page is for admins.")
    return None


def _register_page_handlers() -> None:
    from server.desk.views import _no_store

    admin_pages.after_request(_no_store)


_register_page_handlers()


def _page(site_code: str = "", state_: str = "", form: dict[str, Any] | None = None, error: str | None = None,
          made: dict[str, Any] | None = None, status: int = 200) -> Any:
    page_no = inputs.page_number(request.args.get("page", "0"))
    now = wire.utcnow()
    with _ext().db.read() as s:
        stmt = listing(site_code, state_)
        total = s.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
        rows = [as_dict(e, now) for e in s.scalars(stmt.limit(PAGE_SIZE).offset(page_no * PAGE_SIZE)).unique()]
        site_codes = [tuple(r) for r in s.execute(select(Site.code, Site.name).order_by(Site.code).limit(5000))]
        sources = list(s.scalars(select(ButtonMapping.device_id).distinct().order_by(ButtonMapping.device_id)
                                 .limit(2000)))
    form = form or {"site": site_code, "source_device": "", "expires_in_h": f"{default_expiry_h():g}"}
    return render_template("phone/enrolments.html", rows=rows, total=total, page=page_no, page_size=PAGE_SIZE,
                           site_code=site_code, state=state_, states=STATES, form=form, error=error, made=made,
                           site_codes=site_codes, sources=sources, query=_query,
                           qr=qr_svg(made["link"]) if made else None), status


def _query(**values: Any) -> str:
    from urllib.parse import urlencode

    return urlencode({k: v for k, v in values.items() if v not in ("", None, 0)})


@admin_pages.get("")
def enrolment_list() -> Any:
    state_ = request.args.get("state", "")
    return _page(request.args.get("site", "").strip()[:64], state_ if state_ in STATES else "")


@admin_pages.post("")
def enrolment_create() -> Any:
    form = {k: request.form.get(k, "").strip() for k in ("site", "source_device", "expires_in_h")}
    try:
        with _ext().db.write() as s:
            made = create(s, form["site"], current_user.username, form["source_device"] or None,
                          form["expires_in_h"] or None, default_expiry_h())
            shown = made_dict(made)
    except EnrolmentError as exc:
        return _page(form["site"], form=form, error=exc.message[0].upper() + exc.message[1:],
                     status=422 if exc.status in (400, 409) else exc.status)
    # Rendered, not redirected: the code is shown this once and kept nowhere but in this page.
    return _page(shown["site"], made=shown, status=201)


@admin_pages.post("/<int:enrolment_id>/revoke")
def enrolment_revoke(enrolment_id: int) -> Any:
    try:
        with _ext().db.write() as s:
            row = s.scalar(select(Enrolment).options(joinedload(Enrolment.site)).where(Enrolment.id == enrolment_id))
            if row is None:
                abort(404, f"There is no enrolment {enrolment_id}.")
            revoke(s, row, current_user.username)
            site_code = row.site.code
    except EnrolmentError as exc:
        flash(exc.message[0].upper() + exc.message[1:], "error")
        return redirect(url_for("enrolments.enrolment_list"), 303)
    flash(f"Enrolment {enrolment_id} withdrawn: its link no longer works.", "ok")
    return redirect(url_for("enrolments.enrolment_list", site=site_code), 303)


# ---------------------------------------------------------------- API (/api/v1/enrolments)

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


def _caller_actor() -> str:
    from server.api.core import caller_actor

    return caller_actor()


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
    actor = _caller_actor()
    try:
        with _ext().db.write() as s:
            made = create(s, body["site"], actor, body.get("source_device"), body.get("expires_in_h"),
                          default_expiry_h())
            return made_dict(made), 201
    except EnrolmentError as exc:
        _api_refuse(exc)


@api.get("/enrolments")
@api.auth_required(auth)
@api.input(EnrolmentQuery, location="query", arg_name="q", unknown=None)
@api.output(EnrolmentList)
@api.doc(summary="List enrolments, newest first (admin); codes are not shown again")
def list_enrolments(q: dict[str, Any]) -> dict[str, Any]:
    now = wire.utcnow()
    with _ext().db.read() as s:
        rows = s.scalars(listing(q.get("site", ""), q.get("state", "")).limit(500)).unique()
        return {"items": [as_dict(e, now) for e in rows]}


@api.delete("/enrolments/<code>")
@api.auth_required(auth)
@api.output({}, status_code=204)
@api.doc(summary="Withdraw an unused enrolment link, by its code or its id (admin)",
         responses={204: "withdrawn", 404: "no such enrolment", 409: "already used or withdrawn"})
def delete_enrolment(code: str) -> tuple[str, int]:
    actor = _caller_actor()
    try:
        with _ext().db.write() as s:
            row = find(s, code)
            if row is None:
                api_abort(404, "no such enrolment")
            revoke(s, row, actor)
    except EnrolmentError as exc:
        _api_refuse(exc)
    return "", 204


def register(app: Any, exempt: Callable[[Any], None]) -> None:
    """Add the admin pages and the API to ``app``; ``exempt`` takes the API out of CSRF checks."""
    exempt(api)
    app.register_blueprint(admin_pages)
    app.register_blueprint(api)
