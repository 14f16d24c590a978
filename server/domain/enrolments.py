"""Enrolments: one-time links that turn a phone into a device of a site (the phone app, ``server.phone``; the pages in ``server.admin.enrolments``, the API in ``server.api.enrolments``).

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
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, joinedload

from dashdesk import wire

from server.domain import audit, devices, inputs, sites
from server.models import ButtonMapping, Category, Device, Enrolment

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


def public_base(app_settings: dict[str, Any], host_url: str) -> str:
    """The server's address as phones reach it: ``[app] public_url``, else ``host_url`` (the one a request came to)."""
    base = str(app_settings.get("public_url") or "").strip()
    return (base or host_url).rstrip("/")


def link_for(code: str, base: str) -> str:
    return f"{base}/app/enroll/{code}"


def qr_path(code: str) -> str:
    return f"/app/enroll/{code}/qr.svg"


def default_expiry_h(app_settings: dict[str, Any]) -> float:
    """``[app] enrolment_expiry_h`` if it is a sensible number of hours, else the default."""
    try:
        hours = float(app_settings.get("enrolment_expiry_h", DEFAULT_EXPIRY_H))
    except (TypeError, ValueError):
        return DEFAULT_EXPIRY_H
    return hours if 0 < hours <= MAX_EXPIRY_H else DEFAULT_EXPIRY_H


def made_dict(made: Made, base: str) -> dict[str, Any]:
    out = as_dict(made.enrolment)
    out.update(code=made.code, link=link_for(made.code, base), qr_svg_url=base + qr_path(made.code))
    return out
