import pytest

from server.app import create_app

TOKEN = "unit-admin-token"


@pytest.fixture
def app(tmp_path, monkeypatch):
    """A server on a fresh SQLite database of its own."""
    monkeypatch.setenv("DASHDESK_ADMIN_TOKEN", TOKEN)
    app = create_app({"data_dir": str(tmp_path), "server": {"reopen_window_s": 3600}})
    yield app
    app.extensions["dashdesk"].db.close()


@pytest.fixture
def client(app):
    c = app.test_client()
    c.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {TOKEN}"
    return c
