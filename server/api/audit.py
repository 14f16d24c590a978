"""The audit log (``GET /api/v1/audit``): who changed what."""

from __future__ import annotations

from typing import Any

from server.api import schemas
from server.api.auth import auth
from server.api.blueprint import api
from server.context import ext
from server.domain import audit, inputs
from server.models import AuditLog


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
