"""The press queue: every press kept in SQLite until its final ack, plus the seq counter."""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from dashdesk import wire

# A shop's Pi loses power without warning: FULL makes each commit reach the SD
# card before put() returns; WAL keeps that to one sync per commit.
PRAGMAS = ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL")
# Another thread holding the write lock finishes within milliseconds; wait
# rather than fail a press.
BUSY_TIMEOUT_S = 5.0

PENDING = "pending"  # not answered yet
QUEUED = "queued"    # the bridge holds it; a final ack follows

SCHEMA = """
CREATE TABLE IF NOT EXISTS presses (
    event_id TEXT PRIMARY KEY,
    button   TEXT NOT NULL,
    payload  BLOB NOT NULL,
    created  REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    state    TEXT NOT NULL DEFAULT 'pending'
);
CREATE TABLE IF NOT EXISTS counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT OR IGNORE INTO counters (name, value) VALUES ('seq', 0);
"""


@dataclass(frozen=True)
class QueuedPress:
    """A stored press: its published payload and how far it got."""

    event_id: str
    button: str
    payload: bytes
    created: float
    attempts: int
    state: str


class PressQueue:
    """Keep presses durably until a final ack, and hand out increasing seq numbers."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        # Autocommit: every statement is its own short transaction.
        self._db: sqlite3.Connection | None = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
        for pragma in PRAGMAS:
            self._db.execute(pragma)
        self._db.executescript(SCHEMA)

    def next_seq(self) -> int:
        """Return the next seq number (1, 2, ...), stored before it is returned."""
        with self._lock:
            # fetchall, not fetchone, here and in ack(): a RETURNING statement
            # (and so its commit) finishes only once all its rows are read.
            rows = self._conn().execute(
                "UPDATE counters SET value = value + 1 WHERE name = 'seq' RETURNING value").fetchall()
        return rows[0][0]

    def put(self, event_id: str, button: str, payload: bytes) -> None:
        """Store a press; it is on disk when this returns."""
        with self._lock:
            self._conn().execute(
                "INSERT INTO presses (event_id, button, payload, created) VALUES (?, ?, ?, ?)",
                (event_id, button, payload, time.time()))

    def sent(self, event_ids: Iterable[str]) -> None:
        """Count one more publish attempt for each of ``event_ids``."""
        with self._lock:
            db = self._conn()
            with db:  # one commit for all, rolled back on error
                db.execute("BEGIN")
                db.executemany("UPDATE presses SET attempts = attempts + 1 WHERE event_id = ?",
                               [(e,) for e in event_ids])

    def pending(self) -> list[QueuedPress]:
        """Every press not finally acked, oldest first."""
        with self._lock:
            # rowid, not created: a Pi without a clock battery can jump in time.
            rows = self._conn().execute(
                "SELECT event_id, button, payload, created, attempts, state FROM presses ORDER BY rowid"
            ).fetchall()
        return [QueuedPress(e, b, bytes(p), c, a, s) for e, b, p, c, a, s in rows]

    def get(self, event_id: str) -> QueuedPress | None:
        """The stored press ``event_id``, or None once it is finally acked (or was never stored)."""
        with self._lock:
            rows = self._conn().execute(
                "SELECT event_id, button, payload, created, attempts, state FROM presses WHERE event_id = ?",
                (event_id,)).fetchall()
        if not rows:
            return None
        e, b, p, c, a, s = rows[0]
        return QueuedPress(e, b, bytes(p), c, a, s)

    def ack(self, event_id: str, result: str) -> QueuedPress | None:
        """Record an ack: ``queued`` marks the press, any other result removes it.

        Returns the press the ack answers, or None if it is not in the queue.
        """
        if result not in wire.RESULTS:
            raise ValueError(f"unknown ack result {result!r}")
        with self._lock:
            db = self._conn()
            if result == QUEUED:
                rows = db.execute(
                    "UPDATE presses SET state = ? WHERE event_id = ? "
                    "RETURNING event_id, button, payload, created, attempts, state",
                    (QUEUED, event_id)).fetchall()
            else:
                rows = db.execute(
                    "DELETE FROM presses WHERE event_id = ? "
                    "RETURNING event_id, button, payload, created, attempts, state",
                    (event_id,)).fetchall()
        if not rows:
            return None
        e, b, p, c, a, s = rows[0]
        return QueuedPress(e, b, bytes(p), c, a, s)

    def close(self) -> None:
        """Close the database; calling it again does nothing."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the press queue is closed")
        return self._db
