"""Press types from gpiozero buttons on mock pins, driven low (pressed) and high (released)."""

from __future__ import annotations

import queue
import time
from datetime import timedelta

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

from dashdesk import wire
from device.buttons import ButtonInput, make_pin_factory

PIN = 17
# Timer threads never fire early, so this bounds how long a wait may take.
WAIT_S = 5.0


class Recorder:
    def __init__(self):
        self.downs: list[str] = []
        self.presses: queue.Queue = queue.Queue()

    def down(self, name: str) -> None:
        self.downs.append(name)

    def press(self, name: str, press_type: str, pressed_at) -> None:
        self.presses.put((name, press_type, pressed_at, time.monotonic()))


@pytest.fixture
def factory():
    return MockFactory()


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


@pytest.fixture
def button(request, factory, rec) -> ButtonInput:
    """Button b1 on mock pin 17; it tells double presses apart unless parametrised with False."""
    b = ButtonInput("b1", PIN, pin_factory=factory, on_down=rec.down, on_press=rec.press,
                    long_press_s=1.0, double_window_s=0.4, double=getattr(request, "param", True))
    yield b
    b.close()


@pytest.fixture
def pin(factory, button):
    """The button's pin: drive it low to press, high to release."""
    return factory.pin(PIN)


def test_tap_is_single_after_the_double_window(pin, rec):
    before = wire.utcnow()
    pin.drive_low()
    releasing = time.monotonic()
    pin.drive_high()
    name, kind, pressed_at, at = rec.presses.get(timeout=WAIT_S)
    assert (name, kind) == ("b1", "single")
    assert at - releasing >= 0.4  # it waited for a possible second press
    # When it went down, not when the window closed 0.4 s later (0.2 s spare for a stalled VM).
    assert abs(pressed_at - before) < timedelta(seconds=0.2)
    assert rec.downs == ["b1"]


def test_two_taps_are_one_double(pin, rec):
    pin.drive_low()
    pin.drive_high()
    pin.drive_low()
    assert rec.presses.get_nowait()[:2] == ("b1", "double")  # known as the second press starts
    pin.drive_high()
    time.sleep(0.5)  # past the window: no single may follow
    assert rec.presses.empty()
    assert rec.downs == ["b1", "b1"]


def test_hold_is_long_while_still_held(pin, rec):
    held = time.monotonic()
    pin.drive_low()
    name, kind, _, at = rec.presses.get(timeout=WAIT_S)
    assert (name, kind) == ("b1", "long")
    assert at - held >= 1.0
    assert pin.state is False  # not released yet
    pin.drive_high()
    assert rec.presses.empty()


@pytest.mark.parametrize("button", [False], ids=["without-double"], indirect=True)
def test_without_double_a_tap_is_single_at_release(pin, rec):
    pin.drive_low()
    assert rec.presses.empty()
    pin.drive_high()
    assert rec.presses.get_nowait()[:2] == ("b1", "single")  # no waiting at all


def test_mock_pin_factory_by_name_and_unknown_names_refused():
    assert isinstance(make_pin_factory("mock"), MockFactory)
    with pytest.raises(ValueError, match="pin_factory"):
        make_pin_factory("banana")


@pytest.fixture
def no_default_factory(monkeypatch):
    """Let a test choose gpiozero's default pin factory without leaking it to others."""
    monkeypatch.setattr(Device, "pin_factory", None)


def test_default_pin_factory_follows_gpiozero_env(monkeypatch, no_default_factory):
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "mock")
    assert isinstance(make_pin_factory(""), MockFactory)


def test_default_pin_factory_falls_back_to_mock_without_pins(monkeypatch, no_default_factory, caplog):
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "no-such-factory")
    assert isinstance(make_pin_factory(""), MockFactory)
    assert "no GPIO pins found" in caplog.text
