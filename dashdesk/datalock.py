"""One process per role on a data dir: a lock file held with ``flock``, the holder's pid in it.

``dashdesk up`` holds ``DIR/up.lock``; ``dashdesk server`` holds a lock beside its SQLite
database, ``dashdesk bridge`` one beside its outbox. A second process finds the lock
taken and refuses to start, naming the pid that holds it (``Busy``). The kernel lets go
of a lock when its holder exits, however it exits (SIGKILL, a power cut), so there is
nothing stale to clean up. The lock's file descriptor is not inherited: a process the
holder starts does not keep its lock alive, unless the holder hands it on on purpose
(``Lock.fd`` with ``pass_fds``, as ``up`` does with the lock its parts share).
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from pathlib import Path
from typing import Callable

# How often a waiting process looks at a lock again.
POLL_S = 0.1


class Busy(RuntimeError):
    """The lock is held by another process: ``pid`` (None if it has not written it yet), ``holder``
    (the pid file's whole text: what holds it, one line each)."""

    def __init__(self, path: Path, what: str, pid: int | None, holder: str):
        self.path, self.what, self.pid, self.holder = path, what, pid, holder
        by = f"pid {pid}" if pid is not None else "a process that has not written its pid yet"
        super().__init__(f"{what} is in use by {by}")


class Lock:
    """A held lock; ``release`` (or the holder's exit) lets it go."""

    def __init__(self, path: Path, fd: int):
        self.path, self.fd = path, fd

    def write(self, text: str) -> None:
        """Replace what the lock file says about its holder (first line: its pid)."""
        data = text.encode()
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, data, 0)

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # closing the last descriptor of the open file lets go of the flock
            self.fd = -1

    def __enter__(self) -> "Lock":
        return self

    def __exit__(self, *_: object) -> None:
        self.release()


def lock_path(resource: Path, role: str) -> Path:
    """The lock file of ``role`` (``server``, ``bridge``) on ``resource``: beside it, ``NAME.ROLE.lock``."""
    return resource.with_name(f"{resource.name}.{role}.lock")


def sqlite_file(url: str) -> Path | None:
    """The database file of an SQLite URL (``sqlite:///path``); None for another database or an in-memory one."""
    if not url.startswith("sqlite"):
        return None
    _, sep, rest = url.partition(":///")
    path = rest.split("?", 1)[0]
    if not sep or not path or path == ":memory:" or path.startswith("file:"):
        return None
    return Path(path).resolve()


def acquire(path: Path, what: str, *, wait_s: float = 0.0, text: str | None = None,
            waiting: Callable[[Busy], None] | None = None, stop: Callable[[], bool] | None = None) -> Lock:
    """Take the lock at ``path`` and write ``text`` (default: this process's pid) in it; raise ``Busy``
    if another process holds it, at once or, with ``wait_s``, once it has held it that long.

    ``what`` names the thing locked, for the message ("DIR is in use by pid 42"). ``waiting`` is called
    once, with the ``Busy`` it would raise, when it starts to wait; ``stop()`` true ends the wait early.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    deadline = time.monotonic() + wait_s
    told = False
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
            busy = holder(path, what)
            if time.monotonic() >= deadline or (stop is not None and stop()):
                raise busy
            if waiting is not None and not told:
                waiting(busy)
                told = True
            time.sleep(POLL_S)
    except BaseException:
        os.close(fd)
        raise
    lock = Lock(path, fd)
    lock.write(text if text is not None else f"{os.getpid()}\n")
    return lock


def holder(path: Path, what: str) -> Busy:
    """What the lock file at ``path`` says about its holder, as the ``Busy`` to raise."""
    text = ""
    for _ in range(10):  # the holder truncates, then writes: give it a moment
        try:
            text = path.read_text(errors="replace")
        except OSError:
            text = ""
        if text.strip():
            break
        time.sleep(0.02)
    first = text.strip().split("\n", 1)[0].split()
    pid = int(first[0]) if first and first[0].isdigit() else None
    return Busy(path, what, pid, text.strip())
