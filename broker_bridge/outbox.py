"""The bridge's durable outbox: what it has acknowledged but not yet handed to the server.

SQLite in WAL with ``synchronous=FULL``: once ``put`` returns, the row
survives a SIGKILL or a power cut, so the bridge may let the broker forget
the message.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PRESS = "press"
DEAD_LETTER = "dead_letter"


def press_key(device_id: str, event_id: str) -> str:
    """A press's key in the outbox: its device's ``event_id`` (the same event_id from another device is
    another press, kept beside it). A device id has no ``/``."""
    return f"{device_id}/{event_id}"


@dataclass(frozen=True)
class Item:
    id: int
    kind: str
    key: str
    body: dict[str, Any]
    device_id: str | None


class Outbox:
    def __init__(self, path: str | Path):
        self.path = str(path)
        self._lock = threading.Lock()
        try:
            # Presses and devices' telemetry: readable by the bridge's user only (SQLite gives -wal and -shm this mode).
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            pass
        self._db: sqlite3.Connection | None = sqlite3.connect(self.path, check_same_thread=False,
                                                              isolation_level=None, timeout=15)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("""CREATE TABLE IF NOT EXISTS outbox (
            id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, key TEXT NOT NULL,
            device_id TEXT, body TEXT NOT NULL, created REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
            UNIQUE (kind, key))""")
        self._db.execute("CREATE TABLE IF NOT EXISTS state (name TEXT PRIMARY KEY, value TEXT NOT NULL)")

    def put(self, kind: str, key: str, body: dict[str, Any], device_id: str | None = None) -> bool:
        """Store an item durably; False if one with this kind and key is already there."""
        with self._lock:
            cur = self._conn().execute(
                "INSERT OR IGNORE INTO outbox (kind, key, device_id, body, created) VALUES (?, ?, ?, ?, ?)",
                (kind, key, device_id, json.dumps(body), time.time()))
            return cur.rowcount == 1

    def put_many(self, kind: str, items: list[tuple[str, dict[str, Any], str | None]]) -> list[int | None]:
        """Store ``(key, body, device_id)`` items durably in one transaction (one disk write for them all);
        each one's row id, None for one whose kind and key are already there."""
        with self._lock:
            db = self._conn()
            db.execute("BEGIN IMMEDIATE")
            try:
                ids: list[int | None] = []
                now = time.time()
                for key, body, device_id in items:
                    cur = db.execute("INSERT OR IGNORE INTO outbox (kind, key, device_id, body, created) "
                                     "VALUES (?, ?, ?, ?, ?)", (kind, key, device_id, json.dumps(body), now))
                    ids.append(cur.lastrowid if cur.rowcount == 1 else None)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return ids

    def oldest(self, limit: int = 100) -> list[Item]:
        with self._lock:
            rows = self._conn().execute("SELECT id, kind, key, body, device_id FROM outbox ORDER BY id LIMIT ?",
                                        (limit,)).fetchall()
        return [Item(r[0], r[1], r[2], json.loads(r[3]), r[4]) for r in rows]

    def remove(self, item_id: int) -> None:
        with self._lock:
            self._conn().execute("DELETE FROM outbox WHERE id = ?", (item_id,))

    def remove_many(self, item_ids: list[int]) -> None:
        """Remove these items in one transaction."""
        if not item_ids:
            return
        with self._lock:
            self._conn().execute(f"DELETE FROM outbox WHERE id IN ({','.join('?' * len(item_ids))})", item_ids)

    def count(self, kind: str | None = None) -> int:
        with self._lock:
            if kind:
                return self._conn().execute("SELECT count(*) FROM outbox WHERE kind = ?", (kind,)).fetchone()[0]
            return self._conn().execute("SELECT count(*) FROM outbox").fetchone()[0]

    def get_state(self, name: str, default: str | None = None) -> str | None:
        with self._lock:
            row = self._conn().execute("SELECT value FROM state WHERE name = ?", (name,)).fetchone()
        return row[0] if row else default

    def set_state(self, name: str, value: str) -> None:
        with self._lock:
            self._conn().execute("INSERT INTO state (name, value) VALUES (?, ?) "
                                 "ON CONFLICT(name) DO UPDATE SET value = excluded.value", (name, value))

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("outbox is closed")
        return self._db

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
