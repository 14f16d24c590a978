"""Flask-client fixtures of the web desk: a server on its own SQLite database, users, sign-in."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest

from dashdesk import wire
from server.app import create_app
from argon2 import PasswordHasher

from server.domain import users
from server.domain.users import create_user

TOKEN = "web-unit-admin-token"
ADMIN_PASSWORD = "admin-password-123"
AGENT_PASSWORD = "agent-password-123"
API = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(autouse=True)
def cheap_password_hashes():
    """argon2 with its smallest cost: the default's 0.3 s a hash would make these tests minutes long."""
    previous = users.use_hasher(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    yield
    users.use_hasher(previous)


@pytest.fixture
def app(tmp_path, monkeypatch):
    monkeypatch.setenv("DASHDESK_ADMIN_TOKEN", TOKEN)
    monkeypatch.setenv("DASHDESK_ADMIN_PASSWORD", ADMIN_PASSWORD)
    app = create_app({"data_dir": str(tmp_path), "server": {"sse_lifetime_s": 1}})
    create_user(app.extensions["dashdesk"].db, "ann", AGENT_PASSWORD, "agent")
    create_user(app.extensions["dashdesk"].db, "bob", AGENT_PASSWORD, "agent")
    yield app
    app.extensions["dashdesk"].db.close()


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html) or re.search(r'value="([^"]+)"[^>]*name="csrf_token"',
                                                                              html)
    assert m, "no CSRF token in the page"
    return m.group(1)


class Desk:
    """A browser-like client: signs in through the form, posts forms with their token."""

    def __init__(self, app: Any, username: str | None = None, password: str | None = None):
        self.app = app
        self.c = app.test_client()
        if username:
            self.sign_in(username, password or (ADMIN_PASSWORD if username == "admin" else AGENT_PASSWORD))

    def sign_in(self, username: str, password: str, next_url: str | None = None):
        page = self.c.get("/login")
        url = "/login" + (f"?next={next_url}" if next_url else "")
        return self.c.post(url, data={"csrf_token": csrf_of(page.text), "username": username,
                                      "password": password})

    def token(self, path: str = "/") -> str:
        return csrf_of(self.c.get(path).text)

    def act(self, ticket_id: int, action: str, **form: Any):
        data = {"csrf_token": self.token(f"/tickets/{ticket_id}"), **form}
        return self.c.post(f"/tickets/{ticket_id}/{action}", data=data)


def press(app: Any, device_id: str = "shop-1", button: str = "b1", press: str = "single",
          pressed_at: str | None = None, **extra: Any) -> dict[str, Any]:
    """Hand one press to the server through the API, as the bridge does."""
    body = {"event_id": f"e-{uuid.uuid4().hex[:12]}", "device_id": device_id, "button": button, "press": press,
            "pressed_at": pressed_at or wire.format_time(wire.utcnow()), **extra}
    r = app.test_client().post("/api/v1/incidents", json=body, headers=API)
    assert r.status_code in (200, 201), r.text
    return r.get_json()


def api(app: Any, method: str, path: str, **kwargs: Any):
    return app.test_client().open(path, method=method, headers=API, **kwargs)


@pytest.fixture
def admin(app):
    return Desk(app, "admin")


@pytest.fixture
def ann(app):
    return Desk(app, "ann")
