import pytest

from tests.stack import Presser, Stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """One stack of real parts shared by a test module (tests use their own device ids)."""
    s = Stack(tmp_path_factory.mktemp("stack")).start()
    yield s
    s.stop()


@pytest.fixture
def fresh_stack(tmp_path):
    """A stack of its own, for tests that kill or restart parts."""
    s = Stack(tmp_path / "stack").start()
    yield s
    s.stop()


@pytest.fixture
def presser(stack):
    p = Presser(stack.broker.url)
    yield p
    p.close()


@pytest.fixture(scope="session")
def playwright():
    """Playwright, started once for the whole run (its ``devices`` describe phones to emulate)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright):
    """Debian's Chromium, one for the whole run (each test opens contexts of its own)."""
    import os

    from tests.browser import CHROMIUM

    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (scripts/test does)")
    b = playwright.chromium.launch(executable_path=CHROMIUM)
    yield b
    b.close()


@pytest.fixture(scope="session")
def _migrated_template(tmp_path_factory):
    """An empty database at the newest revision, made once by the real migrations."""
    from server.migrate import upgrade

    path = tmp_path_factory.mktemp("migrated") / "dashdesk.sqlite3"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(autouse=True)
def _apps_start_from_a_migrated_copy(request, monkeypatch):
    """``create_app`` in this process starts a new SQLite database from a copy of one migrated once.

    Running every migration costs each new app ~0.3 s, hundreds of times a run. The copy is what the
    same migrations made, and ``create_app`` still runs ``upgrade`` on it (a no-op at the newest
    revision). Tests of the migrations call ``server.migrate.upgrade`` themselves and are not touched;
    servers started as processes (tests.stack) migrate for real.
    """
    import shutil
    import types

    from server import app as server_app
    from server import migrate

    template = request.getfixturevalue("_migrated_template")

    def upgrade(url: str, revision: str = "head") -> None:
        prefix = "sqlite:///"
        if revision == "head" and url.startswith(prefix):
            target = url[len(prefix):]
            import os

            if not os.path.exists(target):
                shutil.copyfile(template, target)
        migrate.upgrade(url, revision)

    monkeypatch.setattr(server_app, "migrate", types.SimpleNamespace(upgrade=upgrade))
