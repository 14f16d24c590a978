"""The admin part of the v1 API: sites, device approval, rollout of mappings, categories, the audit log.

Registered on ``server.api.api`` (imported at the end of that module). Every endpoint here
needs a token with the admin role, and every change writes its audit row in its own
transaction. Refusals are 4xx JSON errors with the reason (``server.api.admin_abort``).
"""

from __future__ import annotations

from typing import Any, Callable

from apiflask import abort
from flask import Response, request
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.api import schemas
from server.api.auth import auth
from server.api.core import SLA_RULE, admin_abort, api, caller_actor, category_dict, device_dict, ext
from server.domain import audit, categories, config_io, devices, inputs, rules, sites
from server.domain import broker_accounts as credentials
from server.models import AuditLog, Category, Device, Site


# ---------------------------------------------------------------- sites

# What a site's fields must be beyond what the schema says.
SITE_RULES = ("the time zone is not one the server knows, or the hours do not read as days then hours, or a span "
              "closes before it opens or overlaps another")


def _site_or_404(s: Session, code: str) -> Site:
    site = sites.by_code(s, code)
    if site is None:
        abort(404, f"no site {code[:70]}")
    return site


@api.get("/sites")
@api.auth_required(auth)
@api.input(schemas.SiteQuery, location="query", arg_name="q", unknown=None)
@api.output(schemas.SitePage)
@api.doc(summary="List sites by code; `q` searches code, name and address", tags=["Admin"])
def list_sites(q: dict[str, Any]) -> dict[str, Any]:
    stmt = sites.search(q.get("q") or "")
    if "cursor" in q:
        stmt = stmt.where(Site.code > q["cursor"])
    limit = q["limit"]
    with ext().db.read() as s:
        rows = s.scalars(stmt.limit(limit + 1)).all()
        counts = sites.device_counts(s, rows[:limit])
        items = [sites.as_dict(r, counts.get(r.id, 0)) for r in rows[:limit]]
    return {"items": items, "next": rows[limit - 1].code if len(rows) > limit else None}


@api.post("/sites")
@api.auth_required(auth)
@api.input(schemas.SiteIn, arg_name="body")
@api.output(schemas.SiteOut, status_code=201)
@api.doc(summary="Create a site", responses={409: "a site with that code exists", 422: SITE_RULES},
         tags=["Admin"])
def post_site(body: dict[str, Any]) -> tuple[dict[str, Any], int]:
    actor = caller_actor()
    with ext().db.write() as s:
        try:
            site = sites.create(s, sites.clean(body), actor)
        except sites.SiteError as exc:
            admin_abort(exc)
        s.flush()
        return sites.as_dict(site, 0), 201


@api.get("/sites/<site:code>")
@api.auth_required(auth)
@api.output(schemas.SiteOut)
@api.doc(summary="One site", tags=["Admin"])
def get_site(code: str) -> dict[str, Any]:
    with ext().db.read() as s:
        site = _site_or_404(s, code)
        return sites.as_dict(site, sites.device_count(s, site))


@api.patch("/sites/<site:code>")
@api.auth_required(auth)
@api.input(schemas.SitePatch, arg_name="body")
@api.output(schemas.SiteOut)
@api.doc(summary="Change a site's fields (its code too, if the new one is free); `{}` changes nothing",
         responses={409: "the new code is another site's", 422: SITE_RULES}, tags=["Admin"])
def patch_site(code: str, body: dict[str, Any]) -> dict[str, Any]:
    actor = caller_actor()
    with ext().db.write() as s:
        site = _site_or_404(s, code)
        try:
            sites.update(s, site, sites.clean(body, partial=True), actor)
        except sites.SiteError as exc:
            admin_abort(exc)
        return sites.as_dict(site, sites.device_count(s, site))


@api.post("/sites/import")
@api.auth_required(auth)
@api.output(schemas.ImportOut)
@api.doc(summary="Create or update sites from a CSV file (the request body), all or nothing",
         description="The body is CSV text (UTF-8; `Content-Type: text/csv`). The first line names the columns: "
                     "`code` and `name` are required, `address`, `timezone`, `hours`, `contact` optional, in any "
                     "order. Sites are matched by `code`: new ones are created, others updated. One transaction: "
                     "any bad line rejects the whole file with `422` and "
                     "`detail.lines`: `[{\"line\": 7, \"message\": \"timezone: ...\"}, ...]`, and nothing changes.",
         responses={422: "some lines are wrong; nothing was imported"}, tags=["Admin"])
def import_sites() -> dict[str, Any]:
    actor = caller_actor()
    request.max_content_length = sites.IMPORT_MAX_BYTES
    body = request.get_data(cache=False)
    if request.mimetype not in ("text/csv", "text/plain", "application/csv", "application/octet-stream", ""):
        abort(415, "send the CSV file as the body, with Content-Type: text/csv")
    try:
        text = sites.decode(body)
        with ext().db.write() as s:
            result = sites.import_csv(s, text, actor)
    except sites.ImportRejected as exc:
        abort(422, str(exc), detail={"lines": exc.listed(), "problems": len(exc.errors)})
    return result.as_dict()


# ---------------------------------------------------------------- categories


def _category_or_404(s: Session, slug: str) -> Category:
    category = s.scalar(select(Category).where(Category.slug == slug))
    if category is None:
        abort(404, f"no category {slug[:70]}")
    return category


@api.patch("/categories/<slug>")
@api.auth_required(auth)
@api.input(schemas.CategoryPatch, arg_name="body")
@api.output(schemas.CategoryOut)
@api.doc(summary="Change a category: name, icon, labels, priority, SLA, dedup scope, reopen window, who is told",
         description="Takes effect on the next press; `{}` changes nothing.", responses={422: SLA_RULE},
         tags=["Admin"])
def patch_category(slug: str, body: dict[str, Any]) -> dict[str, Any]:
    actor = caller_actor()
    with ext().db.write() as s:
        category = _category_or_404(s, slug)
        values = dict(body)
        if "sla" in values:
            values["sla"] = {**(category.sla or {}), **values["sla"]}
        try:
            categories.update(s, category, categories.clean(values), actor)
        except categories.CategoryError as exc:
            admin_abort(exc)
        return category_dict(category)


# ---------------------------------------------------------------- devices


def _device_action(run: Callable[[Session], Any]) -> None:
    """``run`` in a write transaction of its own (committed on return); a refusal is a 4xx JSON error."""
    with ext().db.write() as s:
        try:
            run(s)
        except devices.AdminError as exc:
            admin_abort(exc)


def _device_answer(device_id: str, outcome: credentials.Outcome | None = None) -> dict[str, Any]:
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
    actor = caller_actor()
    _device_action(lambda s: devices.approve(s, device_id, body["site"], actor))
    return _device_answer(device_id, credentials.keep_or_issue(ext(), device_id, actor))


@api.post("/devices/register")
@api.auth_required(auth)
@api.input(schemas.RegisterIn, arg_name="body")
@api.output(schemas.DeviceBrokerOut, status_code=201)
@api.doc(summary="Add a device nobody has seen yet, active in a site, with its broker account",
         description="For broker accounts on, where a device cannot press (and so become pending) before it has "
                     "its credentials. " + BROKER_DOC,
         responses={404: "no such site", 409: "the device exists"}, tags=["Admin"])
def register_device(body: dict[str, Any]) -> tuple[dict[str, Any], int]:
    actor = caller_actor()
    _device_action(lambda s: devices.register(s, body["device_id"], body["site"], actor, body["kind"]))
    return _device_answer(body["device_id"], credentials.keep_or_issue(ext(), body["device_id"], actor)), 201


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
    outcomes = credentials.issue_many(ext(), wanted, actor, new=body["new"])
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
    actor = caller_actor()
    with ext().db.read() as s:
        try:
            device = devices.get(s, device_id)
        except devices.AdminError as exc:
            admin_abort(exc)
        if device.status != "active":
            abort(409, f"device {device_id} is {device.status}; only an active device gets broker credentials")
    outcome = credentials.issue(ext(), device_id, actor)
    if outcome.failed:
        abort(503, f"the broker's account could not be made: {outcome.error}")
    return _device_answer(device_id, outcome)


@api.delete("/devices/<device:device_id>/credentials")
@api.auth_required(auth)
@api.output(schemas.DeviceBrokerOut)
@api.doc(summary="Delete a device's broker account: it is disconnected and cannot connect again",
         responses={503: "the broker did not answer"}, tags=["Admin"])
def remove_credentials(device_id: str) -> dict[str, Any]:
    actor = caller_actor()
    with ext().db.read() as s:
        try:
            devices.get(s, device_id)
        except devices.AdminError as exc:
            admin_abort(exc)
    outcome = credentials.remove(ext(), device_id, actor)
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
    actor = caller_actor()
    with ext().db.write() as s:
        try:
            done = devices.replace(s, device_id, body["by"], actor)
        except devices.AdminError as exc:
            admin_abort(exc)
        tickets = [rules.ticket_number(t) for t in done.tickets]
        mappings = done.mappings
    if done.again:
        return {"device": _device_answer(body["by"]), "replaced": _device_answer(device_id), "mappings": 0,
                "tickets": [], "already_replaced": True}
    new = _device_answer(body["by"], credentials.keep_or_issue(ext(), body["by"], actor))
    old = _device_answer(device_id, credentials.remove(ext(), device_id, actor))
    return {"device": new, "replaced": old, "mappings": mappings, "tickets": tickets, "already_replaced": False}


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
    actor = caller_actor()
    _device_action(lambda s: devices.retire(s, device_id, actor, body["reason"]))
    return _device_answer(device_id, credentials.remove(ext(), device_id, actor))


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


# ---------------------------------------------------------------- audit log


@api.get("/audit")
@api.auth_required(auth)
@api.input(schemas.AuditQuery, location="query", arg_name="q", unknown=None)
@api.output(schemas.AuditPage)
@api.doc(summary="The audit log of admin actions, newest first; filters `actor`, `target` (or its start)",
         tags=["Admin"])
def list_audit(q: dict[str, Any]) -> dict[str, Any]:
    stmt = audit.query(audit.AuditFilter(actor=q.get("actor", ""), target=q.get("target", "")))
    if "cursor" in q:
        stmt = stmt.where(AuditLog.id < (inputs.parse_int(q["cursor"]) or 0))
    limit = q["limit"]
    with ext().db.read() as s:
        rows = s.scalars(stmt.limit(limit + 1)).all()
        return {"items": [audit.as_dict(r) for r in rows[:limit]],
                "next": str(rows[limit - 1].id) if len(rows) > limit else None}


# ---------------------------------------------------------------- the whole configuration


@api.get("/config/export")
@api.auth_required(auth)
@api.output({}, content_type="application/toml",
            description="TOML: `[[category]]`, `[[site]]`, `[[device]]` with `[[device.button]]` tables")
@api.doc(summary="The whole configuration as a TOML file: categories, sites, devices and their button mappings",
         tags=["Admin"])
def export_config() -> Response:
    return Response(config_io.export_text(ext().db), mimetype="application/toml",
                    headers={"Content-Disposition": 'attachment; filename="dashdesk-config.toml"'})


@api.post("/config/import")
@api.auth_required(auth)
@api.input(schemas.ConfigImportQuery, location="query", arg_name="q", unknown=None)
@api.output(schemas.ConfigImportOut)
@api.doc(summary="Import a configuration file (the body, TOML) in one transaction",
         description="Everything is checked first: any problem refuses the whole file with `422` and "
                     "`detail.problems` (a list), and nothing changes. Entries are matched by key (slug, code, "
                     "device_id, button and press): added or changed; nothing is removed unless `prune=true` "
                     "(mappings and devices not in the file are removed and retired; sites and categories nothing "
                     "refers to are deleted). `dry_run=true` answers what would change and changes nothing. "
                     "`counts` per kind: `added`, `changed`, `unchanged`, `removed`.",
         responses={422: "the file has problems; nothing was imported"}, tags=["Admin"])
def import_config(q: dict[str, Any]) -> dict[str, Any]:
    actor = caller_actor()
    request.max_content_length = config_io.MAX_BYTES
    if request.mimetype not in ("application/toml", "text/plain", "text/x-toml", "application/octet-stream", ""):
        abort(415, "send the TOML file as the body, with Content-Type: application/toml")
    try:
        body = request.get_data(cache=False)
        if not body.strip():
            # Not "a configuration of nothing": with prune=true that would remove everything.
            raise config_io.ConfigRejected(["the file is empty; send the configuration as the body"])
        text = config_io.decode(body)
        report = config_io.run(ext().db, text, actor, dry_run=q["dry_run"], prune=q["prune"],
                               default_sla=ext().default_sla)
    except config_io.ConfigRejected as exc:
        abort(422, str(exc), detail={"problems": exc.listed(), "count": len(exc.errors)})
    out = report.as_dict()
    if not report.dry_run and report.retired:
        out["broker"] = [o.as_dict() for o in credentials.remove_many(ext(), report.retired, actor)]
    return out


# The users and API tokens endpoints live in their own module, on this blueprint.
