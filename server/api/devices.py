"""Devices: list, register, read, place, map buttons, telemetry and online state, open tickets (``/api/v1/devices``)."""

from __future__ import annotations

from typing import Any

from apiflask import abort
from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from dashdesk import wire

from server.api import schemas
from server.api.auth import auth
from server.api.blueprint import admin_abort, api, caller_actor, time_or_none
from server.context import ext
from server.domain import audit, devices, rules, sites
from server.domain import broker_accounts
from server.domain import devices as devices_mod
from server.models import ButtonMapping, Device, Site


def device_dict(s: Session, d: Device) -> dict[str, Any]:
    buttons = s.scalars(select(ButtonMapping).options(joinedload(ButtonMapping.category))
                        .where(ButtonMapping.device_id == d.device_id)
                        .order_by(ButtonMapping.button, ButtonMapping.press))
    telemetry = d.telemetry or {}
    return {"device_id": d.device_id, "site": d.site.code if d.site else None, "status": d.status,
            "kind": d.kind, "online": d.online, "first_seen_at": time_or_none(d.first_seen_at),
            "last_seen_at": time_or_none(d.last_seen_at), "telemetry": d.telemetry, "telemetry_at": time_or_none(d.telemetry_at),
            "firmware": telemetry.get("firmware") if isinstance(telemetry.get("firmware"), str) else None,
            "test_mode": bool(d.test_mode), "replaced_by": d.replaced_by, "broker_account": d.broker_account,
            "buttons": [{"button": b.button, "press": b.press or None,
                         "category": b.category.slug if b.category else None, "label": b.label,
                         "action": b.action} for b in buttons]}


def _site(s: Session, code: str, name: str | None, actor: str) -> Site:
    """The site of ``code`` (in any case), made if unknown (its code checked, as ``POST /api/v1/sites`` checks
    it: a bad one is 422), its name set to ``name`` if given; audited as the sites' own endpoints are."""
    site = sites.by_code(s, code)
    try:
        if site is None:
            site = sites.create(s, sites.clean({"code": code, "name": name or code}), actor)
            s.flush()
        elif name:
            sites.update(s, site, sites.clean({"name": name}, partial=True), actor)
    except sites.SiteError as exc:
        admin_abort(exc)
    return site


def _place(s: Session, device: Device, body: dict[str, Any], actor: str) -> None:
    if "site" in body:
        device.site = _site(s, body["site"], body.get("site_name"), actor) if body["site"] else None


@api.get("/devices")
@api.auth_required(auth)
@api.input(schemas.DeviceQuery, location="query", arg_name="q", unknown=None)
@api.output(schemas.DeviceList)
@api.doc(summary="List devices (all, or those with a `status` and/or at a `site`, with or without a "
                 "`broker_account`)")
def list_devices(q: dict[str, Any]) -> dict[str, Any]:
    stmt = select(Device).options(joinedload(Device.site)).order_by(Device.device_id)
    if "broker_account" in q:
        broker_accounts.learn(ext())  # those not known yet: one question to the broker for all of them
        stmt = stmt.where(Device.broker_account.is_(True) if q["broker_account"]
                          else Device.broker_account.is_not(True))
    if "status" in q:
        stmt = stmt.where(Device.status == q["status"])
    if "site" in q:
        stmt = stmt.where(Device.site_id == sites.id_of(q["site"]))
    with ext().db.read() as s:
        return {"items": [device_dict(s, d) for d in s.scalars(stmt)]}


STATUS_DOC = ("A change of `status` goes through the step of the same name, audited as the admin pages' buttons "
              "are (`device.approve`, `device.reject`, `device.retire`). A device retired here (or created "
              "retired) loses its broker account as with `POST .../retire` (`broker`: `removed`, or `failed` "
              "with the `error`: `DELETE .../credentials` tries again); a rejected one keeps it, to hear why its "
              "presses are refused; one made active again gets new credentials from `POST .../credentials`.")


def _edit(s: Session, device: Device, body: dict[str, Any], actor: str) -> None:
    """Place the device and give it the status ``body`` asks for (the site first: an approval names it)."""
    before = {"kind": device.kind, "site": device.site.code if device.site else None}
    if "kind" in body:
        device.kind = body["kind"]
    _place(s, device, body, actor)
    s.flush()
    after = {"kind": device.kind, "site": device.site.code if device.site else None}
    if after != before:
        # A device given a site (one that pressed while pending, say) takes its unplaced open tickets there.
        placed = devices_mod.place_tickets(s, device, actor) if after["site"] != before["site"] else []
        audit.record(s, actor, "device.update", f"device:{device.device_id}",
                     changes={k: [before[k], after[k]] for k in after if after[k] != before[k]},
                     **({"placed": [rules.ticket_number(t) for t in placed]} if placed else {}))
    if "status" in body:
        try:
            devices.set_status(s, device, body["status"], actor)
        except devices.AdminError as exc:
            admin_abort(exc)


def _with_account(out: dict[str, Any], was: str | None, actor: str) -> dict[str, Any]:
    """After the commit: what the device's new status means for its broker account (``broker``, if anything)."""
    outcome = broker_accounts.after_status(ext(), out["device_id"], was, out["status"], actor)
    if outcome is not None:
        out["broker"] = outcome.as_dict()
    return out


@api.post("/devices")
@api.auth_required(auth)
@api.input(schemas.DeviceIn, arg_name="body")
@api.output(schemas.DeviceBrokerOut, status_code=201)
@api.doc(summary="Register a device (or update the one with that id: only the fields given change)",
         description=STATUS_DOC, responses={200: "a device with that id was updated"})
def post_device(body: dict[str, Any]) -> tuple[dict[str, Any], int]:
    actor = caller_actor()
    with ext().db.write() as s:
        device = s.scalar(select(Device).where(Device.device_id == body["device_id"]))
        was = device.status if device else None
        if device is None:
            fields = {**schemas.NEW_DEVICE, **body}
            device = Device(device_id=body["device_id"], status=fields["status"], kind=fields["kind"])
            s.add(device)
            _place(s, device, body, actor)
            s.flush()
            audit.record(s, actor, "device.create", f"device:{device.device_id}", status=device.status,
                         kind=device.kind, site=device.site.code if device.site else None)
        else:
            _edit(s, device, body, actor)
        out = device_dict(s, device)
    return _with_account(out, was, actor), 200 if was else 201


@api.get("/devices/<device:device_id>")
@api.auth_required(auth)
@api.output(schemas.DeviceOut)
def get_device(device_id: str) -> dict[str, Any]:
    with ext().db.read() as s:
        return device_dict(s, devices.get(s, device_id))


@api.patch("/devices/<device:device_id>")
@api.auth_required(auth)
@api.input(schemas.DevicePatch, arg_name="body")
@api.output(schemas.DeviceBrokerOut)
@api.doc(summary="Change a device's site, status or test mode (`{}` changes nothing)", description=STATUS_DOC)
def patch_device(device_id: str, body: dict[str, Any]) -> dict[str, Any]:
    actor = caller_actor()
    with ext().db.write() as s:
        device = devices.get(s, device_id)
        was = device.status
        _edit(s, device, body, actor)
        if "test_mode" in body:
            devices.set_test_mode(s, device, body["test_mode"], actor)
        out = device_dict(s, device)
    return _with_account(out, was, actor)


@api.put("/devices/<device:device_id>/buttons/<button>")
@api.auth_required(auth)
@api.input(schemas.ButtonIn, arg_name="body")
@api.output(schemas.DeviceOut)
@api.doc(summary="Map a button (or one press type of it) to a category; effective on the next press",
         responses={404: "no such category"})
def put_button(device_id: str, button: str, body: dict[str, Any]) -> dict[str, Any]:
    actor = caller_actor()
    if not wire.valid_id(device_id) or not wire.valid_id(button):
        abort(400, f"device id and button must match {wire.ID_PATTERN.pattern}")
    with ext().db.write() as s:
        try:
            mapping = devices.check_mapping(button, body["press"], body["action"], body.get("category"),
                                            body["label"])
            device = s.scalar(select(Device).where(Device.device_id == device_id))
            if device is None:
                device = Device(device_id=device_id, status="active")
                s.add(device)
                audit.record(s, actor, "device.create", f"device:{device_id}", status="active", via="button mapping")
            devices.set_mapping(s, device, mapping, actor)
        except devices.AdminError as exc:
            admin_abort(exc)
        s.flush()
        return device_dict(s, device)


@api.post("/devices/<device:device_id>/telemetry")
@api.auth_required(auth)
@api.input(schemas.TelemetryIn, arg_name="body")
@api.output({}, status_code=204)
@api.doc(summary="Record a device's latest telemetry (the bridge forwards it)")
def post_telemetry(device_id: str, body: dict[str, Any]) -> tuple[str, int]:
    with ext().db.write() as s:
        device = devices.get(s, device_id)
        device.telemetry, device.telemetry_at = body["telemetry"], wire.utcnow()
    return "", 204


@api.post("/devices/<device:device_id>/status")
@api.auth_required(auth)
@api.input(schemas.StatusIn, arg_name="body")
@api.output({}, status_code=204)
@api.doc(summary="Record whether a device is online (the bridge forwards its status topic)")
def post_status(device_id: str, body: dict[str, Any]) -> tuple[str, int]:
    with ext().db.write() as s:
        device = devices.get(s, device_id)
        device.online = body["online"]
        if body["online"]:
            device.last_seen_at = wire.utcnow()
            device.first_seen_at = device.first_seen_at or device.last_seen_at  # its first contact
    return "", 204


@api.get("/devices/<device:device_id>/tickets")
@api.auth_required(auth)
@api.output(schemas.OpenTickets)
@api.doc(summary="The device's open tickets, as its retained `tickets` topic shows them")
def device_tickets(device_id: str) -> dict[str, Any]:
    with ext().db.read() as s:
        devices.get(s, device_id)
        return {"tickets": devices_mod.open_tickets_by_device(s, [device_id])[device_id]}
