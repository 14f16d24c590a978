"""The configuration as a TOML file: export and import (``/api/v1/config``)."""

from __future__ import annotations

from typing import Any

from apiflask import abort
from flask import Response, request

from server.api import schemas
from server.api.auth import auth
from server.api.blueprint import api, caller_actor
from server.context import ext
from server.domain import broker_accounts
from server.domain import config_io


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
        out["broker"] = [o.as_dict() for o in broker_accounts.remove_many(ext(), report.retired, actor)]
    return out
