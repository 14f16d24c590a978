"""The data dir's locks: one holder, named by its pid; let go when the holder exits, however it exits."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dashdesk import datalock

HOLD = """
import sys, time
from pathlib import Path
from dashdesk import datalock
lock = datalock.acquire(Path(sys.argv[1]), "the thing")
print("held", flush=True)
time.sleep(60)
"""


def _holder(path: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE)
    assert proc.stdout.readline() == b"held\n"
    return proc


def test_a_second_holder_is_refused_with_the_first_ones_pid_until_it_is_killed(tmp_path):
    path = tmp_path / "x.lock"
    first = _holder(path)
    try:
        with pytest.raises(datalock.Busy) as busy:
            datalock.acquire(path, "the thing")
        assert busy.value.pid == first.pid
        assert str(busy.value) == f"the thing is in use by pid {first.pid}"
        started = time.monotonic()
        with pytest.raises(datalock.Busy):
            datalock.acquire(path, "the thing", wait_s=0.3)
        assert time.monotonic() - started >= 0.3
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    with datalock.acquire(path, "the thing") as lock:  # the kernel let go of it
        assert path.read_text() == f"{os.getpid()}\n"
        lock.write("42\nbroker 43\n")
        assert datalock.holder(path, "it").holder == "42\nbroker 43"


def test_a_waiting_acquire_gets_the_lock_once_the_holder_exits(tmp_path):
    path = tmp_path / "x.lock"
    first = _holder(path)
    told = []
    killer = subprocess.Popen(["sh", "-c", f"sleep 0.5; kill {first.pid}"])
    try:
        with datalock.acquire(path, "the thing", wait_s=20, waiting=told.append):
            pass
    finally:
        first.kill()
        first.wait()
        killer.wait()
    assert [b.pid for b in told] == [first.pid]


def test_a_process_started_by_the_holder_does_not_keep_its_lock(tmp_path):
    path = tmp_path / "x.lock"
    lock = datalock.acquire(path, "the thing")
    child = subprocess.Popen(["sleep", "30"])
    try:
        lock.release()
        datalock.acquire(path, "the thing").release()
    finally:
        child.kill()
        child.wait()


@pytest.mark.parametrize("url, path", [
    ("sqlite:////var/lib/dashdesk/dashdesk.sqlite3", "/var/lib/dashdesk/dashdesk.sqlite3"),
    ("sqlite+pysqlite:////tmp/d.sqlite3?timeout=5", "/tmp/d.sqlite3"),
    ("sqlite://", None),
    ("sqlite:///:memory:", None),
    ("postgresql+psycopg://u:p@db/dashdesk", None),
])
def test_sqlite_file(url, path):
    assert datalock.sqlite_file(url) == (Path(path) if path else None)
