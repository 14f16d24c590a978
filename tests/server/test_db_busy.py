"""Another process holding SQLite's write lock: a write waits a bounded time, then fails ``DatabaseBusy``
(the API answers 503), instead of holding a server thread for as long as the lock is held."""

import sqlite3
import threading
import time

import pytest
from sqlalchemy import text

from server import db as dbmod
from server.db import Database, DatabaseBusy


@pytest.fixture
def database(tmp_path, monkeypatch):
    monkeypatch.setattr(dbmod, "SQLITE_BUSY_TIMEOUT_MS", 300)
    monkeypatch.setattr(dbmod, "WRITE_QUEUE_WAIT_S", 0.3)
    path = tmp_path / "d.sqlite3"
    d = Database(f"sqlite:///{path}")
    with d.write() as s:
        s.execute(text("CREATE TABLE t (x INTEGER)"))
    yield d, path
    d.close()


def test_writes_give_up_on_a_lock_another_process_holds_and_work_once_it_goes(database):
    d, path = database
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    failures, took = [], []

    def write() -> None:
        started = time.monotonic()
        try:
            with d.write() as s:
                s.execute(text("INSERT INTO t VALUES (1)"))
        except DatabaseBusy as exc:
            failures.append(str(exc))
        took.append(time.monotonic() - started)

    # One waits in SQLite's busy loop, the others behind it in this process: each gives up in bounded time.
    threads = [threading.Thread(target=write) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(failures) == 4 and max(took) < 0.3 + 0.3 + 1.0, (failures, took)
    with d.read() as s:  # reads go on meanwhile
        assert s.execute(text("SELECT count(*) FROM t")).scalar() == 0
    other.execute("ROLLBACK")
    other.close()
    write()
    with d.read() as s:
        assert s.execute(text("SELECT count(*) FROM t")).scalar() == 1


def test_a_write_that_need_not_happen_gives_up_at_once_and_leaves_the_connection_as_it_was(database):
    d, path = database
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    started = time.monotonic()
    with pytest.raises(DatabaseBusy):
        with d.write(wait=False) as s:
            s.execute(text("INSERT INTO t VALUES (1)"))
    assert time.monotonic() - started < 0.1  # not the busy timeout (0.3 s here)
    other.execute("ROLLBACK")
    other.close()
    # another thread of this process writing: at once too
    with d.write():
        with pytest.raises(DatabaseBusy):
            with d.write(wait=False):
                pass
    with d.write(wait=False) as s:
        s.execute(text("INSERT INTO t VALUES (2)"))
    with d.read() as s:
        assert s.execute(text("SELECT x FROM t")).scalars().all() == [2]
        # the pooled connection waits for other writers again as every writer does
        assert s.execute(text("PRAGMA busy_timeout")).scalar() == dbmod.SQLITE_BUSY_TIMEOUT_MS
