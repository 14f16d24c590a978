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
