"""The press detector on a fake clock: edges in, press types out, at the right moments."""

from __future__ import annotations

import pytest

from device.presses import PressDetector


class FakeTime:
    """A clock that moves only when told, and timers that fire when it passes them."""

    def __init__(self):
        self.now = 100.0
        self._timers: list[FakeTimer] = []

    def clock(self) -> float:
        return self.now

    def timer(self, delay: float, callback) -> "FakeTimer":
        timer = FakeTimer(self.now + delay, callback)
        self._timers.append(timer)
        return timer

    def advance(self, seconds: float) -> None:
        self.now += seconds
        due = [t for t in self._timers if t.at <= self.now and not t.cancelled]
        self._timers = [t for t in self._timers if t not in due]
        for timer in due:
            timer.callback()


class FakeTimer:
    def __init__(self, at: float, callback):
        self.at, self.callback, self.cancelled = at, callback, False

    def cancel(self) -> None:
        self.cancelled = True


@pytest.fixture
def fake():
    return FakeTime()


@pytest.fixture
def presses() -> list:
    """What the detector reported: (press type, when the press started), in order."""
    return []


@pytest.fixture
def detector(request, fake, presses) -> PressDetector:
    """The detector on the fake clock; it tells double presses apart unless parametrised with False."""
    d = PressDetector(lambda kind, started: presses.append((kind, started)), long_press_s=1.0,
                      double_window_s=0.4, double=getattr(request, "param", True), clock=fake.clock, timer=fake.timer)
    yield d
    d.close()


def tap(d: PressDetector, fake: FakeTime, hold: float = 0.1) -> None:
    """Press the button and let it go ``hold`` seconds later."""
    d.down()
    fake.advance(hold)
    d.up()


def test_short_press_is_single_once_the_double_window_closes(fake, detector, presses):
    tap(detector, fake)
    fake.advance(0.39)
    assert presses == []  # a second press may still come
    fake.advance(0.02)
    assert presses == [("single", 100.0)]


def test_second_press_within_window_is_double_reported_at_its_start(fake, detector, presses):
    tap(detector, fake)
    fake.advance(0.3)
    detector.down()
    assert presses == [("double", 100.0)]
    fake.advance(0.1)
    detector.up()
    fake.advance(2.0)
    assert presses == [("double", 100.0)]  # nothing more: no single, no long


def test_second_press_after_window_is_a_second_single(fake, detector, presses):
    tap(detector, fake)
    fake.advance(0.5)
    tap(detector, fake)
    fake.advance(0.5)
    assert [kind for kind, _ in presses] == ["single", "single"]
    assert presses[1][1] == pytest.approx(100.6)


def test_hold_is_long_as_soon_as_hold_time_is_reached_not_at_release(fake, detector, presses):
    detector.down()
    fake.advance(0.99)
    assert presses == []
    fake.advance(0.02)
    assert presses == [("long", 100.0)]  # still held
    fake.advance(3.0)
    detector.up()
    fake.advance(1.0)
    assert presses == [("long", 100.0)]


def test_release_after_hold_time_whose_timer_has_not_run_is_long(fake, detector, presses):
    detector.down()
    fake.now += 1.2  # the clock passes the hold time before the timer thread runs
    detector.up()
    assert presses == [("long", 100.0)]
    fake.advance(1.0)  # the late timer finds the press over and stays quiet
    assert presses == [("long", 100.0)]


@pytest.mark.parametrize("detector", [False], ids=["without-double"], indirect=True)
def test_without_double_a_short_press_is_single_at_release(fake, detector, presses):
    tap(detector, fake)
    assert presses == [("single", 100.0)]
    tap(detector, fake, 0.05)
    assert [kind for kind, _ in presses] == ["single", "single"]


def test_close_drops_a_press_in_progress(fake, detector, presses):
    detector.down()
    detector.close()
    fake.advance(5.0)
    assert presses == []
