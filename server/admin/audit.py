"""The audit log (``/admin/audit``): who changed what, newest first."""

from __future__ import annotations

from typing import Any

from flask import render_template, request
from sqlalchemy import select

from server.admin.blueprint import PAGE_SIZE, Pages, admin, page_arg, query
from server.context import ext
from server.domain import audit
from server.models import AuditLog


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
