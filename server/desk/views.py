"""The service desk's web pages: sign-in, the queue, a ticket, live updates.

Server-rendered (Jinja); the only script is ``static/desk.js`` (keyboard,
live updates). Signed-in users are ``agent`` or ``admin`` (``server.users``);
each sign-in is a row of ``web_sessions`` (``server.web_sessions``) whose key
Flask's signed cookie carries (Flask-Login), every form carries a CSRF token
(Flask-WTF), and the bearer-token API (``/api/v1``) is exempt.

Paths (a public contract): ``/login``, ``/`` (the queue), ``/tickets/<id>``.
"""

from __future__ import annotations

import json
import threading
import time
import zoneinfo
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterator
from urllib.parse import urlencode, urlsplit

from flask import (Blueprint, Flask, Response, abort, current_app, flash, redirect, render_template, request,
                   session, url_for)
from markupsafe import Markup, escape
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user
from flask_wtf import FlaskForm
from flask_wtf.csrf import CSRFError, CSRFProtect, generate_csrf
from sqlalchemy import func, or_, select, text
from sqlalchemy.orm import Session, joinedload
from wtforms import PasswordField, StringField, SubmitField
from wtforms.validators import DataRequired, Length

from dashdesk import wire

from server.domain import inputs, rules, tickets, users, web_sessions
from server.db import DatabaseBusy
from server.domain import sites as sites_mod
from server.models import (OPEN_STATUSES, QUEUE_WHERE, QUEUE_WHERE_PG, Category, Device, Event, Press, Site, Ticket,
    User)

web = Blueprint("web", __name__)
web.enable_openapi = False  # type: ignore[attr-defined]  # APIFlask: pages are not part of the API document
csrf = CSRFProtect()
login_manager = LoginManager()
# Guessing passwords: failed sign-ins are counted (server.login_limit_*), others are free.
limiter = Limiter(get_remote_address, default_limits=[])

PAGE_SIZE = 100
# How often a live-update stream looks for new events, and sends a keep-alive comment.
POLL_S = 0.2
HEARTBEAT_S = 15.0
# How often an open stream checks that its session still holds: it ends within this once the user signs out,
# gets a new password, is disabled or changes role (the browser's reconnection then gets 401).
SESSION_CHECK_S = 1.0
# Set when the server is asked to stop: open streams end at once (see server.serve).
STOPPING = threading.Event()
# The partial index ix_tickets_open_due serves only queries with this very text (see models.Ticket).
QUEUE_SQL = text(QUEUE_WHERE.replace("+status", "+tickets.status").replace("is_test", "tickets.is_test"))
QUEUE_SQL_PG = text(QUEUE_WHERE_PG.replace("status", "tickets.status").replace("is_test", "tickets.is_test"))
# Past this many, a filtered queue says "1000+": counting them all would cost more than the page.
COUNT_CAP = 1000
BATTERY_LOW_PCT = 20
RSSI_WEAK_DBM = -75
CPU_HOT_C = 80


def ext() -> Any:
    return current_app.extensions["dashdesk"]


# ------------------------------------------------------------------ users and sessions


@dataclass
class WebUser(UserMixin):
    """The signed-in user of a request, and the session (``web_sessions`` row) they are signed in with."""

    id: int
    username: str
    role: str
    session_key: str = ""  # what the cookie carries (Flask-Login's user id); the database keeps its hash
    session_id: int = 0

    def get_id(self) -> str:
        return self.session_key

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@login_manager.user_loader
def _load_user(key: str) -> WebUser | None:
    """The session's user: one look-up of the cookie's key joined with its user, on every page request. None
    (signed out) once the session has ended: signed out, a new password, disabled, another role, expired."""
    now = wire.utcnow()
    db = ext().db
    with db.read() as s:
        found = web_sessions.find(s, key, now)
    if found is None:
        return None
    if web_sessions.needs_seen(found, now):
        # Bookkeeping for the admins' list of sessions: never worth a page waiting for another writer.
        try:
            with db.write(wait=False) as s:
                web_sessions.seen(s, found.session_id, now)
        except DatabaseBusy:
            pass  # the next request of this session tries again
    return WebUser(found.user_id, found.username, found.role, key, found.session_id)


def start_session(user_id: int, username: str, role: str) -> None:
    """Sign ``username`` in on this browser: a new session (a new cookie key, a new CSRF token). Ends the one the
    browser had, if any."""
    db = ext().db
    with db.write() as s:
        if current_user.is_authenticated:
            web_sessions.end(s, current_user.session_key)
        key, session_id = web_sessions.start(s, user_id, current_app.permanent_session_lifetime, wire.utcnow(),
                                             request.user_agent.string)
    session.clear()  # a fresh session (and CSRF token) for whoever signs in
    session.permanent = True
    login_user(WebUser(user_id, username, role, key, session_id))


def renew_session() -> None:
    """After a change to the signed-in user that ended their sessions (their own new password, their own role),
    a fresh one for this browser, as they are now; none if they disabled themselves. Nothing if this session
    still holds (the change changed nothing)."""
    with ext().db.read() as s:
        if web_sessions.alive(s, current_user.session_id, wire.utcnow()):
            return
        row = s.get(User, current_user.id)
    if row is not None and row.active:
        start_session(row.id, row.username, row.role)


@login_manager.unauthorized_handler
def _unauthorized() -> Response:
    if request.args.get("partial") or request.path.startswith("/events/") or request.endpoint == "web.session_state":
        abort(401)
    return redirect(url_for("web.login", next=request.full_path.rstrip("?")))


def safe_next(target: str | None) -> str:
    """``target`` if it is a path on this site, else the queue: never an open redirect."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return url_for("web.queue")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or any(ord(c) < 32 for c in target):
        return url_for("web.queue")
    return target


PUBLIC_ENDPOINTS = {"web.login", "web.favicon"}


@web.get("/favicon.ico")
def favicon() -> Response:
    """The app's icon, for whatever asks for /favicon.ico (the pages name it in their head)."""
    return current_app.send_static_file("app/icons/icon-192.png")


@web.before_request
def _require_login() -> Any:
    if request.endpoint not in PUBLIC_ENDPOINTS and not current_user.is_authenticated:
        return login_manager.unauthorized()
    return None


@web.after_request
def _no_store(response: Response) -> Response:
    # Pages show people's work as it is now; neither browsers nor proxies keep them.
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    return response


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


# ------------------------------------------------------------------ formatting


def duration(seconds: float) -> str:
    s = int(abs(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def local_time(value: datetime | None) -> str:
    """RFC 3339, for machines: ``<time datetime="...">``."""
    return wire.format_time(value) if value else ""


def readable_time(value: datetime | str | None) -> str:
    """A time as people read it, in UTC to the second: ``2026-11-23 21:44:04 UTC``; "" for none.

    Every page's Jinja filter ``when`` (the desk, the admin pages, the phone enrolments). Also takes
    an RFC 3339 string, as the API's dictionaries hold times; one it cannot read is shown as it is.
    """
    if not value:
        return ""
    if isinstance(value, str):
        try:
            value = wire.parse_time(value)
        except ValueError:
            return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    t = value.astimezone(timezone.utc)
    return f"{t.year:04d}-" + t.strftime("%m-%d %H:%M:%S UTC")


@dataclass
class Sla:
    label: str  # "respond" or "resolve"
    text: str
    css: str  # sla-ok, sla-warn, sla-breached, sla-none
    deadline: datetime | None


def sla_state(responded_at: datetime | None, respond_by: datetime | None, resolve_by: datetime | None,
              started_at: datetime, status: str, now: datetime) -> Sla:
    """The deadline that counts now and how close it is: warn under a quarter of its window (from
    ``started_at``, when the SLA clock started: ``rules.sla_start``), or 10 min."""
    if status not in OPEN_STATUSES:
        return Sla("", "—", "sla-none", None)
    if status == "on_hold":
        # The clock is stopped; leaving hold moves the deadlines later by the time held.
        return Sla("", "paused (on hold)", "sla-paused", None)
    label, deadline = ("respond", respond_by) if responded_at is None else ("resolve", resolve_by)
    if deadline is None:
        return Sla(label, "no target", "sla-none", None)
    left = (deadline - now).total_seconds()
    window = max(1.0, (deadline - started_at).total_seconds())
    if left < 0:
        return Sla(label, f"{label} overdue by {duration(left)}", "sla-breached", deadline)
    css = "sla-warn" if left < max(window / 4, 600) else "sla-ok"
    return Sla(label, f"{duration(left)} to {label}", css, deadline)


# ------------------------------------------------------------------ the queue


@dataclass
class QueueFilters:
    status: str = ""
    category: str = ""
    site: str = ""
    priority: int | None = None
    assignee: str = ""  # "", "me" or "none"
    q: str = ""
    page: int = 0

    @classmethod
    def from_args(cls, args: Any) -> "QueueFilters":
        f = cls()
        f.status = args.get("status", "") if args.get("status", "") in OPEN_STATUSES else ""
        f.category = args.get("category", "")[:63]
        f.site = args.get("site", "")[:64]
        f.priority = inputs.parse_int(args.get("priority", ""), low=1, high=4)
        f.assignee = args.get("assignee", "") if args.get("assignee", "") in ("me", "none") else ""
        f.q = args.get("q", "").strip()[:100]
        f.page = inputs.page_number(args.get("page", "0"))
        return f

    def query(self, **change: Any) -> str:
        values = {"status": self.status, "category": self.category, "site": self.site,
                  "priority": self.priority or "", "assignee": self.assignee, "q": self.q, "page": self.page or ""}
        values.update(change)
        return urlencode({k: v for k, v in values.items() if v not in ("", None, 0)})


@dataclass
class QueueRow:
    id: int
    number: str
    status: str
    priority: int
    category_slug: str
    category_name: str
    icon: str
    site_code: str | None
    site_name: str | None
    device_id: str
    title: str
    occurrences: int
    assignee: str | None
    age: str
    sla: Sla


def queue_rows(s: Session, f: QueueFilters, username: str, now: datetime) -> tuple[list[QueueRow], int, bool]:
    """One page of the open queue: most urgent priority first, then the deadline nearest to breach.

    One query for the page (categories and sites joined), one to count it unless the page, filtered and
    not full, is the count.
    """
    due = Ticket.due_expr()
    cols = (Ticket.id, Ticket.status, Ticket.priority, Ticket.device_id, Ticket.title, Ticket.occurrences,
            Ticket.assignee, Ticket.first_reported_at, Ticket.created_at, Ticket.responded_at, Ticket.respond_by,
            Ticket.resolve_by, Category.slug, Category.name, Category.icon, Site.code, Site.name, Ticket.held_s,
            Ticket.on_hold_since)
    sqlite = s.get_bind().dialect.name == "sqlite"
    conditions: list[Any] = [QUEUE_SQL if sqlite else QUEUE_SQL_PG]
    if f.status:
        # + again: walk the queue's index in order and skip the other statuses, rather than sort them all.
        conditions.append(text("+tickets.status = :status").bindparams(status=f.status) if sqlite
                          else Ticket.status == f.status)
    if f.category:
        conditions.append(Ticket.category_id == select(Category.id).where(Category.slug == f.category)
                          .scalar_subquery())
    if f.site:
        conditions.append(Ticket.site_id == sites_mod.id_of(f.site))
    if f.priority:
        conditions.append(Ticket.priority == f.priority)
    if f.assignee == "me":
        conditions.append(Ticket.assignee == username)
    elif f.assignee == "none":
        conditions.append(Ticket.assignee.is_(None))
    if f.q:
        number = rules.parse_ticket_number(f.q)
        if number is not None and f.q.strip().upper().startswith("INC-"):
            conditions.append(Ticket.id == number)
        else:
            # The sites that match, found once; then each open ticket is tested on the queue's index
            # (ix_tickets_open_due_filters holds site_id and device_id), with no join per ticket.
            sites = select(Site.id).where(or_(Site.code.contains(f.q, autoescape=True),
                                              Site.name.contains(f.q, autoescape=True)))
            found = [Ticket.site_id.in_(sites), Ticket.device_id.contains(f.q, autoescape=True)]
            if number is not None:
                found.append(Ticket.id == number)
            conditions.append(or_(*found))
    stmt = (select(*cols).select_from(Ticket).join(Category, Category.id == Ticket.category_id)
            .outerjoin(Site, Site.id == Ticket.site_id).where(*conditions)
            .order_by(Ticket.priority, due, Ticket.id).limit(PAGE_SIZE + 1).offset(f.page * PAGE_SIZE))
    rows = s.execute(stmt).all()
    matching = select(Ticket.id).where(*conditions)
    if len(conditions) == 1:
        total = s.scalar(select(func.count()).select_from(matching.subquery())) or 0
    elif len(rows) <= PAGE_SIZE and (rows or f.page == 0):
        # A filtered queue's last page holds all the rest of it: its rows tell the count.
        total = f.page * PAGE_SIZE + len(rows)
    else:
        total = s.scalar(select(func.count()).select_from(matching.limit(COUNT_CAP + 1).subquery())) or 0
    out = [QueueRow(
        id=r[0], number=rules.ticket_number(r[0]), status=r[1], priority=r[2], device_id=r[3], title=r[4],
        occurrences=r[5], assignee=r[6], age=duration((now - r[7]).total_seconds()),
        sla=sla_state(r[9], r[10], r[11], rules.sla_start(r[8], r[17], r[18], now), r[1], now),
        category_slug=r[12], category_name=r[13],
        icon=r[14], site_code=r[15], site_name=r[16]) for r in rows[:PAGE_SIZE]]
    return out, total, len(rows) > PAGE_SIZE


@web.get("/")
def queue() -> Any:
    f = QueueFilters.from_args(request.args)
    now = wire.utcnow()
    with ext().db.read() as s:
        rows, total, more = queue_rows(s, f, current_user.username, now)
        if request.args.get("partial"):
            return render_template("_queue_table.html", rows=rows, total=total, more=more, f=f, cap=COUNT_CAP)
        categories = s.execute(select(Category.slug, Category.name, Category.icon).order_by(Category.name)).all()
        sites = s.execute(select(Site.code, Site.name).order_by(Site.code).limit(2000)).all()
    return render_template("queue.html", rows=rows, total=total, more=more, f=f, cap=COUNT_CAP, categories=categories,
                           site_options=site_options(sites, f.site), statuses=OPEN_STATUSES,
                           labels=tickets.STATUS_LABELS)


def site_options(sites: Any, chosen: str) -> Markup:
    """The site filter's options, one string: a chain has hundreds of shops, and a template loop
    over them costs more than the rest of the queue page."""
    return Markup("".join(
        f'<option value="{escape(code)}"{" selected" if code == chosen else ""}>{escape(code)}'
        f'{f" — {escape(name)}" if name != code else ""}</option>' for code, name in sites))


# ------------------------------------------------------------------ one ticket


@dataclass
class Reading:
    key: str
    value: str
    problem: str | None = None


def telemetry_rows(telemetry: dict[str, Any] | None) -> tuple[list[Reading], list[Reading]]:
    """The snapshot as (readings, probes), each flagged with what is wrong if anything."""
    readings: list[Reading] = []
    probes: list[Reading] = []
    for key, value in (telemetry or {}).items():
        if key == "probes" and isinstance(value, dict):
            for name, probe in value.items():
                if isinstance(probe, dict):
                    ok = probe.get("ok")
                    detail = "; ".join(f"{k}: {v}" for k, v in probe.items() if k != "ok")
                    probes.append(Reading(str(name), ("OK" if ok else "FAILING" if ok is False else "?")
                                          + (f" — {detail}" if detail else ""),
                                          "probe failing" if ok is False else None))
                else:
                    probes.append(Reading(str(name), json.dumps(probe)[:200]))
            continue
        problem = None
        if key == "battery_pct" and isinstance(value, (int, float)) and value < BATTERY_LOW_PCT:
            problem = f"battery low (< {BATTERY_LOW_PCT} %)"
        elif key == "rssi_dbm" and isinstance(value, (int, float)) and value < RSSI_WEAK_DBM:
            problem = f"weak signal (< {RSSI_WEAK_DBM} dBm)"
        elif key == "cpu_temp_c" and isinstance(value, (int, float)) and value > CPU_HOT_C:
            problem = f"hot (> {CPU_HOT_C} °C)"
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        readings.append(Reading(str(key), shown[:500], problem))
    return readings, probes


def describe(e: Event) -> list[str]:
    """What an event of a ticket's history says, in a few lines."""
    d = e.data or {}
    press = d.get("press", "single")
    late = " (late: it waited in the device's queue)" if d.get("late") else ""
    # A test-mode device's tickets have "test.*" events, kept off the desk's live updates.
    kind = "ticket." + e.kind[len("test."):] if e.kind.startswith("test.") else e.kind
    lines = {
        "ticket.created": [f"Reported by a {press} press{late}"],
        "ticket.merged": [f"Another {press} press merged into it{late}"],
        "ticket.reopened": [f"Reopened by a {press} press{late}"],
        "ticket.cancelled": [f"A double press cancelled a report{late}"],
    }.get(kind)
    if lines is not None:
        raised = (d.get("changes") or {}).get("priority")
        if isinstance(raised, list) and len(raised) == 2:
            lines.append(f"Priority: {raised[0]} → {raised[1]} (a long press)")
        return lines
    out: list[str] = []
    for field, (old, new) in (d.get("changes") or {}).items():
        if field == "status":
            out.append(f"Status: {tickets.STATUS_LABELS.get(old, old)} → {tickets.STATUS_LABELS.get(new, new)}")
        elif field == "merged_into":
            continue
        else:
            out.append(f"{field.capitalize()}: {old if old is not None else '—'} → {new if new is not None else '—'}")
    if d.get("merged_into_number"):
        out.append(f"Merged into {d['merged_into_number']} (duplicate)")
    if d.get("merged_from_number"):
        moved = d.get("presses_moved", 0)
        out.append(f"{d['merged_from_number']} merged into this ticket ({moved} press{'' if moved == 1 else 'es'})")
    for key, label in (("reason", "Reason"), ("resolution", "Resolution"), ("note", "Note")):
        if d.get(key) and not (key == "resolution" and d.get("merged_into_number")):
            out.append(f"{label}: {d[key]}")
    return out or [e.kind]


def shop_time(tz_name: str | None, now: datetime) -> str:
    """The time now in a shop's time zone, as an agent calling it reads it: ``Mon 14:05``; "" for a zone unknown."""
    try:
        local = now.astimezone(zoneinfo.ZoneInfo(tz_name or "UTC"))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return ""
    return local.strftime("%a %H:%M")


def _ticket_or_404(s: Session, ticket_id: int) -> Ticket:
    ticket = s.get(Ticket, ticket_id, options=[joinedload(Ticket.category), joinedload(Ticket.site)]) \
        if 0 < ticket_id < 2**63 else None
    if ticket is None:
        abort(404, f"There is no ticket {rules.ticket_number(ticket_id) if 0 < ticket_id < 10**12 else ticket_id}.")
    return ticket


MAX_PRESSES_SHOWN = 500


def ticket_page(ticket_id: int, error: str | None = None, status: int = 200, partial: bool = False) -> Any:
    """The ticket's page; ``partial``: only the parts that change, for the page's live updates (desk.js)."""
    now = wire.utcnow()
    with ext().db.read() as s:
        t = _ticket_or_404(s, ticket_id)
        presses = s.scalars(select(Press).where(Press.ticket_id == t.id).order_by(Press.pressed_at.desc(), Press.id.desc())
                            .limit(MAX_PRESSES_SHOWN)).all()
        press_count = s.scalar(select(func.count()).select_from(Press).where(Press.ticket_id == t.id))
        history = s.scalars(select(Event).where(Event.ticket_id == t.id).order_by(Event.id)).all()
        device = s.scalar(select(Device).options(joinedload(Device.site)).where(Device.device_id == t.device_id))
        agents = s.scalars(select(User.username).where(User.active.is_(True)).order_by(User.username)).all()
        merged_into = s.get(Ticket, t.merged_into_id) if t.merged_into_id else None
        readings, probes = telemetry_rows(t.telemetry)
        # The forms a ticket in this status takes: the live page hides the others (unless they hold unsent text).
        forms = {"resolve": t.status in OPEN_STATUSES, "hold": t.status in ("new", "in_progress"),
                 "assign": t.status in OPEN_STATUSES, "priority": t.status != "closed",
                 "merge": t.status not in ("closed", "cancelled"), "note": True}
        body = render_template(
            "_ticket_live.html" if partial else "ticket.html", t=t, number=rules.ticket_number(t.id),
            presses=presses, press_count=press_count,
            history=[(e, describe(e)) for e in history], device=device, agents=agents, merged_into=merged_into,
            readings=readings, probes=probes,
            sla=sla_state(t.responded_at, t.respond_by, t.resolve_by,
                          rules.sla_start(t.created_at, t.held_s, t.on_hold_since, now), t.status, now),
            age=duration((now - t.first_reported_at).total_seconds()), error=error, forms=forms,
            labels=tickets.STATUS_LABELS, transitions=tickets.TRANSITIONS, open_statuses=OPEN_STATUSES,
            fmt=local_time, duration=duration, now=now, service_hours=sites_mod.format_hours,
            shop_now=shop_time(t.site.timezone, now) if t.site else "")
    return body, status


@web.get("/tickets/<int:ticket_id>")
def ticket(ticket_id: int) -> Any:
    return ticket_page(ticket_id, partial=bool(request.args.get("partial")))


def _target(s: Session, text_: str) -> Ticket:
    number = rules.parse_ticket_number(text_ or "")
    target = s.get(Ticket, number) if number and number < 2**63 else None
    if target is None:
        raise tickets.TicketError(f"there is no ticket {text_.strip()[:30] or '(none given)'} to merge into")
    return target


def _do(action: str, s: Session, t: Ticket, me: str, form: Any) -> str:
    """Run one desk action; return what to tell the agent."""
    number = rules.ticket_number(t.id)
    if action == "take":
        tickets.take(s, t, me)
        return f"You took {number}."
    if action == "assign":
        tickets.assign(s, t, me, form.get("assignee", "").strip() or None)
        return f"{number} is assigned to {t.assignee or 'nobody'}."
    if action == "start":
        tickets.start(s, t, me)
        return f"{number} is in progress."
    if action == "hold":
        tickets.hold(s, t, me, form.get("reason"))
        return f"{number} is on hold."
    if action == "resolve":
        tickets.resolve(s, t, me, form.get("resolution"))
        return f"{number} is resolved."
    if action == "close":
        tickets.close(s, t, me)
        return f"{number} is closed."
    if action == "cancel":
        tickets.cancel(s, t, me)
        return f"{number} is cancelled."
    if action == "reopen":
        tickets.reopen(s, t, me)
        return f"{number} is open again."
    if action == "priority":
        value = inputs.parse_int(form.get("priority", ""), low=1, high=4)
        if value is None:
            raise tickets.TicketError("choose a priority from 1 (most urgent) to 4")
        tickets.set_priority(s, t, me, value)
        return f"{number} has priority {value}."
    if action == "note":
        tickets.add_note(s, t, me, form.get("note"))
        return "Note added."
    if action == "merge":
        target = _target(s, form.get("target", ""))
        tickets.merge(s, t, target, me)
        return f"{number} was merged into {rules.ticket_number(target.id)}."
    abort(404)


@web.post("/tickets/<int:ticket_id>/<action>")
def ticket_action(ticket_id: int, action: str) -> Any:
    if action not in tickets.ACTIONS:
        abort(404)
    try:
        with ext().db.write() as s:
            t = _ticket_or_404(s, ticket_id)
            message = _do(action, s, t, current_user.username, request.form)
    except tickets.TicketError as exc:
        message = str(exc)
        message = message[0].upper() + message[1:]
        if request.form.get("next"):
            flash(message, "error")
            return redirect(safe_next(request.form["next"]), 303)
        return ticket_page(ticket_id, error=message, status=409)
    flash(message, "ok")
    return redirect(safe_next(request.form.get("next") or url_for("web.ticket", ticket_id=ticket_id)), 303)


# ------------------------------------------------------------------ live updates


class StreamSlots:
    """At most ``limit`` open streams per process: each holds one of the server's threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.open = 0

    def take(self, limit: int) -> bool:
        with self._lock:
            if self.open >= limit:
                return False
            self.open += 1
            return True

    def give(self) -> None:
        with self._lock:
            self.open -= 1


SLOTS = StreamSlots()


def _sse(event_id: int | None = None, event: str | None = None, data: Any = None, comment: str | None = None,
         retry_ms: int | None = None) -> str:
    lines = []
    if comment is not None:
        lines.append(f": {comment}")
    if retry_ms is not None:
        lines.append(f"retry: {retry_ms}")
    if event_id is not None:
        lines.append(f"id: {event_id}")
    if event is not None:
        lines.append(f"event: {event}")
    if data is not None:
        lines.append("data: " + json.dumps(data, separators=(",", ":")))
    return "\n".join(lines) + "\n\n"


@web.get("/events/stream")
def event_stream() -> Response:
    """Server-Sent Events: one ``ticket`` event per row of the event feed after ``Last-Event-ID``.

    Each says what happened to which ticket and the ticket's priority now (with ``priority_was``
    when the event changed it), so that a queue page can alert on a new priority-1 ticket. Every
    event of a test ticket (a device in test mode), whoever wrote it, is ``test.<what>`` and has
    ``"test": true``: the desk neither lists nor announces test tickets.
    Lasts ``sse_lifetime_s`` (60 s), then ends; the browser's EventSource reconnects with the
    last id it saw, so nothing is missed. A comment every 15 s keeps proxies from closing it.
    Ends within ``SESSION_CHECK_S`` (1 s) of the session's end (signed out, a new password, disabled,
    another role, expired): its reconnection is refused (401).
    """
    db = ext().db
    lifetime = current_app.config["DASHDESK_SSE_LIFETIME_S"]
    session_id = current_user.session_id
    limit = current_app.config["DASHDESK_SSE_MAX_STREAMS"]
    asked = request.headers.get("Last-Event-ID") or request.args.get("after") or ""
    with db.read() as s:
        newest = s.scalar(select(func.coalesce(func.max(Event.id), 0))) or 0
    # A cursor past the newest event (a database started anew) falls back to it, as the feed does.
    cursor = inputs.parse_int(asked)
    last = newest if cursor is None else min(cursor, newest)

    def event_data(row: Any) -> dict[str, Any]:
        data: dict[str, Any] = {"id": row.id, "kind": row.kind, "ticket_id": row.ticket_id}
        if row.is_test:
            data.update(kind="test." + row.kind.partition(".")[2], test=True)
        if row.ticket_id is not None:
            data.update(number=rules.ticket_number(row.ticket_id), priority=row.priority, title=row.title)
            changed = ((row.data or {}).get("changes") or {}).get("priority")
            if isinstance(changed, list) and len(changed) == 2:
                data["priority_was"] = changed[0]
        return data

    def stream() -> Iterator[str]:
        nonlocal last
        if not SLOTS.take(limit):
            # Every stream slot is taken: come back later (the page still refreshes on its own).
            yield _sse(event_id=last, retry_ms=15000, comment="busy")
            return
        try:
            yield _sse(event_id=last, retry_ms=1000, comment="dashdesk events")
            end = time.monotonic() + lifetime
            beat = time.monotonic() + HEARTBEAT_S
            check = time.monotonic() + SESSION_CHECK_S
            while time.monotonic() < end and not STOPPING.is_set():
                with db.read() as s:
                    if time.monotonic() >= check:
                        if not web_sessions.alive(s, session_id, wire.utcnow()):
                            return  # signed out meanwhile: serve this user nothing more
                        check = time.monotonic() + SESSION_CHECK_S
                    rows = s.execute(select(Event.id, Event.kind, Event.ticket_id, Event.data, Ticket.priority,
                                            Ticket.title, Ticket.is_test)
                                     .outerjoin(Ticket, Ticket.id == Event.ticket_id).where(Event.id > last)
                                     .order_by(Event.id).limit(200)).all()
                for row in rows:
                    last = row.id
                    yield _sse(event_id=row.id, event="ticket", data=event_data(row))
                if rows:
                    beat = time.monotonic() + HEARTBEAT_S
                elif time.monotonic() >= beat:
                    yield _sse(comment="ping")
                    beat = time.monotonic() + HEARTBEAT_S
                if len(rows) < 200:
                    STOPPING.wait(POLL_S)
        finally:
            SLOTS.give()

    return Response(stream(), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


# ------------------------------------------------------------------ errors and set-up


def _error_page(code: int, title: str, message: str) -> tuple[str, int]:
    return render_template("error.html", code=code, title=title, message=message), code


# The errors of a page, by status: its title and what to say when the error has no words of its own.
PAGE_ERRORS = {
    400: ("Bad request", "The request was not understood."),
    401: ("Signed out", "Sign in again to see this."),
    403: ("Not allowed", "You may not see this page."),
    404: ("Not found", "There is nothing here."),
    405: ("Not a page", "This address takes a page's forms, not a visit: go back and use the page's buttons."),
    413: ("Too large", "What was sent is larger than this page accepts. Go back and send a smaller file."),
    429: ("Too many attempts", "Too many failed sign-ins from here. Wait a minute, then try again."),
    500: ("Something went wrong", "The server could not finish this; it may not have been done. Go back, reload the "
                                  "page and check; if it happens again, tell your admin."),
    503: ("Unavailable", "The service is not available just now. Try again in a minute."),
}
# A form posted without its security token, or with an old one: what the agent can do about it.
FORM_EXPIRED = ("The form has expired",
                "The form was missing its security token or it has expired. Go back, reload the page and try again.")
# The statuses whose page always says its own words: a 401 comes with Werkzeug's, a 429 with the sign-in limit's
# rule ("3 per 1 minute").
_OWN_WORDS = {401, 429}
# Werkzeug's own descriptions, too technical for a page: the titles' texts above say it better.
_GENERIC = ("The method is not allowed", "The data value transmitted exceeds", "The server encountered an internal",
            "The server is temporarily unable")


def is_page_request() -> bool:
    """Whether the request is for a page (the desk's, the admin pages'): its errors get the HTML error page. The
    API (``/api/``), the phone app (``/app/``, which answers its own errors) and ``/healthz`` answer JSON."""
    path = request.path
    return not (path == "/api" or path.startswith(("/api/", "/app/")) or path in ("/app", "/healthz"))


def page_error(code: int, description: str | None, exc: BaseException | None = None) -> tuple[str, int]:
    """The HTML error page for an error of status ``code`` (the exception ``exc``, if there is one) on a page; one
    that fails to render (the error came from the database, say) is plain HTML instead."""
    if code == 413 and request.max_content_length:
        description = (f"What was sent is larger than this page accepts (at most "
                       f"{request.max_content_length / (1024 * 1024):g} MiB). Go back and send a smaller file.")
    if isinstance(exc, CSRFError):
        title, text = FORM_EXPIRED
    else:
        title, text = PAGE_ERRORS.get(code, ("Error", "The request could not be done."))
        if description and code not in _OWN_WORDS and not description.startswith(_GENERIC):
            text = description
    try:
        return _error_page(code, title, text)
    except Exception:  # noqa: BLE001 - the page itself failed: say it all the same
        return (f"<!doctype html><html lang=\"en\"><title>{escape(title)} · dashdesk</title><h1>{escape(title)}"
                f"</h1><p>{escape(text)}</p><p><a href=\"/\">Back to the queue</a></p></html>"), code


def init_web(app: Flask, exempt: list[Any]) -> None:
    """Sessions, CSRF protection (not for ``exempt`` blueprints: they take bearer tokens) and the pages."""
    login_manager.init_app(app)
    csrf.init_app(app)
    limiter.init_app(app)
    for blueprint in exempt:
        csrf.exempt(blueprint)
    app.register_blueprint(web)
    from server.admin.views import admin  # the admin pages (/admin) use this module's sign-in and error pages

    app.register_blueprint(admin)
    from server.phone.views import init_phone  # the phone app (/app, no sign-in) and its enrolments (/admin/enrolments)

    init_phone(app, csrf)
    app.jinja_env.globals.update(ticket_number=rules.ticket_number)
    app.jinja_env.filters["when"] = readable_time
