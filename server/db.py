"""Engine and sessions: SQLite in WAL with short IMMEDIATE write transactions.

Reads run in plain (deferred) transactions so they never wait for a writer;
writes take the lock at BEGIN, so two writers queue instead of failing with
"database is locked" half way through. A writer waits a bounded time for the
lock: one that another process holds longer (a long import, someone's
``sqlite3`` shell in a transaction) makes the write fail with ``DatabaseBusy``,
which the server answers 503 (the bridge keeps the press in its outbox and
tries again), instead of holding a server thread for as long as that lasts.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from typing import Iterator

from sqlalchemy import create_engine, event, make_url
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

# How long a writer waits for SQLite's write lock while another process holds it: long enough to sit out
# any other writer's short transaction (milliseconds), short enough that a long one costs a 503, not a
# server thread held for as long as it lasts.
SQLITE_BUSY_TIMEOUT_MS = 5000
# How long a writer waits for the other writers of its own process (they queue on a lock of ours rather than in
# SQLite's busy loop): with the busy timeout, at most 8 s in all, less than the bridge's 10 s read timeout.
WRITE_QUEUE_WAIT_S = 3.0
_WRITE = "dashdesk_write"
# A write that would rather not happen than wait (``Database.write(wait=False)``).
_NO_WAIT = "dashdesk_no_wait"


class DatabaseBusy(Exception):
    """The database's write lock stayed taken past the wait (another process holds it): try again shortly."""


def create_private(url: str) -> None:
    """Create the SQLite database file ``url`` names, readable and writable by its owner only (0600), unless it
    exists: it holds password and token hashes and shops' contacts. SQLite gives the -wal and -shm files it makes
    beside it the same mode."""
    parsed = make_url(url)
    path = parsed.database
    if parsed.get_backend_name() != "sqlite" or not path or path == ":memory:" or path.startswith("file:"):
        return
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))  # an empty file is an empty database
    except (FileExistsError, FileNotFoundError):
        pass  # one already there keeps its mode; a missing directory is SQLite's error to tell


def make_engine(url: str) -> Engine:
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True, future=True)
    create_private(url)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        # Let SQLAlchemy's BEGIN below be the only one (pysqlite would defer its own).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed press survives a power cut, since the bridge lets go of it then.
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):  # type: ignore[no-untyped-def]
        options = conn.get_execution_options()
        if not options.get(_NO_WAIT):
            conn.exec_driver_sql("BEGIN IMMEDIATE" if options.get(_WRITE) else "BEGIN")
            return
        # Only BEGIN IMMEDIATE waits for another process's lock: not at all for this one.
        conn.exec_driver_sql("PRAGMA busy_timeout=0")
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        finally:
            conn.exec_driver_sql(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")

    return engine


class Database:
    """Owns the engine and hands out read and write sessions."""

    def __init__(self, url: str, *, fast_sql: bool = True):
        self.url = url
        # The press path's statements on sqlite3's own cursor (``prepared``); False: through the session.
        self.fast_sql = fast_sql
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # SQLite has one writer at a time, and a writer that finds the lock taken
        # sleeps in steps of up to 100 ms: threads of one process queue here instead.
        self._write_lock: threading.Lock | _NoLock = threading.Lock() if url.startswith("sqlite") else _NoLock()

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._sessions() as session:
            yield session

    @contextmanager
    def write(self, *, wait: bool = True) -> Iterator[Session]:
        """A session whose transaction takes the write lock at once and commits on exit; ``DatabaseBusy`` if
        the lock stays taken (by another process) past WRITE_QUEUE_WAIT_S and SQLITE_BUSY_TIMEOUT_MS.

        ``wait=False``: for a write that may as well not happen (bookkeeping on a read, say): ``DatabaseBusy`` at
        once if another thread or process is writing."""
        if not (self._write_lock.acquire(timeout=WRITE_QUEUE_WAIT_S) if wait else self._write_lock.acquire(False)):
            raise DatabaseBusy(f"the database is busy: this write waited {WRITE_QUEUE_WAIT_S if wait else 0:g} s "
                               f"behind the server's other writes")
        try:
            with self._sessions() as session:
                try:
                    options = {_WRITE: True} if wait else {_WRITE: True, _NO_WAIT: True}
                    session.connection(execution_options=options)
                except OperationalError as exc:
                    if not _is_busy(exc):
                        raise
                    raise DatabaseBusy(f"the database is busy: another process has held its write lock for "
                                       f"{SQLITE_BUSY_TIMEOUT_MS / 1000:g} s") from exc
                with _commit_on_exit(session):
                    yield session
        finally:
            self._write_lock.release()

    def close(self) -> None:
        self.engine.dispose()


class _NoLock:
    """A database with writers of its own (PostgreSQL) needs no queue of ours."""

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        return True

    def release(self) -> None:
        pass


def _is_busy(exc: OperationalError) -> bool:
    """SQLite gave up waiting for another connection's lock."""
    orig = getattr(exc, "orig", None)
    name = getattr(orig, "sqlite_errorname", "")
    return name.startswith("SQLITE_BUSY") or "database is locked" in str(orig)


@contextmanager
def _commit_on_exit(session: Session) -> Iterator[None]:
    try:
        yield
        session.commit()
    except BaseException:
        session.rollback()
        raise
