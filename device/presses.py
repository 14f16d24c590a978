"""Press-type detection: one button's down/up edges become single, double or long.

The detector does no I/O and reads time only through the clock and timer it
is given, so tests can drive it with a fake clock and fake timers.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Protocol

# A deliberate hold: long enough that nobody reaches it by a firm single press
# (those last 100-300 ms), short enough that a person holding on gets feedback.
LONG_PRESS_S = 1.0
# The usual gap between the two presses of a double press is 100-250 ms;
# 0.4 s catches slow double presses yet delays a single press only a little.
DOUBLE_WINDOW_S = 0.4

SINGLE, DOUBLE, LONG = "single", "double", "long"

# The detector's states between edges.
_IDLE = "idle"                # nothing going on
_DOWN = "down"                # first press held, type not known yet
_WAITING = "waiting"          # first press released, a second may follow
_LONG_HELD = "long-held"      # long already reported, waiting for the release
_SECOND_DOWN = "second-down"  # double already reported, waiting for the release


class Cancellable(Protocol):
    def cancel(self) -> None: ...


StartTimer = Callable[[float, Callable[[], None]], Cancellable]
OnPress = Callable[[str, float], None]


def start_timer(delay: float, callback: Callable[[], None]) -> threading.Timer:
    """Call ``callback`` on a daemon thread after ``delay`` seconds."""
    timer = threading.Timer(delay, callback)
    timer.daemon = True
    timer.start()
    return timer


class PressDetector:
    """Turn one button's down/up edges into ``single``, ``double`` and ``long`` presses.

    ``on_press(press_type, started)`` is called once per press, with
    ``started`` the clock reading at the first button-down of that press:
    ``long`` as soon as the hold time is reached (not at release), ``double``
    when a second press starts within the window after the first release, and
    ``single`` when that window closes, or at release if ``double`` is off.
    """

    def __init__(self, on_press: OnPress, *, long_press_s: float = LONG_PRESS_S,
                 double_window_s: float = DOUBLE_WINDOW_S, double: bool = True,
                 clock: Callable[[], float] = time.monotonic, timer: StartTimer = start_timer):
        self._on_press = on_press
        self._long_press_s = long_press_s
        self._double_window_s = double_window_s
        self._double = double
        self._clock = clock
        self._start_timer = timer
        self._lock = threading.Lock()
        self._state = _IDLE
        self._started = 0.0
        self._timer: Cancellable | None = None
        self._generation = 0  # tells a timer that fired late it was cancelled

    def down(self) -> None:
        """Handle the button going down."""
        with self._lock:
            now = self._clock()
            if self._state == _IDLE:
                self._state = _DOWN
                self._started = now
                self._arm(self._long_press_s, self._long_reached)
                return
            if self._state != _WAITING:
                return  # a down while already down: the up edge was lost
            self._disarm()
            self._state = _SECOND_DOWN
            started = self._started
        self._on_press(DOUBLE, started)

    def up(self) -> None:
        """Handle the button going up."""
        with self._lock:
            if self._state in (_LONG_HELD, _SECOND_DOWN):
                self._state = _IDLE
                return
            if self._state != _DOWN:
                return  # an up without a down (e.g. the pin's first reading)
            self._disarm()
            started = self._started
            if self._clock() - started >= self._long_press_s:
                press = LONG  # the hold time passed but its timer has not run yet
                self._state = _IDLE
            elif not self._double:
                press = SINGLE
                self._state = _IDLE
            else:
                self._state = _WAITING
                self._arm(self._double_window_s, self._window_closed)
                return
        self._on_press(press, started)

    def close(self) -> None:
        """Cancel any pending timer; a press in progress is dropped."""
        with self._lock:
            self._disarm()
            self._state = _IDLE

    def _arm(self, delay: float, fire: Callable[[int], None]) -> None:
        generation = self._generation
        self._timer = self._start_timer(delay, lambda: fire(generation))

    def _disarm(self) -> None:
        self._generation += 1
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _long_reached(self, generation: int) -> None:
        with self._lock:
            if generation != self._generation or self._state != _DOWN:
                return
            self._timer = None
            self._state = _LONG_HELD
            started = self._started
        self._on_press(LONG, started)

    def _window_closed(self, generation: int) -> None:
        with self._lock:
            if generation != self._generation or self._state != _WAITING:
                return
            self._timer = None
            self._state = _IDLE
            started = self._started
        self._on_press(SINGLE, started)
