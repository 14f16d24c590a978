"""``python -m device`` as a process: presses typed on stdin, acks printed, the will on a kill."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from dashdesk import wire
from device.run import run_device

REPO = Path(__file__).resolve().parents[2]
TOPICS = wire.Topics()
DEVICE = "shop-proc"
STATUS = TOPICS.status(DEVICE)
WAIT_S = 10.0


@pytest.fixture
def device_process(tmp_path, mosquitto):
    """Start ``python -m device`` on the test broker; yields (process, queue of stdout lines)."""
    config = tmp_path / "device.toml"
    config.write_text(f"""
device_id = "{DEVICE}"
mqtt_url = "mqtt://127.0.0.1:1"
queue_path = "{tmp_path / 'queue.sqlite3'}"
pin_factory = "mock"
keepalive_s = 1
[buttons.b1]
pin = 17
led = 27
[buttons.b2]
pin = 22
led = 23
""")
    with open(tmp_path / "stderr.log", "w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "device", "--config", str(config), "--mqtt-url", mosquitto],
            cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    yield proc, lines
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=WAIT_S)
    proc.stdin.close()


def line_starting(lines: queue.Queue, prefix: str) -> str:
    while True:
        line = lines.get(timeout=WAIT_S)
        if line.startswith(prefix):
            return line


def test_typed_press_is_published_its_ack_printed_and_a_kill_leaves_the_will(
        device_process, observer, observe):
    proc, lines = device_process
    observer.wait_for(STATUS, lambda m: m.payload == b"online")
    proc.stdin.write("b3\nb2 long\n")  # b3 does not exist: refused, the next line still counts
    proc.stdin.flush()
    [message] = observer.wait_for(TOPICS.press(DEVICE))
    press = wire.parse_press(DEVICE, message.payload)
    assert (press.button, press.press) == ("b2", "long")
    assert f"event_id={press.event_id}" in line_starting(lines, "press button=b2 press=long")

    observer.publish(TOPICS.ack(DEVICE), wire.dumps(wire.ack(press.event_id, "created", {"number": 12})))
    assert f"event_id={press.event_id}" in line_starting(lines, "ack button=b2 result=created ticket=12")

    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=WAIT_S) == -signal.SIGKILL
    observer.wait_for(STATUS, lambda m: m.payload == b"offline")
    [status] = observe().wait_for(STATUS)  # the will is retained
    assert (status.payload, status.retain) == (b"offline", True)


def test_sigterm_says_offline_and_exits_cleanly(device_process, observer):
    proc, _ = device_process
    observer.wait_for(STATUS, lambda m: m.payload == b"online")
    proc.terminate()
    assert proc.wait(timeout=WAIT_S) == 0
    observer.wait_for(STATUS, lambda m: m.payload == b"offline")


def test_bad_config_exits_with_status_2(capsys):
    assert run_device({"device_id": "Not Valid", "buttons": {}}, read_stdin=False) == 2
    assert "device_id" in capsys.readouterr().err
