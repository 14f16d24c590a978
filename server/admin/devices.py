"""Devices (``/admin/devices``): approve, place, map buttons, issue broker credentials, replace, retire."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

from flask import flash, redirect, render_template, request, session, url_for
from sqlalchemy import func, select
from sqlalchemy.orm import Session, joinedload

from dashdesk import wire

from server.admin.blueprint import (
    PAGE_SIZE,
    PRESS_LABELS,
    STATUS_LABELS,
    Pages,
    admin,
    back,
    me,
    page_arg,
    query,
    refused,
    site_choices,
    split_ids,
)
from server.domain.devices import open_tickets_by_device
from server.context import ext
from server.pages.formatting import duration, telemetry_rows
from server.domain import audit, device_actions, devices, sites
from server.domain import broker_accounts
from server.models import DEVICE_STATUSES, OPEN_STATUSES, ButtonMapping, Category, Device, Press, Ticket


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
    known = broker_accounts.learn(ext()) if broker_on else True
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
        site_codes = site_choices(s)
    return render_template("admin/devices.html", rows=rows, status=status, site_code=site_code, q=q,
                           account=account, pages=Pages(page, total), query=query, statuses=DEVICE_STATUSES,
                           labels=STATUS_LABELS, site_codes=site_codes, reading=reading, ago=_ago,
                           broker_on=broker_on, accounts_known=known)


def _ago(value: Any) -> str:
    if value is None:
        return "never"
    return duration((wire.utcnow() - value).total_seconds()) + " ago"


@admin.get("/devices/<device_id>")
def device(device_id: str, error: str | None = None, status: int = 200, mapping_form: dict[str, Any] | None = None,
           broker: list[broker_accounts.Outcome] | None = None) -> Any:
    """A device's page; ``broker``: what was just done to broker accounts (a new password is shown this once),
    else what a redirect to it left in the session (:func:`_show_once`)."""
    if broker is None and request.method == "GET":
        broker = _shown_once(device_id)
    with ext().db.read() as s:
        unknown = devices.get(s, device_id).broker_account is None
    if unknown and ext().broker.enabled:
        broker_accounts.learn(ext())
    with ext().db.read() as s:
        row = devices.get(s, device_id)
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
        site_codes = site_choices(s)
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


def _with_credentials(device_id: str, message: str, outcomes: list[broker_accounts.Outcome]) -> Any:
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
    try:
        done = device_actions.approve(ext(), device_id, request.form.get("site", "").strip(), me())
    except devices.AdminError as exc:
        flash(refused(exc), "error")
        return back(url_for("admin.device", device_id=device_id))
    return _with_credentials(device_id, f"{device_id} is approved into {done.site}.", [done.broker])


@admin.post("/devices")
def device_register() -> Any:
    device_id = request.form.get("device_id", "").strip()
    try:
        done = device_actions.register(ext(), device_id, request.form.get("site", "").strip(), me(),
                                       request.form.get("kind", "physical"))
    except devices.AdminError as exc:
        flash(refused(exc), "error")
        return redirect(url_for("admin.device_list"), 303)
    return _with_credentials(device_id, f"{device_id} is added to {done.site}, active.", [done.broker])


@admin.post("/devices/<device_id>/credentials")
def device_credentials(device_id: str) -> Any:
    try:
        done = device_actions.issue_credentials(ext(), device_id, me())
    except device_actions.NotActive as exc:
        flash(f"{device_id} is {STATUS_LABELS.get(exc.device_status, exc.device_status).lower()}: only an active "
              "device gets broker credentials.", "error")
        return redirect(url_for("admin.device", device_id=device_id), 303)
    message = (("New broker credentials for {}: the old password no longer works." if done.had else
                "Broker credentials for {}, which had none.").format(device_id) if ext().broker.enabled
               else "Nothing to do.")
    return _with_credentials(device_id, message, [done.broker])


@admin.post("/devices/<device_id>/credentials/remove")
def device_credentials_remove(device_id: str) -> Any:
    outcome = device_actions.remove_credentials(ext(), device_id, me())
    if outcome.result == "removed":
        flash(f"{device_id}'s broker account is deleted: it is disconnected and cannot connect again.", "ok")
        return redirect(url_for("admin.device", device_id=device_id), 303)
    return _with_credentials(device_id, "Nothing to do.", [outcome])


# The session key under which a page that redirects after a POST leaves what the broker did (a new password)
# for the page it redirects to: shown there once, and never part of a URL.
SHOWN_ONCE = "dashdesk_broker_once"


def _show_once(device_id: str, outcomes: list[broker_accounts.Outcome]) -> Any:
    """Redirect to the device's page (POST-redirect-GET: reloading it sends nothing again), which shows
    ``outcomes`` once: they travel in the session, not in the URL, and its first view takes them out."""
    session[SHOWN_ONCE] = {"device_id": device_id, "outcomes": [dataclasses.asdict(o) for o in outcomes]}
    return redirect(url_for("admin.device", device_id=device_id), 303)


def _shown_once(device_id: str) -> list[broker_accounts.Outcome]:
    """What :func:`_show_once` left for ``device_id``'s page (taken out of the session: shown this once)."""
    kept = session.pop(SHOWN_ONCE, None)
    if not isinstance(kept, dict) or kept.get("device_id") != device_id:
        return []
    try:
        return [broker_accounts.Outcome(**o) for o in kept.get("outcomes") or []]
    except TypeError:
        return []


@admin.post("/devices/<device_id>/replace")
def device_replace(device_id: str) -> Any:
    new_id = request.form.get("by", "").strip()
    try:
        done = device_actions.replace(ext(), device_id, new_id, me())
    except devices.AdminError as exc:
        flash(refused(exc), "error")
        return redirect(url_for("admin.device", device_id=device_id), 303)
    if done.again:
        # The form sent again (a reload, a second click): the replacement stands as it was made.
        flash(f"{device_id} was already replaced by {new_id}: nothing changed"
              + (" (its broker password stays as it is)." if ext().broker.enabled else "."), "ok")
        return redirect(url_for("admin.device", device_id=new_id), 303)
    numbers = ", ".join(done.tickets)
    took = (f"{len(done.tickets)} open ticket{'s' if len(done.tickets) != 1 else ''}"
            + (f" ({numbers})" if numbers else ""))
    message = (f"{new_id} replaced {device_id}: site {done.site or '—'}, {done.mappings} button mapping"
               f"{'s' if done.mappings != 1 else ''}, {took}. {device_id} is retired.")
    outcomes = done.outcomes
    if all(o.result == "not_needed" for o in outcomes):
        flash(f"{message} {NO_ACCOUNTS}", "ok")
        return redirect(url_for("admin.device", device_id=new_id), 303)
    flash(message, "ok")
    return _show_once(new_id, outcomes)


@admin.post("/devices/<device_id>/test-mode")
def device_test_mode(device_id: str) -> Any:
    on = request.form.get("on") == "1"

    def run(s: Session) -> str:
        closed = devices.set_test_mode(s, devices.get(s, device_id), on, me())
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
        outcome = device_actions.retire(ext(), device_id, me(), request.form.get("reason", ""))
    except devices.AdminError as exc:
        flash(refused(exc), "error")
        return back(url_for("admin.device", device_id=device_id))
    message = f"{device_id} is retired: its presses are refused; its history is kept."
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
            row = devices.get(s, device_id)
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
        devices.remove_mapping(s, devices.get(s, device_id), button, press, me())
        return f"Button {button} ({PRESS_LABELS.get(press, press)}) is no longer mapped."

    return _device_action(device_id, run)


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
        site_codes = site_choices(s)
    return render_template("admin/copy_mapping.html", form=form, error=error, sources=sources, template=template,
                           site_codes=site_codes, press_labels=PRESS_LABELS), status
