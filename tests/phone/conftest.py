"""The phone app's fixtures: a server on its own SQLite database (as tests/web's) whose broker has a
WebSockets listener on port 9001, a site hs-01, the web desk's users, and helpers for enrolments."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import select

from server.app import create_app
from server.models import AuditLog
from server.domain.users import create_user
from tests.web.conftest import (ADMIN_PASSWORD, AGENT_PASSWORD, API, TOKEN, Desk, cheap_password_hashes,  # noqa: F401
                                csrf_of)

WS_PORT = 9001


@pytest.fixture
def app(tmp_path, monkeypatch):
    monkeypatch.setenv("DASHDESK_ADMIN_TOKEN", TOKEN)
    monkeypatch.setenv("DASHDESK_ADMIN_PASSWORD", ADMIN_PASSWORD)
    app = create_app({"data_dir": str(tmp_path), "server": {"sse_lifetime_s": 1},
                      "app": {"ws_port": WS_PORT}})
    create_user(app.extensions["dashdesk"].db, "ann", AGENT_PASSWORD, "agent")
    c = app.test_client()
    assert c.post("/api/v1/sites", json={"code": "hs-01", "name": "High Street"}, headers=API).status_code == 201
    yield app
    app.extensions["dashdesk"].db.close()


@pytest.fixture
def admin(app):
    return Desk(app, "admin")


@pytest.fixture
def ann(app):
    return Desk(app, "ann")


def api(app: Any, method: str, path: str, **kwargs: Any):
    return app.test_client().open(path, method=method, headers={**API, **kwargs.pop("headers", {})}, **kwargs)


def enrolment(app: Any, site: str = "hs-01", **body: Any) -> dict[str, Any]:
    """A new enrolment made through the API, with its code."""
    r = api(app, "POST", "/api/v1/enrolments", json={"site": site, **body})
    assert r.status_code == 201, r.text
    return r.get_json()


def redeem(app: Any, code: str, client: Any = None, **headers: str):
    return (client or app.test_client()).post(f"/app/enroll/{code}", json={"language": "en"},
                                              headers={"User-Agent": "Mozilla/5.0 (Linux; Android 14) test", **headers})


def phone_get(app: Any, path: str, token: str):
    return app.test_client().get(path, headers={"Authorization": f"Bearer {token}"})


def audit_rows(app: Any, action: str | None = None) -> list[AuditLog]:
    with app.extensions["dashdesk"].db.read() as s:
        stmt = select(AuditLog).order_by(AuditLog.id)
        if action:
            stmt = stmt.where(AuditLog.action == action)
        return list(s.scalars(stmt))


def enrolment_json(html: str) -> dict[str, Any]:
    import json

    m = re.search(r'<script type="application/json" id="enrolment">(.*?)</script>', html, re.S)
    assert m, "no enrolment data in the page"
    return json.loads(m.group(1))
