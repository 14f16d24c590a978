"""Sites (``/admin/sites``): the shops, their time zones and service hours, and a CSV import for a chain."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from sqlalchemy import func, select

from server.admin.blueprint import PAGE_SIZE, STATUS_LABELS, Pages, admin, me, page_arg, query
from server.context import ext
from server.domain import audit, sites
from server.models import Device


def _site_form() -> dict[str, Any]:
    return {k: request.form.get(k, "") for k in sites.CSV_COLUMNS}


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
                           hours=sites.format_hours, zones=sorted(sites.time_zones())), status


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
        row = sites.get(s, code)
        site_devices = s.scalars(select(Device).where(Device.site_id == row.id).order_by(Device.device_id)).all()
        history = s.scalars(audit.query(audit.AuditFilter(target=f"site:{row.code}")).limit(20)).all()
        if form is None:
            form = {k: getattr(row, k) for k in sites.CSV_COLUMNS}
            form["hours"] = sites.format_hours(row.hours)
    return render_template("admin/site.html", site=row, devices=site_devices, history=history, form=form,
                           errors=errors or {}, zones=sorted(sites.time_zones()), labels=STATUS_LABELS), status


@admin.post("/sites/<code>")
def site_update(code: str) -> Any:
    form = _site_form()
    try:
        with ext().db.write() as s:
            row = sites.get(s, code)
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
