"""LED feedback: what a button's LED shows while its press is sent and answered."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from gpiozero import LED
from gpiozero.pins import Factory


@dataclass(frozen=True)
class Pattern:
    """Steps of (LED on?, seconds) played once, then off, or repeated until replaced."""

    steps: tuple[tuple[bool, float], ...]
    repeat: bool = False


# Every step lasts at least 0.2 s and the patterns differ by at least 0.2 s in
# some step, so a person (and gpiozero's 50 ms test tolerance) tells them apart.
# Each starts with the LED off so it is seen to leave "sending" (solid on).
ACCEPTED = Pattern(((False, 0.2), (True, 0.2)) * 3)          # three quick blinks: reported
QUEUED = Pattern(((False, 1.0), (True, 0.3)), repeat=True)    # slow heartbeat: held, will be reported
FAILED = Pattern(((False, 0.2), (True, 0.8)) * 3)            # three long blinks: not reported

RESULT_PATTERNS = {
    "created": ACCEPTED,
    "merged": ACCEPTED,
    "reopened": ACCEPTED,
    "cancelled": ACCEPTED,
    "queued": QUEUED,
    "rejected": FAILED,
}


class ButtonLed:
    """Drive one button's LED: solid while sending, then a pattern on a background thread."""

    def __init__(self, pin: int, *, pin_factory: Factory):
        self._led = LED(pin, initial_value=False, pin_factory=pin_factory)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._player: threading.Thread | None = None

    def sending(self) -> None:
        """Turn the LED solid on: a press is on its way."""
        with self._lock:
            self._halt()
            self._led.on()

    def show(self, pattern: Pattern) -> None:
        """Play ``pattern`` in the background, replacing whatever the LED shows."""
        with self._lock:
            self._halt()
            self._stop = threading.Event()
            self._player = threading.Thread(target=self._play, args=(pattern, self._stop),
                                            name="dashdesk-led", daemon=True)
            self._player.start()

    def show_result(self, result: str) -> None:
        """Show the pattern for an ack result."""
        self.show(RESULT_PATTERNS[result])

    def close(self) -> None:
        """Stop any pattern, turn the LED off and release its pin."""
        with self._lock:
            self._halt()
            self._led.close()

    def _halt(self) -> None:
        if self._player is not None:
            self._stop.set()
            self._player.join()
            self._player = None

    def _play(self, pattern: Pattern, stop: threading.Event) -> None:
        while True:
            for on, seconds in pattern.steps:
                self._led.value = on
                if stop.wait(seconds):
                    return
            if not pattern.repeat:
                break
        self._led.off()
