"""LED feedback: what a button's LED shows while its press is sent and answered."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from gpiozero import LED
from gpiozero.pins import Factory


@dataclass(frozen=True)
class Pattern:
    """Blinks of ``on_s`` on and ``off_s`` off, ``times`` over (None: until replaced), then off."""

    on_s: float
    off_s: float
    times: int | None


# Every on or off lasts at least 0.2 s and the patterns differ by at least 0.5 s
# in one of them, so a person (and gpiozero's 50 ms test tolerance) tells them apart.
ACCEPTED = Pattern(0.2, 0.2, 3)     # three quick blinks: reported
QUEUED = Pattern(0.3, 1.0, None)    # slow heartbeat: held, will be reported
FAILED = Pattern(0.8, 0.2, 3)       # three long blinks: not reported

RESULT_PATTERNS = {
    "created": ACCEPTED,
    "merged": ACCEPTED,
    "reopened": ACCEPTED,
    "cancelled": ACCEPTED,
    "queued": QUEUED,
    "rejected": FAILED,
}


class ButtonLed:
    """One button's LED: solid while sending, then a blink pattern (gpiozero's own, in the background).

    >>> from gpiozero.pins.mock import MockFactory
    >>> led = ButtonLed(27, pin_factory=MockFactory())
    >>> led.sending(); led.show_result("created"); led.close()
    """

    def __init__(self, pin: int, *, pin_factory: Factory):
        self._led = LED(pin, initial_value=False, pin_factory=pin_factory)
        # Button-down, acks and ack timeouts arrive on three threads, and two
        # blink() calls at once leave a blink thread nobody can stop.
        self._lock = threading.Lock()

    def sending(self) -> None:
        """Turn the LED solid on (stopping any pattern): a press is on its way."""
        with self._lock:
            self._led.on()

    def show(self, pattern: Pattern) -> None:
        """Blink ``pattern``, replacing whatever the LED shows; the first off marks the change."""
        with self._lock:
            self._led.off()
            self._led.blink(pattern.on_s, pattern.off_s, n=pattern.times, background=True)

    def show_result(self, result: str) -> None:
        """Show the pattern for an ack result."""
        self.show(RESULT_PATTERNS[result])

    def close(self) -> None:
        """Stop any pattern, turn the LED off and release its pin; safe to repeat."""
        with self._lock:
            self._led.close()
