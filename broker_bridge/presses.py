"""Presses waiting for one of the bridge's workers, oldest first."""

from __future__ import annotations

import threading
from collections import deque
from typing import Any, Callable

# A waiting press: its body for the server (``wire.IncidentBody.to_dict()``), the callback that acks it to the
# broker, when it arrived (time.monotonic()).
Waiting = tuple[dict[str, Any], Callable[[], None], float]


class PressQueue:
    """A FIFO of presses that workers take in batches, and that the bridge's watchdog can empty of the
    presses that have waited too long (``take_late``), so none waits unanswered however busy the workers are.

    ``close`` lets the workers take what is left, then tells each that nothing more comes.
    """

    def __init__(self) -> None:
        self._items: deque[Waiting] = deque()
        self._cond = threading.Condition()
        self._closed = False

    def put(self, item: Waiting) -> None:
        with self._cond:
            self._items.append(item)
            self._cond.notify()

    def wait(self) -> bool:
        """Wait until a press waits (True), or the queue is closed and empty (False). Another taker may take
        that press first: ``take`` then gives an empty list."""
        with self._cond:
            while not self._items:
                if self._closed:
                    return False
                self._cond.wait()
            return True

    def take(self, limit: int) -> list[Waiting]:
        """Up to ``limit`` of the oldest presses, at once (an empty list if none waits)."""
        with self._cond:
            n = min(limit, len(self._items))
            return [self._items.popleft() for _ in range(n)]

    def take_late(self, arrived_by: float) -> list[Waiting]:
        """Every press that arrived at ``arrived_by`` or before, oldest first."""
        with self._cond:
            late = []
            while self._items and self._items[0][2] <= arrived_by:
                late.append(self._items.popleft())
            return late

    def give_back(self, items: list[Waiting]) -> None:
        """Put presses taken back at the front, in their order (they could not be kept elsewhere)."""
        with self._cond:
            self._items.extendleft(reversed(items))
            self._cond.notify(len(items))

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __len__(self) -> int:
        return len(self._items)
