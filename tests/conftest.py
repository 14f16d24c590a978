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
