"""Enrolment links for phones (``/admin/enrolments``): make one for a site, see them, withdraw one."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import func, select
from sqlalchemy.orm import joinedload

from dashdesk import wire

from server.context import app_settings, ext, public_base
from server.domain import inputs
from server.domain.enrolments import (
    PAGE_SIZE,
    STATES,
    EnrolmentError,
    as_dict,
    create,
    default_expiry_h,
    listing,
    made_dict,
    qr_svg,
    revoke,
)
from server.models import ButtonMapping, Enrolment, Site
from server.pages.session import admins_only, no_store


admin_pages = Blueprint("enrolments", __name__, url_prefix="/admin/enrolments")
admin_pages.enable_openapi = False  # type: ignore[attr-defined]
admin_pages.before_request(admins_only)
admin_pages.after_request(no_store)






def _page(site_code: str = "", state_: str = "", form: dict[str, Any] | None = None, error: str | None = None,
          made: dict[str, Any] | None = None, status: int = 200) -> Any:
    page_no = inputs.page_number(request.args.get("page", "0"))
    now = wire.utcnow()
    with ext().db.read() as s:
        stmt = listing(site_code, state_)
        total = s.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
        rows = [as_dict(e, now) for e in s.scalars(stmt.limit(PAGE_SIZE).offset(page_no * PAGE_SIZE)).unique()]
        site_codes = [tuple(r) for r in s.execute(select(Site.code, Site.name).order_by(Site.code).limit(5000))]
        sources = list(s.scalars(select(ButtonMapping.device_id).distinct().order_by(ButtonMapping.device_id)
                                 .limit(2000)))
    form = form or {"site": site_code, "source_device": "", "expires_in_h": f"{default_expiry_h(app_settings()):g}"}
    return render_template("phone/enrolments.html", rows=rows, total=total, page=page_no, page_size=PAGE_SIZE,
                           site_code=site_code, state=state_, states=STATES, form=form, error=error, made=made,
                           site_codes=site_codes, sources=sources, query=_query,
                           qr=qr_svg(made["link"]) if made else None), status


def _query(**values: Any) -> str:
    return urlencode({k: v for k, v in values.items() if v not in ("", None, 0)})


@admin_pages.get("")
def enrolment_list() -> Any:
    state_ = request.args.get("state", "")
    return _page(request.args.get("site", "").strip()[:64], state_ if state_ in STATES else "")


@admin_pages.post("")
def enrolment_create() -> Any:
    form = {k: request.form.get(k, "").strip() for k in ("site", "source_device", "expires_in_h")}
    try:
        with ext().db.write() as s:
            made = create(s, form["site"], current_user.username, form["source_device"] or None,
                          form["expires_in_h"] or None, default_expiry_h(app_settings()))
            shown = made_dict(made, public_base())
    except EnrolmentError as exc:
        return _page(form["site"], form=form, error=exc.message[0].upper() + exc.message[1:],
                     status=422 if exc.status in (400, 409) else exc.status)
    # Rendered, not redirected: the code is shown this once and kept nowhere but in this page.
    return _page(shown["site"], made=shown, status=201)


@admin_pages.post("/<int:enrolment_id>/revoke")
def enrolment_revoke(enrolment_id: int) -> Any:
    try:
        with ext().db.write() as s:
            row = s.scalar(select(Enrolment).options(joinedload(Enrolment.site)).where(Enrolment.id == enrolment_id))
            if row is None:
                abort(404, f"There is no enrolment {enrolment_id}.")
            revoke(s, row, current_user.username)
            site_code = row.site.code
    except EnrolmentError as exc:
        flash(exc.message[0].upper() + exc.message[1:], "error")
        return redirect(url_for("enrolments.enrolment_list"), 303)
    flash(f"Enrolment {enrolment_id} withdrawn: its link no longer works.", "ok")
    return redirect(url_for("enrolments.enrolment_list", site=site_code), 303)


