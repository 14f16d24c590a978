"""The admin pages of the whole configuration: download it as TOML, check and import a file.

On the ``admin`` blueprint. ``/admin/config/export`` downloads what ``dashdesk config export``
writes; ``/admin/config/import`` takes a file (or pasted text), checks it and shows what it
would change (a dry run, the default), then imports it on a second click: the text travels
back in the page's form, so what is imported is what was checked.
"""

from __future__ import annotations

from typing import Any

from flask import Response, flash, render_template, request

from server.admin.blueprint import admin, me
from server.context import ext
from server.domain import broker_accounts
from server.domain import config_io


@admin.url_value_preprocessor
def _bigger_config_uploads(endpoint: str | None, values: Any) -> None:
    # Before CSRFProtect reads the form: a chain's file may be larger than the app's limit.
    if endpoint == "admin.config_import":
        request.max_content_length = config_io.MAX_BYTES


@admin.get("/config/export")
def config_export() -> Response:
    return Response(config_io.export_text(ext().db), mimetype="application/toml",
                    headers={"Content-Disposition": 'attachment; filename="dashdesk-config.toml"'})


@admin.route("/config/import", methods=["GET", "POST"])
def config_import() -> Any:
    if request.method == "GET":
        return render_template("admin/config_import.html", report=None, errors=None, text="")
    upload = request.files.get("file")
    body = upload.read() if upload is not None and upload.filename else b""
    if not body:
        body = request.form.get("toml", "").encode()
    dry_run = request.form.get("apply") != "1"
    prune = request.form.get("prune") == "1"
    if not body.strip():
        return render_template("admin/config_import.html", report=None, text="", prune=prune,
                               errors=config_io.ConfigRejected(["choose a TOML file (or paste one)"])), 422
    try:
        text = config_io.decode(body)
        report = config_io.run(ext().db, text, me(), dry_run=dry_run, prune=prune, default_sla=ext().default_sla)
    except config_io.ConfigRejected as exc:
        shown = body.decode("utf-8", errors="replace") if len(body) < 200_000 else ""
        return render_template("admin/config_import.html", report=None, errors=exc, text=shown, prune=prune), 422
    broker: list[broker_accounts.Outcome] = []
    if not dry_run:
        flash(f"Imported: {report.summary()}.", "ok")
        broker = [o for o in broker_accounts.remove_many(ext(), report.retired, me()) if o.result != "not_needed"]
    return render_template("admin/config_import.html", report=report, errors=None, text=text if dry_run else "",
                           prune=prune, broker=broker)
