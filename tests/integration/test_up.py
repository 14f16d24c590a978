"""`dashdesk up --demo` as a newcomer runs it: ready line, a press, a ticket, a clean stop."""

import json
import os
import re
import subprocess
import sys
import threading

import requests

from launcher import broker
from launcher.broker import free_port
from tests.stack import PYTHON, Up, wait_until


def test_up_demo_press_makes_a_ticket_and_stops_cleanly(tmp_path):
    http_port, mqtt_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASHDESK_")}
    env["DASHDESK_CONFIG"] = str(tmp_path / "none.toml")
    up = subprocess.Popen([sys.executable, "-m", "launcher.cli", "up", "--demo", "--http-port", str(http_port),
                           "--mqtt-port", str(mqtt_port), "--data-dir", str(tmp_path / "data")],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(iter(up.stdout.readline, b"")), daemon=True).start()
    try:
        wait_until(lambda: any(b"dashdesk ready: http://127.0.0.1:%d" % http_port in line for line in lines),
                   timeout=60, what="the ready line")
        # Mosquitto is installed here, so `--broker auto` runs it, and says so.
        assert any(line.startswith(b"broker: Mosquitto ") and b"mqtt://127.0.0.1:%d" % mqtt_port in line
                   for line in lines), lines
        assert not any(b"embedded MQTT broker" in line for line in lines)

        out = subprocess.run([sys.executable, "-m", "launcher.cli", "press", "shop-demo", "b1", "--mqtt-url",
                              f"mqtt://127.0.0.1:{mqtt_port}"], capture_output=True, env=env, timeout=30)
        assert out.returncode == 0, out.stderr
        ack = json.loads(out.stdout.decode().strip().splitlines()[-1])
        assert ack["result"] == "created" and ack["ticket"]["category"] == "printer"

        token = (tmp_path / "data" / "admin.token").read_text().strip()
        api = requests.Session()
        api.headers["Authorization"] = f"Bearer {token}"
        base = f"http://127.0.0.1:{http_port}/api/v1/tickets"
        assert [t["number"] for t in api.get(base).json()["items"]] == [ack["ticket"]["number"]]

        # A key typed at `up` presses a button of the simulated device.
        up.stdin.write(b"b2\n")
        up.stdin.flush()
        tills = wait_until(lambda: api.get(base, params={"category": "till"}).json()["items"], timeout=20,
                           what="the simulated device's press")
        assert tills[0]["device_id"] == "shop-demo" and tills[0]["site"] == "shop-demo"
        # its health probe looks for the ticket server where this `up` runs it, not on port 8080
        probes = wait_until(lambda: (api.get(f"http://127.0.0.1:{http_port}/api/v1/devices/shop-demo").json()
                                     .get("telemetry") or {}).get("probes"), timeout=20,
                            what="the demo device's telemetry")
        probe = probes["ticket-server"]
        assert (probe["ok"], probe["detail"]) == (True, f"connected to 127.0.0.1:{http_port}")

        # The desk: `up --demo` made web user admin a password, kept 0600, and says where.
        password_file = tmp_path / "data" / "admin.password"
        assert (b"desk: sign in at http://127.0.0.1:%d/ as admin, with the password in %s\n"
                % (http_port, str(password_file).encode())) in lines, lines
        assert password_file.stat().st_mode & 0o777 == 0o600
        # The database (password and token hashes, shops' contacts), the tokens and the outbox: 0600 too.
        for name in ("dashdesk.sqlite3", "dashdesk.sqlite3-wal", "dashdesk.sqlite3-shm", "admin.token",
                     "bridge.token", "bridge-outbox.sqlite3"):
            assert (tmp_path / "data" / name).stat().st_mode & 0o777 == 0o600, name
        web = requests.Session()
        login = web.get(f"http://127.0.0.1:{http_port}/login")
        csrf = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', login.text).group(1)
        signed = web.post(f"http://127.0.0.1:{http_port}/login", allow_redirects=False, data={
            "csrf_token": csrf, "username": "admin", "password": password_file.read_text().strip()})
        assert signed.status_code == 302 and signed.headers["Location"] == "/"
        assert ack["ticket"]["number"] in web.get(f"http://127.0.0.1:{http_port}/").text
    finally:
        up.terminate()
        assert up.wait(60) == 0


def test_up_mosquitto_websockets_listener_takes_a_press(tmp_path):
    ws_port = free_port()
    up = Up(tmp_path / "data", "--demo", "--broker", "mosquitto", "--ws-port", str(ws_port))
    try:
        up.wait_ready()
        assert f"broker: Mosquitto {'.'.join(map(str, broker.mosquitto_version()))} on " \
               f"mqtt://127.0.0.1:{up.mqtt_port}, WebSockets ws://127.0.0.1:{ws_port}/mqtt" in up.lines
        # Mosquitto before 2.0.12 cannot keep a websockets listener to 127.0.0.1: `up` says so.
        exposed = broker.listens_on_every_interface(ws_port)
        assert exposed == (not broker.ws_binds_loopback())
        assert any(line.startswith(f"WARNING: this Mosquitto binds its WebSockets listener (port {ws_port})")
                   for line in up.lines) == exposed
        # paho with transport="websockets", MQTT 5 (Mosquitto speaks it on either listener).
        out = up.press("shop-demo", "b2", url=f"ws://127.0.0.1:{ws_port}/mqtt")
        assert out.returncode == 0, out.stderr
        ack = json.loads(out.stdout.decode().strip().splitlines()[-1])
        assert ack["result"] == "created" and ack["ticket"]["category"] == "till"
        assert b"MQTT 3.1.1" not in out.stderr  # no fallback needed
        assert [t["number"] for t in up.tickets()] == [ack["ticket"]["number"]]
    finally:
        assert up.stop() == 0


def test_up_replaces_a_revoked_bridge_token_and_the_presses_it_held_back_become_tickets(tmp_path):
    """Revoked while `up` runs, the bridge's token makes presses wait (`queued`); the next `up` gives the bridge
    a new token, and each waiting press becomes a ticket once."""
    data = tmp_path / "data"
    up = Up(data, "--demo", "--ws-port", "0")
    try:
        up.wait_ready()
        first = up.press("shop-demo", "b1")
        assert first.returncode == 0, first.stderr
        old = (data / "bridge.token").read_text().strip()
        [row] = [t for t in up.http.get(up.base + "/api/v1/tokens", timeout=10).json()["items"]
                 if t["role"] == "bridge"]
        assert up.http.delete(f"{up.base}/api/v1/tokens/{row['id']}", timeout=10).status_code == 200
        held = subprocess.run([*PYTHON, "press", "shop-demo", "b1", "--timeout", "3", "--mqtt-url",
                               f"mqtt://127.0.0.1:{up.mqtt_port}"], capture_output=True, env=up.env, timeout=30)
        assert held.returncode == 3, held.stderr
        acks = [json.loads(line) for line in held.stdout.decode().splitlines()]
        assert [a["result"] for a in acks] == ["queued"]
    finally:
        assert up.stop() == 0

    again = Up(data, "--demo", "--ws-port", "0")
    try:
        again.wait_ready()
        new = (data / "bridge.token").read_text().strip()
        assert new != old and (data / "bridge.token").stat().st_mode & 0o777 == 0o600
        tickets = wait_until(lambda: [t for t in again.tickets(category="printer") if t["occurrences"] == 2],
                             timeout=30, what="the held-back press in the ticket")
        detail = again.http.get(f"{again.base}/api/v1/tickets/{tickets[0]['id']}", timeout=10).json()
        assert sorted(p["event_id"] for p in detail["presses"]) == sorted(
            [json.loads(first.stdout.decode().splitlines()[-1])["event_id"], acks[0]["event_id"]])
        tokens = again.http.get(again.base + "/api/v1/tokens", timeout=10).json()["items"]
        # the revoked one (oldest first), and the one `up` made in its place
        assert [t["revoked_at"] is None for t in tokens if t["role"] == "bridge"] == [False, True]
    finally:
        assert again.stop() == 0
