"""The device agent (gpiozero's MockFactory pins) against the real broker, bridge and server."""

import os
import signal
import subprocess
import sys
import uuid

import pytest

from device.queue import PressQueue
from tests.stack import wait_until

DEVICE_TOML = """
device_id = "{device_id}"
queue_path = "{queue}"
pin_factory = "mock"
[timings]
telemetry_interval_s = 3600
ack_timeout_s = 30
[buttons.b1]
pin = 17
led = 27
"""


class DeviceProcess:
    """``python -m device`` with presses typed on its standard input."""

    def __init__(self, root, broker_url, device_id):
        self.device_id = device_id
        self.queue = root / f"{device_id}.sqlite3"
        self.config = root / f"{device_id}.toml"
        self.config.write_text(DEVICE_TOML.format(device_id=device_id, queue=self.queue))
        self.log = root / f"{device_id}.log"
        self.broker_url = broker_url
        self.proc = None

    def start(self):
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "device", "--config", str(self.config), "--mqtt-url", self.broker_url],
                stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def type(self, line):
        self.proc.stdin.write(f"{line}\n".encode())
        self.proc.stdin.flush()

    def queued(self):
        q = PressQueue(self.queue)
        try:
            return len(q.pending())
        finally:
            q.close()

    def power_cut(self):
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)


@pytest.fixture
def device(fresh_stack, tmp_path):
    d = DeviceProcess(tmp_path, fresh_stack.broker.url, f"pi-{uuid.uuid4().hex[:8]}")
    yield d
    d.stop()


def test_keyboard_press_on_the_device_becomes_a_ticket_and_empties_its_queue(fresh_stack, device):
    fresh_stack.map_button(device.device_id, "b1", "printer")
    device.start()
    device.type("b1")
    tickets = wait_until(lambda: fresh_stack.tickets(device_id=device.device_id), what="the device's ticket")
    assert tickets[0]["category"] == "printer"
    wait_until(lambda: device.queued() == 0, what="the acked press to leave the device's queue")
    wait_until(lambda: "INC-" in device.log.read_text(), what="the device to report the ack")


def test_presses_queued_on_a_device_survive_a_power_cut_and_arrive_once(fresh_stack, device):
    stack = fresh_stack
    stack.broker.stop()  # the shop's network is down
    device.start()
    for _ in range(3):
        device.type("b1")
    wait_until(lambda: device.queued() == 3, what="three presses in the device's queue")
    device.power_cut()

    stack.broker.start()
    device.start()
    tickets = wait_until(lambda: stack.tickets(device_id=device.device_id), timeout=30, what="the ticket")
    wait_until(lambda: device.queued() == 0, timeout=30, what="the device's queue to empty")
    tickets = stack.tickets(device_id=device.device_id)
    assert len(tickets) == 1 and tickets[0]["occurrences"] == 3
    presses = stack.api("GET", f"/api/v1/tickets/{tickets[0]['id']}").json()["presses"]
    assert len({p["event_id"] for p in presses}) == 3
