"""The agent against a real Mosquitto: status, presses, acks, re-sends, the will."""

import json
import os
import signal
import subprocess
import sys

from device.agent import DeviceAgent
from device.config import load_device_config

STATUS = "dashdesk/v1/devices/shop-test/status"
PRESS = "dashdesk/v1/devices/shop-test/press"
ACK = "dashdesk/v1/devices/shop-test/ack"


def ack(event_id, result="created"):
    return json.dumps({"event_id": event_id, "result": result,
                       "ticket": {"id": 1, "number": "INC-000001", "status": "new", "category": "printer"},
                       "reason": None})


def test_online_press_and_ack_empty_the_queue(device_config, observer, wait_until):
    agent = DeviceAgent(load_device_config(device_config))
    agent.start()
    try:
        observer.wait_for(STATUS, lambda m: m.payload == b"online")
        wait_until(lambda: agent.connected, what="the agent to connect")
        event = agent.press("b1", "long")
        msg = observer.wait_for(PRESS)[0]
        body = json.loads(msg.payload)
        assert (body["event_id"], body["device_id"], body["button"], body["press"]) == (
            event.event_id, "shop-test", "b1", "long")
        assert msg.qos == 1 and body["seq"] >= 1 and body["pressed_at"].endswith("Z")
        observer.publish(ACK, ack(event.event_id, "queued"))
        wait_until(lambda: [p.state for p in agent.queue.pending()] == ["queued"], what="the queued mark")
        observer.publish(ACK, ack(event.event_id))
        wait_until(lambda: agent.queue.pending() == [], what="the queue to empty")
    finally:
        agent.stop()
    observer.wait_for(STATUS, lambda m: m.payload == b"offline")


def test_unacked_press_is_sent_again_with_the_same_event_id_after_restart(device_config, observer, wait_until):
    agent = DeviceAgent(load_device_config(device_config))
    agent.start()
    wait_until(lambda: agent.connected, what="the agent to connect")
    event = agent.press("b2")
    observer.wait_for(PRESS)
    agent.stop()

    again = DeviceAgent(load_device_config(device_config))
    again.start()
    try:
        sent = observer.wait_for(PRESS, count=2)
        assert [json.loads(m.payload)["event_id"] for m in sent] == [event.event_id] * 2
        observer.publish(ACK, ack(event.event_id))
        wait_until(lambda: again.queue.pending() == [], what="the queue to empty")
    finally:
        again.stop()


def test_will_says_offline_when_the_device_dies(device_config, observer, tmp_path):
    config = tmp_path / "device.toml"
    lines = [f'{k} = {json.dumps(v)}' for k, v in device_config.items() if not isinstance(v, dict)]
    lines += ["[timings]"] + [f"{k} = {v}" for k, v in device_config["timings"].items()]
    lines += ["[buttons.b1]", "pin = 17", "led = 27"]
    config.write_text("\n".join(lines) + "\n")
    proc = subprocess.Popen([sys.executable, "-m", "device", "--config", str(config)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        observer.wait_for(STATUS, lambda m: m.payload == b"online")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    # keepalive_s is 2 in the fixture: the broker gives up on it after 1.5 keepalives.
    observer.wait_for(STATUS, lambda m: m.payload == b"offline", timeout=15)
