"""The admin pages (``/admin``): sites, devices and their buttons, categories, the audit log.

Server-rendered like the desk (``server.web``: same sign-in, layout and CSRF-protected
forms), for admins only: an agent gets 403, the signed-out the sign-in page. Each form
runs one write transaction with its audit row (``server.audit``); the rules live in
``server.sites``, ``server.devices`` and ``server.categories``, which the API uses too.
A change to a mapping or a category takes effect on the next press.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import urlencode

from flask import Blueprint, abort, flash, redirect, render_template, request, session, url_for
from flask_login import current_user
from sqlalchemy import func, select
from sqlalchemy.orm import Session, joinedload

from dashdesk import wire

from server.domain import audit, categories, broker_accounts as credentials, devices, inputs, rules, sites
from server.api.core import open_tickets_by_device
from server.models import (DEDUP_SCOPES, DEVICE_STATUSES, AuditLog, ButtonMapping, Category, Device, Press, Site,
    Ticket, OPEN_STATUSES)
from server.desk.views import _no_store, duration, ext, login_manager, telemetry_rows

admin = Blueprint("admin", __name__, url_prefix="/admin")
admin.enable_openapi = False  # type: ignore[attr-defined]  # APIFlask: pages are not part of the API document

PAGE_SIZE = 50
PENDING_SHOWN = 50
STATUS_LABELS = {"pending": "Pending", "active": "Active", "retired": "Retired", "rejected": "Rejected"}
PRESS_LABELS = devices.PRESS_LABELS
LANGUAGES = {"en": "English", "pl": "Polish"}


@admin.url_value_preprocessor
def _bigger_uploads(endpoint: str | None, values: Any) -> None:
    # Runs before CSRFProtect reads the form: a chain's CSV file may be larger than the app's limit.
    if endpoint == "admin.site_import":
        request.max_content_length = sites.IMPORT_MAX_BYTES


@admin.before_request
def _admins_only() -> Any:
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    if not current_user.is_admin:
        abort(403, "This page is for admins.")
    return None


admin.after_request(_no_store)


@admin.context_processor
def _helpers() -> dict[str, Any]:
    return {"details_text": audit.details_text, "labels": STATUS_LABELS, "query": query}


def me() -> str:
    return current_user.username


@dataclass
class Pages:
    page: int
    total: int
    size: int = PAGE_SIZE

    @property
    def last(self) -> int:
        return max(0, (self.total - 1) // self.size)

    @property
    def more(self) -> bool:
        return self.page < self.last


def page_arg() -> int:
    return inputs.page_number(request.args.get("page", "0"))


def query(**values: Any) -> str:
    return urlencode({k: v for k, v in values.items() if v not in ("", None, 0)})


def refused(exc: Exception) -> str:
    """A refusal as a sentence for the page: its first letter a capital, unless the sentence starts with a
    name the request gave (a user name, a device id: ``jkowalski is the last active admin``), kept as it is."""
    message = getattr(exc, "message", None) or str(exc)
    if not message:
        return "Refused."
    first = message.split(" ", 1)[0].rstrip(".,;:")
    names = {str(v) for v in (request.view_args or {}).values()} | {v.strip() for v in request.form.values()}
    return message if first in names else message[0].upper() + message[1:]


def back(default: str) -> Any:
    target = request.form.get("next") or ""
    if not target.startswith("/admin") or target.startswith("//") or "\\" in target:
        target = default
    return redirect(target, 303)


# ------------------------------------------------------------------ overview


@admin.get("")
def index() -> Any:
    broker_on = ext().broker.enabled
    if broker_on:
        credentials.learn(ext())
    with ext().db.read() as s:
        by_status = dict(s.execute(select(Device.status, func.count()).group_by(Device.status)).all())
        counts = {
            "sites": s.scalar(select(func.count()).select_from(Site)) or 0,
            "devices": sum(by_status.values()),
            "online": s.scalar(select(func.count()).select_from(Device).where(Device.online.is_(True),
                                                                                Device.status == "active")) or 0,
            "without_account": s.scalar(select(func.count()).select_from(Device).where(
                Device.status == "active", Device.broker_account.is_not(True))) or 0 if broker_on else 0,
            "categories": s.scalar(select(func.count()).select_from(Category)) or 0,
            "open_tickets": s.scalar(select(func.count()).select_from(Ticket)
                                     .where(Ticket.status.in_(OPEN_STATUSES), Ticket.is_test.is_(False))) or 0,
        }
        pending = s.scalars(select(Device).where(Device.status == "pending")
                            .order_by(Device.first_seen_at.desc(), Device.id.desc()).limit(PENDING_SHOWN)).all()
        recent = s.scalars(select(AuditLog).order_by(AuditLog.id.desc()).limit(10)).all()
        site_codes = _site_codes(s)
    return render_template("admin/index.html", counts=counts, by_status=by_status, pending=pending, recent=recent,
                           site_codes=site_codes, statuses=DEVICE_STATUSES, labels=STATUS_LABELS, broker_on=broker_on)


def _site_codes(s: Session, limit: int = 5000) -> list[tuple[str, str]]:
    return [tuple(r) for r in s.execute(select(Site.code, Site.name).order_by(Site.code).limit(limit)).all()]


# ------------------------------------------------------------------ sites


def _site_form() -> dict[str, Any]:
    return {k: request.form.get(k, "") for k in sites.CSV_COLUMNS}


def _site_or_404(s: Session, code: str) -> Site:
    site = sites.by_code(s, code)
    if site is None:
        abort(404, f"There is no site {code[:70]}.")
    return site


@admin.get("/sites")
def site_list(form: dict[str, Any] | None = None, errors: dict[str, str] | None = None, status: int = 200) -> Any:
    q = request.args.get("q", "").strip()[:100]
    page = page_arg()
    stmt = sites.search(q)
    with ext().db.read() as s:
        total = s.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
        rows = s.scalars(stmt.limit(PAGE_SIZE).offset(page * PAGE_SIZE)).all()
        counts = sites.device_counts(s, rows)
    return render_template("admin/sites.html", rows=rows, counts=counts, q=q, pages=Pages(page, total),
                           query=query, form=form or {"timezone": "UTC"}, errors=errors or {},
                           hours=sites.format_hours, zones=sorted(sites._zones())), status


@admin.post("/sites")
def site_create() -> Any:
    form = _site_form()
    try:
        with ext().db.write() as s:
            site = sites.create(s, sites.clean(form), me())
            code = site.code
    except sites.SiteError as exc:
        return site_list(form=form, errors=exc.errors, status=422)
    flash(f"Site {code} created.", "ok")
    return redirect(url_for("admin.site", code=code), 303)


@admin.get("/sites/<code>")
def site(code: str, form: dict[str, Any] | None = None, errors: dict[str, str] | None = None,
         status: int = 200) -> Any:
    with ext().db.read() as s:
        row = _site_or_404(s, code)
        site_devices = s.scalars(select(Device).where(Device.site_id == row.id).order_by(Device.device_id)).all()
        history = s.scalars(audit.query(audit.AuditFilter(target=f"site:{row.code}")).limit(20)).all()
        if form is None:
            form = {k: getattr(row, k) for k in sites.CSV_COLUMNS}
            form["hours"] = sites.format_hours(row.hours)
    return render_template("admin/site.html", site=row, devices=site_devices, history=history, form=form,
                           errors=errors or {}, zones=sorted(sites._zones()), labels=STATUS_LABELS), status


@admin.post("/sites/<code>")
def site_update(code: str) -> Any:
    form = _site_form()
    try:
        with ext().db.write() as s:
            row = _site_or_404(s, code)
            changed = sites.update(s, row, sites.clean(form), me())
            new_code = row.code
    except sites.SiteError as exc:
        return site(code, form=form, errors=exc.errors, status=422)
    flash(f"Site {new_code} saved." if changed else "Nothing changed.", "ok")
    return redirect(url_for("admin.site", code=new_code), 303)


@admin.route("/sites/import", methods=["GET", "POST"])
def site_import() -> Any:
    if request.method == "GET":
        return render_template("admin/site_import.html", errors=None, columns=sites.CSV_COLUMNS)
    upload = request.files.get("file")
    body = upload.read() if upload is not None and upload.filename else b""
    if not body:
        body = request.form.get("csv", "").encode()
    if not body.strip():
        return render_template("admin/site_import.html", columns=sites.CSV_COLUMNS,
                               errors=sites.ImportRejected([sites.LineError(1, "choose a CSV file (or paste one)")]),
                               pasted=""), 422
    try:
        text = sites.decode(body)
        with ext().db.write() as s:
            result = sites.import_csv(s, text, me())
    except sites.ImportRejected as exc:
        pasted = request.form.get("csv", "") if len(request.form.get("csv", "")) < 200_000 else ""
        return render_template("admin/site_import.html", errors=exc, columns=sites.CSV_COLUMNS, pasted=pasted), 422
    flash(f"Imported {result.rows} sites: {len(result.created)} new, {len(result.updated)} changed, "
          f"{result.unchanged} unchanged.", "ok")
    return redirect(url_for("admin.site_list"), 303)


# ------------------------------------------------------------------ devices


@dataclass
class DeviceRow:
    device: Device
    open_tickets: int

    @property
    def telemetry(self) -> dict[str, Any]:
        return self.device.telemetry if isinstance(self.device.telemetry, dict) else {}


def reading(telemetry: dict[str, Any] | None, key: str) -> Any:
    value = (telemetry or {}).get(key) if isinstance(telemetry, dict) else None
    return value if isinstance(value, (int, float, str)) and not isinstance(value, bool) else None


# The devices list's filter by broker account: "none" also lists devices whose account is not known (the
# broker did not answer when asked): until it says otherwise, they may still need one.
ACCOUNT_FILTERS = {"none": Device.broker_account.is_not(True), "own": Device.broker_account.is_(True)}


@admin.get("/devices")
def device_list() -> Any:
    status = request.args.get("status", "")
    status = status if status in DEVICE_STATUSES else ""
    site_code = request.args.get("site", "").strip()[:64]
    q = request.args.get("q", "").strip()[:63]
    broker_on = ext().broker.enabled
    account = request.args.get("account", "")
    account = account if account in ACCOUNT_FILTERS and broker_on else ""
    page = page_arg()
    known = credentials.learn(ext()) if broker_on else True
    stmt = select(Device)
    if account:
        stmt = stmt.where(ACCOUNT_FILTERS[account])
    if status:
        stmt = stmt.where(Device.status == status)
    if site_code:
        stmt = stmt.where(Device.site_id == sites.id_of(site_code))
    if q:
        stmt = stmt.where(Device.device_id.contains(q, autoescape=True))
    with ext().db.read() as s:
        total = s.scalar(select(func.count()).select_from(stmt.subquery())) or 0
        order = (Device.first_seen_at.desc(), Device.id.desc()) if status == "pending" else (Device.device_id,)
        found = s.scalars(stmt.options(joinedload(Device.site)).order_by(*order)
                          .limit(PAGE_SIZE).offset(page * PAGE_SIZE)).all()
        tickets = open_tickets_by_device(s, [d.device_id for d in found])
        rows = [DeviceRow(d, len(tickets[d.device_id])) for d in found]
        site_codes = _site_codes(s)
    return render_template("admin/devices.html", rows=rows, status=status, site_code=site_code, q=q,
                           account=account, pages=Pages(page, total), query=query, statuses=DEVICE_STATUSES,
                           labels=STATUS_LABELS, site_codes=site_codes, reading=reading, ago=_ago,
                           broker_on=broker_on, accounts_known=known)


def _ago(value: Any) -> str:
    if value is None:
        return "never"
    return duration((wire.utcnow() - value).total_seconds()) + " ago"


def _device_or_404(s: Session, device_id: str) -> Device:
    try:
        return devices.get(s, device_id)
    except devices.AdminError:
        abort(404, f"There is no device {device_id[:70]}.")


@admin.get("/devices/<device_id>")
def device(device_id: str, error: str | None = None, status: int = 200, mapping_form: dict[str, Any] | None = None,
           broker: list[credentials.Outcome] | None = None) -> Any:
    """A device's page; ``broker``: what was just done to broker accounts (a new password is shown this once),
    else what a redirect to it left in the session (:func:`_show_once`)."""
    if broker is None and request.method == "GET":
        broker = _shown_once(device_id)
    with ext().db.read() as s:
        unknown = _device_or_404(s, device_id).broker_account is None
    if unknown and ext().broker.enabled:
        credentials.learn(ext())
    with ext().db.read() as s:
        row = _device_or_404(s, device_id)
        mappings = devices.mappings(s, row.device_id)
        test_tickets = devices.test_tickets(s, row.device_id)
        open_tests = set(s.scalars(select(Ticket.id).where(Ticket.device_id == row.device_id,
                                                           Ticket.is_test.is_(True),
                                                           Ticket.status.in_(OPEN_STATUSES))))
        tickets = [t for t in open_tickets_by_device(s, [row.device_id])[row.device_id] if t["id"] not in open_tests]
        seen = s.scalars(select(Press.button).where(Press.device_id == row.device_id).distinct()
                         .order_by(Press.button).limit(50)).all()
        presses = s.scalars(select(Press).where(Press.device_id == row.device_id).order_by(Press.id.desc())
                            .limit(10)).all()
        cats = s.scalars(select(Category).order_by(Category.name)).all()
        history = s.scalars(audit.query(audit.AuditFilter(target=f"device:{row.device_id}")).limit(20)).all()
        site_codes = _site_codes(s)
    buttons = sorted({*seen, *(m.button for m in mappings)})
    readings, probes = telemetry_rows(row.telemetry if isinstance(row.telemetry, dict) else None)
    return render_template("admin/device.html", d=row, mappings=mappings, tickets=tickets, buttons=buttons,
                           presses=presses, categories=cats, history=history, site_codes=site_codes,
                           readings=readings, probes=probes, labels=STATUS_LABELS, press_labels=PRESS_LABELS,
                           reading=reading, ago=_ago, error=error, test_tickets=test_tickets,
                           broker=broker or [], broker_on=ext().broker.enabled,
                           mf=mapping_form or {"button": buttons[0] if len(buttons) == 1 else ""}), status


def _device_action(device_id: str, run: Callable[[Session], str]) -> Any:
    try:
        with ext().db.write() as s:
            message = run(s)
    except devices.AdminError as exc:
        flash(refused(exc), "error")
        return back(url_for("admin.device", device_id=device_id))
    flash(message, "ok")
    return back(url_for("admin.device", device_id=device_id))


NO_ACCOUNTS = "The broker runs without accounts: the device needs no credentials."


def _with_credentials(device_id: str, message: str, outcomes: list[credentials.Outcome]) -> Any:
    """After a committed change: say so, and show what the broker did (a new password, shown this once, or
    a failure with a button to try again) on the device's page, after a redirect (a reload sends nothing
    again: no second password); without accounts, back where we came from."""
    if all(o.result == "not_needed" for o in outcomes):
        flash(f"{message} {NO_ACCOUNTS}" if any(o.device_id == device_id for o in outcomes) else message, "ok")
        return back(url_for("admin.device", device_id=device_id))
    flash(message, "ok")
    return _show_once(device_id, outcomes)


@admin.post("/devices/<device_id>/approve")
def device_approve(device_id: str) -> Any:
    site_code = request.form.get("site", "").strip()
    try:
        with ext().db.write() as s:
            site_code = devices.approve(s, device_id, site_code, me()).site.code  # as kept: in lower case
    except devices.AdminError as exc:
        flash(refused(exc), "error")
        return back(url_for("admin.device", device_id=device_id))
    return _with_credentials(device_id, f"{device_id} is approved into {site_code}.",
                             [credentials.keep_or_issue(ext(), device_id, me())])


@admin.post("/devices")
def device_register() -> Any:
    device_id = request.form.get("device_id", "").strip()
    site_code = request.form.get("site", "").strip()
    try:
        with ext().db.write() as s:
            site_code = devices.register(s, device_id, site_code, me(), request.form.get("kind", "physical")).site.code
    except devices.AdminError as exc:
        flash(refused(exc), "error")
        return redirect(url_for("admin.device_list"), 303)
    return _with_credentials(device_id, f"{device_id} is added to {site_code}, active.",
                             [credentials.keep_or_issue(ext(), device_id, me())])


@admin.post("/devices/<device_id>/credentials")
def device_credentials(device_id: str) -> Any:
    with ext().db.read() as s:
        row = _device_or_404(s, device_id)
        if row.status != "active":
            flash(f"{device_id} is {STATUS_LABELS.get(row.status, row.status).lower()}: only an active device gets "
                  "broker credentials.", "error")
            return redirect(url_for("admin.device", device_id=device_id), 303)
        had = row.broker_account is not False
    message = (("New broker credentials for {}: the old password no longer works." if had else
                "Broker credentials for {}, which had none.").format(device_id) if ext().broker.enabled
               else "Nothing to do.")
    return _with_credentials(device_id, message, [credentials.issue(ext(), device_id, me())])


@admin.post("/devices/<device_id>/credentials/remove")
def device_credentials_remove(device_id: str) -> Any:
    with ext().db.read() as s:
        _device_or_404(s, device_id)
    outcome = credentials.remove(ext(), device_id, me())
    if outcome.result == "removed":
        flash(f"{device_id}'s broker account is deleted: it is disconnected and cannot connect again.", "ok")
        return redirect(url_for("admin.device", device_id=device_id), 303)
    return _with_credentials(device_id, "Nothing to do.", [outcome])


# The session key under which a page that redirects after a POST leaves what the broker did (a new password)
# for the page it redirects to: shown there once, and never part of a URL.
SHOWN_ONCE = "dashdesk_broker_once"


def _show_once(device_id: str, outcomes: list[credentials.Outcome]) -> Any:
    """Redirect to the device's page (POST-redirect-GET: reloading it sends nothing again), which shows
    ``outcomes`` once: they travel in the session, not in the URL, and its first view takes them out."""
    session[SHOWN_ONCE] = {"device_id": device_id, "outcomes": [dataclasses.asdict(o) for o in outcomes]}
    return redirect(url_for("admin.device", device_id=device_id), 303)


def _shown_once(device_id: str) -> list[credentials.Outcome]:
    """What :func:`_show_once` left for ``device_id``'s page (taken out of the session: shown this once)."""
    kept = session.pop(SHOWN_ONCE, None)
    if not isinstance(kept, dict) or kept.get("device_id") != device_id:
        return []
    try:
        return [credentials.Outcome(**o) for o in kept.get("outcomes") or []]
    except TypeError:
        return []


@admin.post("/devices/<device_id>/replace")
def device_replace(device_id: str) -> Any:
    new_id = request.form.get("by", "").strip()
    try:
        with ext().db.write() as s:
            done = devices.replace(s, device_id, new_id, me())
            site = done.device.site.code if done.device.site else "—"
            numbers = ", ".join(rules.ticket_number(t) for t in done.tickets)
    except devices.AdminError as exc:
        flash(refused(exc), "error")
        return redirect(url_for("admin.device", device_id=device_id), 303)
    if done.again:
        # The form sent again (a reload, a second click): the replacement stands as it was made.
        flash(f"{device_id} was already replaced by {new_id}: nothing changed"
              + (" (its broker password stays as it is)." if ext().broker.enabled else "."), "ok")
        return redirect(url_for("admin.device", device_id=new_id), 303)
    took = (f"{len(done.tickets)} open ticket{'s' if len(done.tickets) != 1 else ''}"
            + (f" ({numbers})" if numbers else ""))
    message = (f"{new_id} replaced {device_id}: site {site}, {done.mappings} button mapping"
               f"{'s' if done.mappings != 1 else ''}, {took}. {device_id} is retired.")
    outcomes = [credentials.keep_or_issue(ext(), new_id, me()), credentials.remove(ext(), device_id, me())]
    if all(o.result == "not_needed" for o in outcomes):
        flash(f"{message} {NO_ACCOUNTS}", "ok")
        return redirect(url_for("admin.device", device_id=new_id), 303)
    flash(message, "ok")
    return _show_once(new_id, outcomes)


@admin.post("/devices/<device_id>/test-mode")
def device_test_mode(device_id: str) -> Any:
    on = request.form.get("on") == "1"

    def run(s: Session) -> str:
        closed = devices.set_test_mode(s, _device_or_404(s, device_id), on, me())
        if on:
            return (f"{device_id} is in test mode: its presses are acked as usual but make test tickets, "
                    "kept out of the queue.")
        plural = "s" if len(closed) != 1 else ""
        return f"{device_id} reports for real again." + (f" {len(closed)} open test ticket{plural} closed."
                                                          if closed else "")

    return _device_action(device_id, run)


@admin.post("/devices/<device_id>/reject")
def device_reject(device_id: str) -> Any:
    def run(s: Session) -> str:
        devices.reject(s, device_id, me(), request.form.get("reason", ""))
        return f"{device_id} is rejected: its presses are refused."

    return _device_action(device_id, run)


@admin.post("/devices/<device_id>/retire")
def device_retire(device_id: str) -> Any:
    try:
        with ext().db.write() as s:
            devices.retire(s, device_id, me(), request.form.get("reason", ""))
    except devices.AdminError as exc:
        flash(refused(exc), "error")
        return back(url_for("admin.device", device_id=device_id))
    message = f"{device_id} is retired: its presses are refused; its history is kept."
    outcome = credentials.remove(ext(), device_id, me())
    if outcome.result == "removed":
        flash(f"{message} Its broker account is deleted: it is disconnected.", "ok")
        return back(url_for("admin.device", device_id=device_id))
    if outcome.result == "not_needed":
        flash(message, "ok")
        return back(url_for("admin.device", device_id=device_id))
    flash(message, "ok")
    return device(device_id, broker=[outcome])


@admin.post("/devices/<device_id>/buttons")
def device_map(device_id: str) -> Any:
    form = {k: request.form.get(k, "") for k in ("button", "press", "target", "label")}
    # One select says what the button does: a category's slug, or "cancel" (cancel last report).
    target = form["target"].strip()
    action, category = ("cancel", None) if target == "!cancel" else ("report", target)
    try:
        with ext().db.write() as s:
            row = _device_or_404(s, device_id)
            m = devices.check_mapping(form["button"], form["press"], action, category, form["label"])
            devices.set_mapping(s, row, m, me())
    except devices.AdminError as exc:
        return device(device_id, error=refused(exc), status=422 if exc.status == 400 else exc.status,
                      mapping_form=form)
    what = "cancels the last report" if m.action == "cancel" else f"reports {m.category}"
    flash(f"Button {m.button} ({PRESS_LABELS[m.press]}) now {what}. The next press uses it.", "ok")
    return redirect(url_for("admin.device", device_id=device_id) + "#buttons", 303)


@admin.post("/devices/<device_id>/buttons/remove")
def device_unmap(device_id: str) -> Any:
    button, press = request.form.get("button", ""), request.form.get("press", "")

    def run(s: Session) -> str:
        devices.remove_mapping(s, _device_or_404(s, device_id), button, press, me())
        return f"Button {button} ({PRESS_LABELS.get(press, press)}) is no longer mapped."

    return _device_action(device_id, run)


def split_ids(text: str) -> list[str]:
    return [t for t in re.split(r"[\s,;]+", text or "") if t]


@admin.route("/devices/copy-mapping", methods=["GET", "POST"])
def copy_mapping() -> Any:
    form = {"from": request.values.get("from", "").strip()[:63], "to": request.form.get("to", ""),
            "site": request.form.get("site", "").strip()[:64]}
    error = None
    status = 200
    if request.method == "POST":
        try:
            with ext().db.write() as s:
                targets = split_ids(form["to"])
                if form["site"]:
                    site_row = devices.site_by_code(s, form["site"])
                    targets += s.scalars(select(Device.device_id).where(Device.site_id == site_row.id,
                                                                        Device.status != "retired",
                                                                        Device.device_id != form["from"])
                                         .order_by(Device.device_id)).all()
                copied, changed = devices.copy_mapping(s, form["from"], targets, me())
        except devices.AdminError as exc:
            error, status = refused(exc), 422 if exc.status == 400 else exc.status
        else:
            flash(f"Copied {copied} mapping{'s' if copied != 1 else ''} of {form['from']} to {len(changed)} "
                  f"device{'s' if len(changed) != 1 else ''}: {', '.join(changed[:20])}"
                  f"{' …' if len(changed) > 20 else ''}.", "ok")
            return redirect(url_for("admin.copy_mapping", **{"from": form["from"]}), 303)
    with ext().db.read() as s:
        sources = s.scalars(select(ButtonMapping.device_id).distinct().order_by(ButtonMapping.device_id)
                            .limit(5000)).all()
        template = devices.mappings(s, form["from"]) if form["from"] else []
        site_codes = _site_codes(s)
    return render_template("admin/copy_mapping.html", form=form, error=error, sources=sources, template=template,
                           site_codes=site_codes, press_labels=PRESS_LABELS), status


# ------------------------------------------------------------------ categories


def _category_or_404(s: Session, slug: str) -> Category:
    row = s.scalar(select(Category).where(Category.slug == slug))
    if row is None:
        abort(404, f"There is no category {slug[:70]}.")
    return row


@admin.get("/categories")
def category_list(form: dict[str, Any] | None = None, error: str | None = None, status: int = 200) -> Any:
    with ext().db.read() as s:
        rows = s.scalars(select(Category).order_by(Category.name)).all()
    return render_template("admin/categories.html", rows=rows, form=form or {}, error=error,
                           default_reopen_min=int(ext().settings.reopen_window_s // 60)), status


@admin.post("/categories")
def category_create() -> Any:
    form = {"slug": request.form.get("slug", "").strip(), "name": request.form.get("name", "").strip()}
    if not wire.valid_id(form["slug"]):
        return category_list(form, f"The slug must match {wire.ID_PATTERN.pattern} (e.g. card-reader).", 422)
    try:
        with ext().db.write() as s:
            if s.scalar(select(Category.id).where(Category.slug == form["slug"])) is not None:
                return category_list(form, f"There is already a category {form['slug']}.", 409)
            values = categories.clean({"name": form["name"]})
            row = Category(slug=form["slug"], name=values["name"], icon="", priority=3, sla=ext().default_sla,
                           labels={}, dedup_scope="site", notify=[])
            s.add(row)
            audit.record(s, me(), "category.create", f"category:{row.slug}", name=row.name)
    except categories.CategoryError as exc:
        return category_list(form, refused(exc), 422)
    flash(f"Category {form['slug']} created: set its labels and targets below.", "ok")
    return redirect(url_for("admin.category", slug=form["slug"]), 303)


def _category_form(c: Category) -> dict[str, Any]:
    form: dict[str, Any] = {"name": c.name, "icon": c.icon, "priority": str(c.priority),
                            "dedup_scope": c.dedup_scope,
                            "reopen_window_min": "" if c.reopen_window_min is None else str(c.reopen_window_min),
                            "notify": "\n".join(c.notify or [])}
    labels = dict(c.labels or {})
    for lang in LANGUAGES:
        form[f"label_{lang}"] = labels.pop(lang, "")
    form["labels_more"] = "\n".join(f"{k}: {v}" for k, v in labels.items())
    for p in categories.PRIORITIES:
        targets = (c.sla or {}).get(p) or {}
        for k in ("respond_min", "resolve_min"):
            form[f"sla_{p}_{k}"] = "" if targets.get(k) is None else str(targets[k])
    return form


def _values_of(form: dict[str, Any]) -> dict[str, Any]:
    """The typed values of a category's form; raises CategoryError for what is not even a number."""
    errors: dict[str, str] = {}

    def number(key: str, field: str) -> int | None:
        text = str(form.get(key, "")).strip()
        if not text:
            return None
        minutes = inputs.parse_int(text, max_digits=9)
        if minutes is None:
            errors[field] = f"'{text[:20]}' is not a whole number of minutes"
        return minutes

    labels = {lang: form.get(f"label_{lang}", "") for lang in LANGUAGES}
    for line in str(form.get("labels_more", "")).splitlines():
        if line.strip():
            lang, sep, text = line.partition(":")
            if not sep:
                errors["labels"] = f"'{line.strip()[:40]}': write one language per line as code: label (de: Drucker)"
                continue
            labels[lang.strip()] = text.strip()
    sla: dict[str, dict[str, int]] = {}
    for p in categories.PRIORITIES:
        targets = {k: v for k in ("respond_min", "resolve_min")
                   if (v := number(f"sla_{p}_{k}", "sla")) is not None}
        sla[p] = targets
    values = {"name": form.get("name", ""), "icon": form.get("icon", ""),
              "priority": inputs.parse_int(str(form.get("priority", "")), low=1, high=4) or 0,
              "sla": sla, "labels": labels, "dedup_scope": form.get("dedup_scope", ""),
              "reopen_window_min": number("reopen_window_min", "reopen_window_min"),
              "notify": split_ids(str(form.get("notify", "")))}
    try:
        clean = categories.clean(values)
    except categories.CategoryError as exc:
        errors = {**exc.errors, **errors}
        raise categories.CategoryError(errors) from None
    if errors:
        raise categories.CategoryError(errors)
    return clean


@admin.get("/categories/<slug>")
def category(slug: str, form: dict[str, Any] | None = None, errors: dict[str, str] | None = None,
             status: int = 200) -> Any:
    with ext().db.read() as s:
        row = _category_or_404(s, slug)
        mapped = s.scalar(select(func.count()).select_from(ButtonMapping).where(ButtonMapping.category_id == row.id))
        history = s.scalars(audit.query(audit.AuditFilter(target=f"category:{row.slug}")).limit(20)).all()
    return render_template("admin/category.html", c=row, form=form or _category_form(row), errors=errors or {},
                           mapped=mapped, history=history, languages=LANGUAGES, priorities=categories.PRIORITIES,
                           scopes=DEDUP_SCOPES, default_reopen_min=int(ext().settings.reopen_window_s // 60)), status


@admin.post("/categories/<slug>")
def category_update(slug: str) -> Any:
    form = request.form.to_dict()
    try:
        with ext().db.write() as s:
            row = _category_or_404(s, slug)
            changed = categories.update(s, row, _values_of(form), me())
    except categories.CategoryError as exc:
        return category(slug, form=form, errors=exc.errors, status=422)
    flash(f"Category {slug} saved; the next press uses it." if changed else "Nothing changed.", "ok")
    return redirect(url_for("admin.category", slug=slug), 303)


# ------------------------------------------------------------------ audit log


@admin.get("/audit")
def audit_log() -> Any:
    f = audit.AuditFilter(actor=request.args.get("actor", "").strip()[:120],
                          target=request.args.get("target", "").strip()[:200])
    page = page_arg()
    with ext().db.read() as s:
        total = audit.count(s, f)
        rows = s.scalars(audit.query(f).limit(PAGE_SIZE).offset(page * PAGE_SIZE)).all()
        actors = s.scalars(select(AuditLog.actor).distinct().order_by(AuditLog.actor).limit(500)).all()
    return render_template("admin/audit.html", rows=rows, f=f, pages=Pages(page, total), query=query,
                           actors=actors)


# The users, API tokens and configuration pages, on this blueprint.
from server.admin import accounts as admin_accounts, config as admin_config  # noqa: E402,F401
