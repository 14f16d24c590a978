"""MQTT acknowledgements in arrival order, each only once its message is safe."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable


class InOrderAcker:
    """Send PUBACKs in the order the PUBLISHes arrived (MQTT 4.6), as each becomes safe.

    A message is ``received`` in arrival order and later ``done`` from any thread;
    the acks go out for the longest done prefix. A new connection starts a new
    generation: packet ids of the old one mean nothing to the broker any more
    (it redelivers those messages), so they are never acked.
    """

    def __init__(self, send_ack: Callable[[int], object]):
        self._send_ack = send_ack
        self._lock = threading.Lock()
        self._pending: OrderedDict[int, bool] = OrderedDict()
        self.generation = 0

    def reset(self) -> None:
        with self._lock:
            self._pending.clear()
            self.generation += 1

    def received(self, mid: int) -> int:
        """Note a message that must be acked later; return the generation to pass to ``done``."""
        with self._lock:
            self._pending[mid] = False
            return self.generation

    def done(self, mid: int, generation: int) -> None:
        with self._lock:
            if generation != self.generation or mid not in self._pending:
                return
            self._pending[mid] = True
            while self._pending:
                head, ready = next(iter(self._pending.items()))
                if not ready:
                    break
                del self._pending[head]
                self._send_ack(head)

    def __len__(self) -> int:
        return len(self._pending)
