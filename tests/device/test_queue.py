"""The press queue keeps every press until its final ack, across restarts and power cuts."""

import os
import signal
import subprocess
import sys

from device.queue import PressQueue


def test_press_stays_until_a_final_ack(tmp_path):
    q = PressQueue(tmp_path / "q.sqlite3")
    q.put("e1", "b1", b'{"event_id": "e1"}')
    q.ack("e1", "queued")  # held by the bridge, not yet a ticket
    assert [p.event_id for p in q.pending()] == ["e1"]
    q.ack("e1", "created")
    assert q.pending() == []
    q.close()
    q.close()  # safe twice


def test_queue_and_seq_survive_a_restart(tmp_path):
    q = PressQueue(tmp_path / "q.sqlite3")
    seqs = [q.next_seq() for _ in range(3)]
    q.put("e1", "b1", b"one")
    q.put("e2", "b2", b"two")
    q.close()
    q = PressQueue(tmp_path / "q.sqlite3")
    assert [(p.event_id, p.button, p.payload) for p in q.pending()] == [("e1", "b1", b"one"), ("e2", "b2", b"two")]
    assert q.next_seq() > max(seqs)
    q.close()


def test_put_survives_sigkill_right_after_it_returns(tmp_path):
    """A power cut an instant after the press was stored loses nothing."""
    path = tmp_path / "q.sqlite3"
    child = subprocess.Popen([sys.executable, "-c", (
        "import os, signal, sys\n"
        "from device.queue import PressQueue\n"
        f"q = PressQueue({str(path)!r})\n"
        "q.put('e-cut', 'b1', b'payload')\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n")], cwd=os.getcwd())
    assert child.wait(30) == -signal.SIGKILL
    q = PressQueue(path)
    assert [p.event_id for p in q.pending()] == ["e-cut"]
    q.close()
