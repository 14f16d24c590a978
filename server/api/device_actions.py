"""What an admin does to a device and its broker account: approve, credentials, replace, reject, retire, copy a mapping."""

from __future__ import annotations

from typing import Any, Callable

from apiflask import abort
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.api import schemas
from server.api.auth import auth
from server.api.blueprint import admin_abort, api, caller_actor
from server.api.devices import device_dict
from server.context import ext
from server.domain import broker_accounts
from server.domain import device_actions, devices
from server.models import Device


def _device_action(run: Callable[[Session], Any]) -> None:
    """``run`` in a write transaction of its own (committed on return); a refusal is a 4xx JSON error."""
    with ext().db.write() as s:
        try:
            run(s)
        except devices.AdminError as exc:
            admin_abort(exc)


def _device_answer(device_id: str, outcome: broker_accounts.Outcome | None = None) -> dict[str, Any]:
    """The device as it is now, with ``broker``: what was done to its broker account, if anything."""
    with ext().db.read() as s:
        out = device_dict(s, devices.get(s, device_id))
    if outcome is not None:
        out["broker"] = outcome.as_dict()
    return out


BROKER_DOC = ("With broker accounts on (`[broker] auth = \"dynsec\"`), `broker` carries the device's new MQTT "
              "username, password (shown this once) and `mqtt_url` for its file; a device that has an account "
              "already (made by `dashdesk broker device-credentials`, say) keeps it: `broker.credentials` is "
              "`kept`, its password goes on working and none is shown. If the broker did not answer, "
              "the change stands, `broker.credentials` is `failed` with the `error`, and "
              "`POST .../credentials` tries again. With accounts off, `broker.credentials` is `not_needed`.")


@api.post("/devices/<device:device_id>/approve")
@api.auth_required(auth)
@api.input(schemas.ApproveIn, arg_name="body")
@api.output(schemas.DeviceBrokerOut)
@api.doc(summary="Approve a pending (or rejected) device into a site: it becomes active, with its broker account",
         description=BROKER_DOC,
         responses={404: "no such device or site", 409: "the device is not pending or rejected"}, tags=["Admin"])
def approve_device(device_id: str, body: dict[str, Any]) -> dict[str, Any]:
    try:
        done = device_actions.approve(ext(), device_id, body["site"], caller_actor())
    except devices.AdminError as exc:
        admin_abort(exc)
    return _device_answer(device_id, done.broker)


@api.post("/devices/register")
@api.auth_required(auth)
@api.input(schemas.RegisterIn, arg_name="body")
@api.output(schemas.DeviceBrokerOut, status_code=201)
@api.doc(summary="Add a device nobody has seen yet, active in a site, with its broker account",
         description="For broker accounts on, where a device cannot press (and so become pending) before it has "
                     "its credentials. " + BROKER_DOC,
         responses={404: "no such site", 409: "the device exists"}, tags=["Admin"])
def register_device(body: dict[str, Any]) -> tuple[dict[str, Any], int]:
    try:
        done = device_actions.register(ext(), body["device_id"], body["site"], caller_actor(), body["kind"])
    except devices.AdminError as exc:
        admin_abort(exc)
    return _device_answer(body["device_id"], done.broker), 201


@api.post("/devices/credentials")
@api.auth_required(auth)
@api.input(schemas.CredentialsIn, arg_name="body")
@api.output(schemas.CredentialsOut)
@api.doc(summary="Broker credentials for many active devices at once: those without an account get one",
         description="Each device's answer as `broker` of `POST .../credentials` has it, with its `device_id`, in "
                     "the order asked: `issued` (the password shown this once), `kept` (it had an account, which "
                     "goes on working; unless `new`), `not_needed` (accounts off), or `failed`. All or nothing "
                     "first: an unknown (404) or not active (409) device refuses the whole request. Once the "
                     "broker fails to answer, the rest are not tried (`failed`, with the same `error`); asking "
                     "again is safe, those done meanwhile answer `kept`. The devices list (`GET /api/v1/devices"
                     "?status=active&broker_account=false`) says who still needs one.",
         responses={404: "no such device", 409: "a device is not active"}, tags=["Admin"])
def issue_many_credentials(body: dict[str, Any]) -> dict[str, Any]:
    actor = caller_actor()
    wanted = list(dict.fromkeys(body["device_ids"]))
    with ext().db.read() as s:
        found: dict[str, str] = {}
        for i in range(0, len(wanted), 500):
            found.update((d, st) for d, st in s.execute(select(Device.device_id, Device.status)
                                                        .where(Device.device_id.in_(wanted[i:i + 500]))))
    missing = [d for d in wanted if d not in found]
    if missing:
        abort(404, f"no device {', '.join(missing[:10])}" + (f" and {len(missing) - 10} more"
                                                             if len(missing) > 10 else ""),
              detail={"missing": missing})
    inactive = [d for d in wanted if found[d] != "active"]
    if inactive:
        abort(409, f"only active devices get broker credentials; not active: {', '.join(inactive[:10])}",
              detail={"not_active": inactive})
    outcomes = broker_accounts.issue_many(ext(), wanted, actor, new=body["new"])
    return {"items": [{"device_id": o.device_id, **o.as_dict()} for o in outcomes]}


@api.post("/devices/<device:device_id>/credentials")
@api.auth_required(auth)
@api.output(schemas.DeviceBrokerOut)
@api.doc(summary="New broker credentials for an active device: the old password stops working at once",
         description="`broker.credentials` is `issued` (the password shown this once) or `not_needed` (accounts "
                     "off). A connection with the old password is closed, and the device is marked offline "
                     "(in `online` and on its retained `status` topic).",
         responses={409: "the device is not active", 503: "the broker did not answer"}, tags=["Admin"])
def issue_credentials(device_id: str) -> dict[str, Any]:
    try:
        outcome = device_actions.issue_credentials(ext(), device_id, caller_actor()).broker
    except device_actions.NotActive as exc:
        admin_abort(exc)
    if outcome.failed:
        abort(503, f"the broker's account could not be made: {outcome.error}")
    return _device_answer(device_id, outcome)


@api.delete("/devices/<device:device_id>/credentials")
@api.auth_required(auth)
@api.output(schemas.DeviceBrokerOut)
@api.doc(summary="Delete a device's broker account: it is disconnected and cannot connect again",
         responses={503: "the broker did not answer"}, tags=["Admin"])
def remove_credentials(device_id: str) -> dict[str, Any]:
    outcome = device_actions.remove_credentials(ext(), device_id, caller_actor())
    if outcome.failed:
        abort(503, f"the broker's account could not be deleted: {outcome.error}")
    return _device_answer(device_id, outcome)


@api.post("/devices/<device:device_id>/replace")
@api.auth_required(auth)
@api.input(schemas.ReplaceIn, arg_name="body")
@api.output(schemas.ReplaceOut)
@api.doc(summary="A new device takes a broken one's place: its site, button mapping and open tickets",
         description="`by` (created if unknown) becomes active in the old device's site with a copy of its button "
                     "mapping; the old device's open tickets name the new one (its `tickets` topic lists them, its "
                     "presses merge into them); the old device is retired. One transaction, audited. With broker "
                     "accounts on, the new device gets its credentials (`device.broker`) and the old one's account "
                     "is deleted (`replaced.broker`); a broker that does not answer leaves the replacement standing "
                     "and says so. A device is replaced once: the same request again (the same `by`) changes "
                     "nothing and answers `already_replaced: true`, with no new credentials; another `by` is 409.",
         responses={404: "no such device", 409: "the old device is not active, or was replaced by another device "
                                                "already, or the new one is retired"},
         tags=["Admin"])
def replace_device(device_id: str, body: dict[str, Any]) -> dict[str, Any]:
    try:
        done = device_actions.replace(ext(), device_id, body["by"], caller_actor())
    except devices.AdminError as exc:
        admin_abort(exc)
    return {"device": _device_answer(body["by"], done.new_broker), "replaced": _device_answer(device_id, done.old_broker),
            "mappings": done.mappings, "tickets": list(done.tickets), "already_replaced": done.again}


@api.post("/devices/<device:device_id>/reject")
@api.auth_required(auth)
@api.input(schemas.ReasonIn, arg_name="body")
@api.output(schemas.DeviceOut)
@api.doc(summary="Reject a pending device: its presses come back `rejected`",
         responses={409: "the device is not pending"}, tags=["Admin"])
def reject_device(device_id: str, body: dict[str, Any]) -> dict[str, Any]:
    actor = caller_actor()
    _device_action(lambda s: devices.reject(s, device_id, actor, body["reason"]))
    return _device_answer(device_id)


@api.post("/devices/<device:device_id>/retire")
@api.auth_required(auth)
@api.input(schemas.ReasonIn, arg_name="body")
@api.output(schemas.DeviceBrokerOut)
@api.doc(summary="Retire a device: its later presses come back `rejected` (\"device retired\"); history is kept",
         description="With broker accounts on, its account is deleted and its connection closed (`broker`: "
                     "`removed`, or `failed` with the `error`: `DELETE .../credentials` tries again).",
         responses={409: "the device is retired already"}, tags=["Admin"])
def retire_device(device_id: str, body: dict[str, Any]) -> dict[str, Any]:
    try:
        outcome = device_actions.retire(ext(), device_id, caller_actor(), body["reason"])
    except devices.AdminError as exc:
        admin_abort(exc)
    return _device_answer(device_id, outcome)


@api.delete("/devices/<device:device_id>/buttons/<button>")
@api.auth_required(auth)
@api.input(schemas.DeviceButtonQuery, location="query", arg_name="q", unknown=None)
@api.output(schemas.DeviceOut)
@api.doc(summary="Remove a button's mapping (`?press=` for one press type's); effective on the next press",
         responses={404: "no such device, or the button (press type) is not mapped"}, tags=["Admin"])
def delete_button(device_id: str, button: str, q: dict[str, Any]) -> dict[str, Any]:
    actor = caller_actor()

    _device_action(lambda s: devices.remove_mapping(s, devices.get(s, device_id), button, q.get("press") or "",
                                                    actor))
    return _device_answer(device_id)


@api.post("/devices/copy-mapping")
@api.auth_required(auth)
@api.input(schemas.CopyMappingIn, arg_name="body")
@api.output(schemas.CopyMappingOut)
@api.doc(summary="Copy one device's button mapping to many (a rollout template); theirs is replaced",
         description="All or nothing: an unknown (404) or retired (409) target refuses the whole copy.",
         responses={404: "no such device", 409: "a target is retired or is the template itself, or the template "
                                                "has no mapping"},
         tags=["Admin"])
def copy_mapping(body: dict[str, Any]) -> dict[str, Any]:
    actor = caller_actor()
    with ext().db.write() as s:
        try:
            copied, changed = devices.copy_mapping(s, body["from_"], body["to"], actor)
        except devices.AdminError as exc:
            admin_abort(exc)
    return {"copied": copied, "devices": changed}
