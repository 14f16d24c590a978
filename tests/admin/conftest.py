"""The admin pages' fixtures: the web desk's (a server on its own SQLite database, users ann and bob as
agents, admin), plus helpers to post admin forms with their CSRF token and to read the audit log."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from server.app import create_app
from server.models import AuditLog
from server.domain.users import create_user
from tests.web.conftest import (ADMIN_PASSWORD, AGENT_PASSWORD, API, TOKEN, Desk, admin, ann, app,  # noqa: F401
                                api, cheap_password_hashes, csrf_of, press)


def post(desk: Desk, path: str, page: str | None = None, **form: Any):
    """Post an admin form as a browser does: with the CSRF token of the page it is on."""
    return desk.c.post(path, data={"csrf_token": desk.token(page or "/admin"), **form})


def audit_rows(app: Any, action: str | None = None) -> list[AuditLog]:
    with app.extensions["dashdesk"].db.read() as s:
        stmt = select(AuditLog).order_by(AuditLog.id)
        if action:
            stmt = stmt.where(AuditLog.action == action)
        return list(s.scalars(stmt))


def make_paths_app(request: Any, tmp_path: Any, monkeypatch: Any, **server: Any) -> Any:
    """A server whose press path runs on sqlite3's cursor (param True) or through the session (False)."""
    monkeypatch.setenv("DASHDESK_ADMIN_TOKEN", TOKEN)
    monkeypatch.setenv("DASHDESK_ADMIN_PASSWORD", ADMIN_PASSWORD)
    app = create_app({"data_dir": str(tmp_path),
                      "server": {"sse_lifetime_s": 1, "sqlite_fast_path": request.param, **server}})
    create_user(app.extensions["dashdesk"].db, "ann", AGENT_PASSWORD, "agent")
    return app


@pytest.fixture(params=[True, False], ids=["sqlite-cursor", "session"])
def paths_app(request, tmp_path, monkeypatch):
    """Every press rule below holds on the fast path (sqlite3's cursor) and through the session."""
    app = make_paths_app(request, tmp_path, monkeypatch, reopen_window_s=3600)
    assert app.extensions["dashdesk"].db.fast_sql is request.param
    yield app
    app.extensions["dashdesk"].db.close()
