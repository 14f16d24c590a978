"""The phone app (``/app``): a Progressive Web App that is itself a virtual dash button.

A phone set up with a one-time enrolment link (``server.domain.enrolments``) holds its device id,
the broker's MQTT-over-WebSockets URL and its broker credentials, and publishes presses
exactly as a physical device does (``dashdesk/v1/devices/<id>/press``, QoS 1, an
``event_id`` of its own per press): the bridge sees no difference. Its acks and the retained
``tickets`` topic tell staff what became of a report. Presses made offline wait in the
phone's IndexedDB and go out, with the same ``event_id``, when the connection is back.

No sign-in: the pages here are public (the desk's login guard belongs to ``server.desk``'s
blueprint), an enrolment code is the only key to make a phone, and the phone's own token
(``Authorization: Bearer dda_...``) the only key to read its configuration.

Paths: ``/app`` (the app), ``/app/enroll/<code>`` (GET: the set-up page; POST: use the
code), ``/app/enroll/<code>/qr.svg``, ``/app/manifest.webmanifest``, ``/app/sw.js``,
``/app/api/config``, ``/app/api/tickets/<id>``, ``/app/static/...``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    current_app,
    has_app_context,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from sqlalchemy import select

from dashdesk import wire

from server.context import app_settings, ext, public_base
from server.domain import devices as device_rules
from server.domain import enrolments, incidents
from server.errors import error_body
from server.models import Device, Press, Ticket


# The app's files live with the server's other static files and templates.
SERVER_ROOT = Path(__file__).resolve().parent.parent
STATIC = SERVER_ROOT / "static" / "app"
TEMPLATES = SERVER_ROOT / "templates" / "phone"
phone = Blueprint("phone", __name__, url_prefix="/app", static_folder=STATIC, static_url_path="/static")
phone.enable_openapi = False  # type: ignore[attr-defined]  # APIFlask: the app's own endpoints
MQTT_JS_VERSION = "5.16.0"
# A press held this long is a long press (urgent), as on a physical button.
LONG_PRESS_MS = 800
DEFAULT_ENROL_LIMIT = "10 per minute"
# What the app's pages may load: only this server's files, and WebSockets to the broker
# (on another port, so not 'self').
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
       "connect-src 'self' ws: wss:; manifest-src 'self'; worker-src 'self' blob:; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")
# The shell and what it needs to open with no network; the service worker keeps them.
MQTT_JS = f"vendor/mqtt-{MQTT_JS_VERSION}.min.js"
SHELL_FILES = ("app.js", "app.css", MQTT_JS, "icons/icon-192.png",
               "icons/icon-512.png", "icons/maskable-512.png", "icons/apple-touch-icon.png")

_version: str | None = None


def app_version() -> str:
    """dashdesk's version and a digest of the app's files: a new digest makes phones update."""
    global _version
    if _version is None or (has_app_context() and current_app.debug):
        digest = hashlib.sha256()
        for path in sorted([*STATIC.rglob("*"), *TEMPLATES.glob("app.html"), *TEMPLATES.glob("sw.js")]):
            if path.is_file():
                digest.update(path.relative_to(STATIC.parent.parent).as_posix().encode())
                digest.update(path.read_bytes())
        from importlib.metadata import PackageNotFoundError, version

        try:
            base = version("dashdesk")
        except PackageNotFoundError:  # run from a source tree that was never installed
            base = "0"
        _version = f"{base}+{digest.hexdigest()[:10]}"
    return _version


def asset(filename: str) -> str:
    return url_for("phone.static", filename=filename, v=app_version().rpartition("+")[2])




def _cfg() -> dict[str, Any]:
    return current_app.config.get("DASHDESK_CONFIG") or {}


def error(status: int, code: str, message: str) -> tuple[Response, int]:
    """The API's error body (``server.errors``): ``{"error": {"code": ..., "message": ...}}``."""
    return jsonify(error_body(status, message, code=code)), status


@phone.after_request
def _headers(response: Response) -> Response:
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    # An enrolment code is in the page's URL: no Referer may carry it anywhere.
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    if request.endpoint != "phone.static":
        response.headers.setdefault("Cache-Control", "no-store")
    if response.mimetype == "text/html":
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Frame-Options", "DENY")
    return response


# ------------------------------------------------------------------ the broker as phones reach it


def broker_ws_url() -> str | None:
    """``[app] broker_ws_url``, else ``ws://<the host this request came to>:<[app] ws_port>/mqtt``."""
    settings = app_settings()
    url = str(settings.get("broker_ws_url") or "").strip()
    if url:
        return url
    try:
        port = int(settings.get("ws_port") or 0)
    except (TypeError, ValueError):
        port = 0
    if not port:
        return None
    host = urlsplit(f"//{request.host}").hostname or "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    # A page served over https may only open wss:// (a TLS proxy in front of the broker's listener).
    scheme = "wss" if request.scheme == "https" else "ws"
    return f"{scheme}://{host}:{port}/mqtt"


def phone_config(s: Any, device: Device) -> dict[str, Any]:
    """What the app needs to be this device: its buttons, labels per language, the broker, the windows."""
    grouped: dict[str, dict[str, Any]] = {}
    for m in device_rules.mappings(s, device.device_id):
        grouped.setdefault(m.button, {})[m.press] = m
    buttons = []
    cancel: dict[str, str] | None = None
    for button, presses in grouped.items():
        main = presses.get("") or presses.get("single")
        double = presses.get("double")
        double_cancels = double is None or double.action == "cancel"
        if main is not None and main.action == "cancel" and cancel is None:
            cancel = {"button": button, "press": main.press or "single"}
        if main is None or main.action != "report" or main.category is None:
            continue
        category = main.category
        labels = {k: v.strip() for k, v in (category.labels or {}).items() if isinstance(v, str) and v.strip()}
        # The button's own label is the admin's words for it; other languages come from the category.
        labels["en"] = main.label or labels.get("en") or category.name
        long_ = presses.get("long")
        buttons.append({"button": button, "category": category.slug, "icon": category.icon or "",
                        "priority": category.priority, "labels": labels, "double_cancels": double_cancels,
                        "long_reports": long_.category.slug if long_ is not None and long_.category else
                        (None if long_ is not None else category.slug)})
    buttons.sort(key=lambda b: (b["priority"], b["labels"]["en"].lower(), b["button"]))
    # ``cancel`` is a cancel button (it withdraws the device's last report), if the phone has one: the app
    # withdraws a report with it where the report's own button has no double press that cancels (a double
    # press withdraws its own button's last report, so another button's would not do).
    mqtt_cfg = _cfg().get("mqtt", {}) or {}
    broker = getattr(ext(), "broker", None)
    settings = ext().settings
    return {
        "device_id": device.device_id,
        "status": device.status,
        "site": {"code": device.site.code, "name": device.site.name} if device.site else None,
        "buttons": buttons,
        "cancel": cancel,
        "cancel_window_s": settings.cancel_window_s,
        "reopen_window_s": settings.reopen_window_s,
        "long_press_ms": LONG_PRESS_MS,
        "mqtt": {"url": broker_ws_url(), "topic_root": mqtt_cfg.get("topic_root", wire.DEFAULT_TOPIC_ROOT),
                 "protocol": int(mqtt_cfg.get("protocol", 5)),
                 "auth": broker.auth if broker is not None else "none"},
        "app_version": app_version(),
    }


# ------------------------------------------------------------------ pages


def _shell(enrolment: dict[str, Any] | None = None, status: int = 200) -> tuple[str, int]:
    return render_template("phone/app.html", asset=asset, mqtt_js=MQTT_JS, version=app_version(),
                           enrolment=enrolment), status


@phone.get("")
def app_page() -> Any:
    return _shell()


@phone.get("/")
def app_slash() -> Any:
    return redirect(url_for("phone.app_page"), 308)


def _enrol_limit() -> str:
    return str(app_settings().get("enrol_limit") or DEFAULT_ENROL_LIMIT)


def _refused(response: Response) -> bool:
    return response.status_code in (404, 410)


def _limited(view: Any) -> Any:
    from server.pages.session import limiter

    return limiter.shared_limit(_enrol_limit, scope="enrol", deduct_when=_refused)(view)


@phone.get("/enroll/<code>")
@_limited
def enroll_page(code: str) -> Any:
    """The set-up page: what the link will do, or why it will not (used, expired, unknown)."""
    with ext().db.read() as s:
        row = enrolments.by_code(s, code)
        if row is None:
            what, site = "unknown", None
        else:
            what, site = enrolments.state(row), {"code": row.site.code, "name": row.site.name}
            expires_at = wire.format_time(row.expires_at)
    info: dict[str, Any] = {"code": code if what == "active" else None, "state": what, "site": site}
    if what == "active":
        info["expires_at"] = expires_at
        return _shell(info)
    status, error_code, message = enrolments.REFUSALS[what]
    info.update(error={"code": error_code, "message": message})
    return _shell(info, status)


@phone.post("/enroll/<code>")
@_limited
def enroll(code: str) -> Any:
    """Use an enrolment code: this phone becomes a device of the link's site (once)."""
    ws_url = broker_ws_url()
    if ws_url is None:
        # Refused before the code is used: a phone with no broker to talk to would be no button.
        return error(503, "broker_ws_missing", "dashdesk has no address for the broker's WebSockets listener "
                                               "([app] broker_ws_url or ws_port): ask your admin.")
    user_agent = request.headers.get("User-Agent", "")
    try:
        with ext().db.write() as s:
            redeemed = enrolments.redeem(s, code, user_agent)
    except enrolments.EnrolmentError as exc:
        return error(exc.status, exc.code, exc.message)
    credentials = None
    broker = getattr(ext(), "broker", None)
    if broker is not None and broker.enabled:
        from server.domain import broker_accounts

        outcome = broker_accounts.issue(ext(), redeemed.device_id, f"enrolment:{redeemed.enrolment_id}")
        if outcome.failed:
            with ext().db.write() as s:
                enrolments.undo(s, redeemed, outcome.error or "the broker did not make the account")
            return error(503, "broker_unavailable", "The broker could not make this phone's account just now. "
                                                    "Try the same link again in a minute.")
        credentials = {"username": redeemed.device_id, "password": outcome.password}
    with ext().db.read() as s:
        device = s.scalar(select(Device).where(Device.device_id == redeemed.device_id))
        body = phone_config(s, device)
    body.update(token=redeemed.app_token, credentials=credentials)
    return jsonify(body), 201


@phone.get("/enroll/<code>/qr.svg")
def enroll_qr(code: str) -> Any:
    """The QR code of an enrolment link; drawn from the code in the path (it reveals nothing about it)."""
    if not enrolments.valid_code(code):
        return error(404, "not_found", "not an enrolment code")
    return Response(enrolments.qr_svg(enrolments.link_for(code, public_base())), mimetype="image/svg+xml")


@phone.get("/manifest.webmanifest")
def manifest() -> Any:
    icons = [
        {"src": asset("icons/icon-192.png"), "sizes": "192x192", "type": "image/png", "purpose": "any"},
        {"src": asset("icons/icon-512.png"), "sizes": "512x512", "type": "image/png", "purpose": "any"},
        {"src": asset("icons/maskable-512.png"), "sizes": "512x512", "type": "image/png", "purpose": "maskable"},
    ]
    body = {"name": "dashdesk button", "short_name": "dashdesk", "id": "/app", "start_url": "/app",
            "scope": "/app", "display": "standalone", "orientation": "portrait",
            "background_color": "#10233f", "theme_color": "#10233f", "lang": "en",
            "description": "Report a fault to the service desk with one tap.", "icons": icons}
    response = Response(json.dumps(body, ensure_ascii=False), mimetype="application/manifest+json")
    response.headers["Cache-Control"] = "no-cache"
    return response


@phone.get("/sw.js")
def service_worker() -> Any:
    shell = [url_for("phone.app_page"), url_for("phone.manifest")] + [asset(f) for f in SHELL_FILES]
    script = render_template("phone/sw.js", version=app_version(), shell=json.dumps(shell))
    response = Response(script, mimetype="text/javascript")
    # Served from /app/sw.js, its natural scope is /app/; this lets it control /app itself too.
    response.headers["Service-Worker-Allowed"] = "/app"
    # Browsers look for a new worker on every visit; no cache may hand them an old one.
    response.headers["Cache-Control"] = "no-cache"
    return response


# ------------------------------------------------------------------ the phone's own API


def _authenticated(s: Any) -> Device | tuple[Response, int]:
    header = request.headers.get("Authorization", "")
    token = header[7:].strip() if header[:7].lower() == "bearer " else ""
    found = enrolments.phone_of_token(s, token)
    if found is None:
        return error(401, "unauthorized", "This phone is not set up (or its set-up was undone): open a new "
                                          "enrolment link.")
    device = found[1]
    if device.status in ("retired", "rejected"):
        return error(410, "device_retired", "An admin retired this phone: it no longer reports. Ask for a new "
                                            "enrolment link to set it up again.")
    return device


@phone.get("/api/config")
def config() -> Any:
    """This phone's configuration: its buttons, labels per language, the broker (without the password)."""
    with ext().db.read() as s:
        device = _authenticated(s)
        if not isinstance(device, Device):
            return device
        return jsonify(phone_config(s, device))


def _ticket_state(row: Ticket) -> dict[str, Any]:
    """The ticket's summary (as acks and the ``tickets`` topic carry it), its priority and when it was resolved."""
    return {**incidents.ticket_summary(row), "priority": row.priority,
            "resolved_at": wire.format_time(row.resolved_at) if row.resolved_at else None}


@phone.get("/api/tickets/<int:ticket_id>")
def ticket(ticket_id: int) -> Any:
    """A ticket this phone reported into (its status once the ``tickets`` topic no longer lists it).

    An agent may have merged it into another ticket, which holds the phone's presses since: then
    ``merged_into`` is that ticket (at the end of merges of merges), which the app follows from then on.
    """
    with ext().db.read() as s:
        device = _authenticated(s)
        if not isinstance(device, Device):
            return device
        row = s.get(Ticket, ticket_id) if 0 < ticket_id < 2**63 else None
        if row is not None and device.device_id not in (row.devices or []) and not s.scalar(
                select(Press.id).where(Press.device_id == device.device_id, Press.ticket_id == ticket_id).limit(1)):
            row = None
        if row is None:
            return error(404, "not_found", f"this phone reported nothing into ticket {ticket_id}")
        target = row
        for _ in range(16):  # a merge goes into an open ticket, so merges never loop; this bounds the walk
            if target.merged_into_id is None:
                break
            target = s.get(Ticket, target.merged_into_id)
        body = _ticket_state(row)
        body["merged_into"] = _ticket_state(target) if target is not row else None
        return jsonify(body)


@phone.errorhandler(429)
def _too_many(exc: Any) -> Any:
    # Retry-After is the rate limiter's own header (RATELIMIT_HEADERS_ENABLED), added to this answer too.
    message = "Too many tries from here. Wait a minute, then try again."
    if request.method == "GET" and request.endpoint == "phone.enroll_page":
        return _shell({"code": None, "state": "too_many", "site": None,
                       "error": {"code": "too_many_requests", "message": message}}, 429)
    return error(429, "too_many_requests", message)
