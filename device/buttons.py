"""GPIO buttons: a gpiozero ``Button`` per configured button, feeding a press detector."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from typing import Callable

from gpiozero import Button, Device
from gpiozero.exc import BadPinFactory
from gpiozero.pins import Factory
from gpiozero.pins.mock import MockFactory

from dashdesk import wire
from device.presses import DOUBLE_WINDOW_S, LONG_PRESS_S, PressDetector

log = logging.getLogger(__name__)

# A tactile switch's contacts chatter for 5-10 ms; 20 ms filters that out and
# is far shorter than the gap between the two presses of a double press.
BOUNCE_S = 0.02


def make_pin_factory(name: str) -> Factory:
    """Return the pin factory named in the config: ``"mock"``, or ``""`` for gpiozero's default."""
    if name == "mock":
        return MockFactory()
    if name:
        raise ValueError(f'pin_factory must be "" (gpiozero default) or "mock", not {name!r}')
    try:
        Device.ensure_pin_factory()
    except BadPinFactory:
        log.warning("no GPIO pins found: using gpiozero's MockFactory; presses come only from the keyboard")
        return MockFactory()
    return Device.pin_factory


class ButtonInput:
    """Report one GPIO button's edges at once and its press types once known."""

    def __init__(self, name: str, pin: int, *, pin_factory: Factory,
                 on_down: Callable[[str], None], on_press: Callable[[str, str, datetime], None],
                 long_press_s: float = LONG_PRESS_S, double_window_s: float = DOUBLE_WINDOW_S,
                 double: bool = True):
        self.name = name
        self._on_down = on_down
        self._on_press = on_press
        self._detector = PressDetector(self._pressed, long_press_s=long_press_s,
                                       double_window_s=double_window_s, double=double)
        self._button = Button(pin, pull_up=True, bounce_time=BOUNCE_S, pin_factory=pin_factory)
        self._button.when_pressed = self._down
        self._button.when_released = self._detector.up

    def close(self) -> None:
        """Release the pin and drop a press in progress."""
        self._button.close()
        self._detector.close()

    def _down(self) -> None:
        self._on_down(self.name)
        self._detector.down()

    def _pressed(self, press_type: str, started: float) -> None:
        pressed_at = wire.utcnow() - timedelta(seconds=time.monotonic() - started)
        self._on_press(self.name, press_type, pressed_at)
