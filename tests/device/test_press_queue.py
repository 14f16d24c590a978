"""The SQLite press queue: kept until a final ack, durable across restarts and kills."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from device.queue import PressQueue

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "queue.sqlite3"


def test_presses_wait_oldest_first_until_a_final_ack(path):
    q = PressQueue(path)
    q.put("e1", "b1", b'{"n":1}')
    q.put("e2", "b2", b'{"n":2}')
    q.put("e3", "b1", b'{"n":3}')
    assert [(p.event_id, p.button, p.payload, p.state) for p in q.pending()] == [
        ("e1", "b1", b'{"n":1}', "pending"), ("e2", "b2", b'{"n":2}', "pending"),
        ("e3", "b1", b'{"n":3}', "pending")]
    answered = q.ack("e2", "created")
    assert (answered.event_id, answered.button) == ("e2", "b2")
    assert [p.event_id for p in q.pending()] == ["e1", "e3"]
    q.close()


def test_queued_ack_marks_the_press_but_keeps_it(path):
    q = PressQueue(path)
    q.put("e1", "b1", b"{}")
    assert q.ack("e1", "queued").state == "queued"
    assert [(p.event_id, p.state) for p in q.pending()] == [("e1", "queued")]
    q.ack("e1", "merged")
    assert q.pending() == []
    q.close()


@pytest.mark.parametrize("result", ["created", "merged", "reopened", "cancelled", "rejected"])
def test_every_final_result_removes_the_press(path, result):
    q = PressQueue(path)
    q.put("e1", "b1", b"{}")
    assert q.ack("e1", result) is not None
    assert q.pending() == []
    q.close()


def test_ack_for_an_unknown_event_changes_nothing_and_bad_results_are_refused(path):
    q = PressQueue(path)
    q.put("e1", "b1", b"{}")
    assert q.ack("nope", "created") is None
    with pytest.raises(ValueError):
        q.ack("e1", "accepted")
    assert [p.event_id for p in q.pending()] == ["e1"]
    q.close()


def test_publish_attempts_are_counted(path):
    q = PressQueue(path)
    q.put("e1", "b1", b"{}")
    q.put("e2", "b1", b"{}")
    q.sent(["e1"])
    q.sent(["e1", "e2"])
    assert [(p.event_id, p.attempts) for p in q.pending()] == [("e1", 2), ("e2", 1)]
    q.close()


def test_queue_survives_close_and_reopen(path):
    q = PressQueue(path)
    q.put("e1", "b1", b'{"a":1}')
    q.ack("e1", "queued")
    q.put("e2", "b2", b'{"a":2}')
    q.close()
    q.close()  # a second close is harmless
    with pytest.raises(RuntimeError):
        q.put("e3", "b1", b"{}")
    q = PressQueue(path)
    assert [(p.event_id, p.payload, p.state) for p in q.pending()] == [
        ("e1", b'{"a":1}', "queued"), ("e2", b'{"a":2}', "pending")]
    q.close()


def test_seq_keeps_increasing_across_restarts(path):
    q = PressQueue(path)
    assert [q.next_seq(), q.next_seq(), q.next_seq()] == [1, 2, 3]
    q.close()
    q = PressQueue(path)
    assert q.next_seq() == 4
    q.close()


def test_database_is_in_wal_mode(path):
    PressQueue(path).close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


def test_press_stored_by_a_process_killed_right_after_put_is_there(path):
    child = textwrap.dedent(f"""
        import sys, time
        from device.queue import PressQueue
        q = PressQueue({str(path)!r})
        seq = q.next_seq()
        q.put("killed-1", "b1", b'{{"seq":%d}}' % seq)
        print("stored", flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", child], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "stored"
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=10) == -signal.SIGKILL
    proc.stdout.close()
    q = PressQueue(path)
    assert [(p.event_id, p.payload) for p in q.pending()] == [("killed-1", b'{"seq":1}')]
    assert q.next_seq() == 2
    q.close()
