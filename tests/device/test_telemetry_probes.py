"""Telemetry snapshots and health probes, against a real HTTP server, TCP listener and lpstat."""

from __future__ import annotations

import socket
import stat
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import metadata
from pathlib import Path

import pytest

from dashdesk import wire
from device.probes import Probe, build_probes, run_probes
from device.telemetry import TelemetryReporter, default_interface, snapshot, wifi_rssi


class Health(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 503)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def http_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def listener():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield sock.getsockname()[1]
    sock.close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fake_lpstat(directory: Path, output: str) -> None:
    script = directory / "lpstat"
    script.write_text(f"#!/bin/sh\n[ \"$1\" = -p ] && [ \"$2\" = Front_Desk ] || exit 1\necho '{output}'\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)


def cups(printer: str = "Front_Desk") -> Probe:
    return build_probes([{"name": "printer", "kind": "cups", "printer": printer}])[0]


def test_snapshot_has_hostname_uptime_firmware_and_time():
    data = snapshot()
    assert data["hostname"] == socket.gethostname()
    assert isinstance(data["uptime_s"], int) and data["uptime_s"] > 0
    assert data["firmware"] == metadata.version("dashdesk")
    assert abs(wire.parse_time(data["reported_at"]) - wire.utcnow()) < timedelta(seconds=5)
    assert "probes" not in data


def test_snapshot_ip_is_the_address_the_default_route_leaves_from():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("192.0.2.1", 9))  # TEST-NET-1: routed by default, nothing is sent
            expected = sock.getsockname()[0]
        except OSError:  # no default route: the ip is not known
            expected = None
    assert snapshot().get("ip") == expected


def test_http_probe_is_ok_only_for_2xx(http_url):
    good, bad, down = build_probes([
        {"name": "app", "kind": "http", "url": f"{http_url}/health"},
        {"name": "broken", "kind": "http", "url": f"{http_url}/broken"},
        {"name": "down", "kind": "http", "url": f"http://127.0.0.1:{closed_port()}/", "timeout_s": 1},
    ])
    assert good.run()["ok"] is True and good.run()["detail"] == "HTTP 200"
    assert bad.run() | {"ms": 0} == {"ok": False, "detail": "HTTP 503", "ms": 0}
    result = down.run()
    assert result["ok"] is False and "refused" in result["detail"].lower()


def test_tcp_probe_needs_a_listener(listener):
    up, down = build_probes([
        {"name": "till", "kind": "tcp", "host": "127.0.0.1", "port": listener},
        {"name": "gone", "kind": "tcp", "host": "127.0.0.1", "port": closed_port(), "timeout_s": 1},
    ])
    assert up.run()["ok"] is True
    assert down.run()["ok"] is False


def test_cups_probe_without_lpstat_fails_with_a_reason(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no lpstat
    result = cups().run()
    assert result["ok"] is False and "lpstat not found" in result["detail"]


@pytest.mark.parametrize("output, ok", [
    ("printer Front_Desk is idle.  enabled since Mon 23 Nov 2026 08:00:00", True),
    ("printer Front_Desk now printing Front_Desk-42.  enabled since Mon 23 Nov 2026", True),
    ("printer Front_Desk disabled since Mon 23 Nov 2026 08:00:00 -", False),
])
def test_cups_probe_reads_lpstat(tmp_path, monkeypatch, output, ok):
    fake_lpstat(tmp_path, output)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert cups().run() | {"ms": 0} == {"ok": ok, "detail": output, "ms": 0}


def test_cups_probe_reports_lpstat_failing(tmp_path, monkeypatch):
    fake_lpstat(tmp_path, "unused")
    monkeypatch.setenv("PATH", str(tmp_path))
    result = cups("Back_Office").run()
    assert result["ok"] is False and "exited with 1" in result["detail"]


def test_a_probe_that_raises_counts_as_failed():
    def broken():
        raise RuntimeError("boom")
    assert run_probes([Probe("x", "custom", broken)])["x"]["ok"] is False


@pytest.mark.parametrize("confs, message", [
    ([{"name": "p", "kind": "smoke-signal"}], "kind must be one of cups, http, tcp"),
    ([{"name": "p", "kind": "http"}], "needs 'url'"),
    ([{"kind": "tcp", "host": "h", "port": 1}], "needs a name"),
    ([{"name": "p", "kind": "tcp", "host": "h", "port": 1}] * 2, "two probes"),
])
def test_bad_probe_settings_are_refused(confs, message):
    with pytest.raises(ValueError, match=message):
        build_probes(confs)


def test_snapshot_carries_probe_results_by_name(http_url, listener, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    data = snapshot(build_probes([
        {"name": "sales-app", "kind": "http", "url": f"{http_url}/health"},
        {"name": "till", "kind": "tcp", "host": "127.0.0.1", "port": listener},
        {"name": "printer", "kind": "cups", "printer": "Front_Desk"},
    ]))
    assert {name: r["ok"] for name, r in data["probes"].items()} == {
        "sales-app": True, "till": True, "printer": False}
    assert all(isinstance(r["detail"], str) for r in data["probes"].values())
    assert wire.parse_telemetry(wire.dumps(data)) == data  # the bridge's own check passes


def test_reporter_publishes_at_once_then_every_interval_and_caches_the_last(wait_until):
    published: list[dict] = []
    reporter = TelemetryReporter([], published.append, interval_s=0.2)
    assert reporter.latest == {}
    reporter.start()
    wait_until(lambda: len(published) >= 3, what="three reports")
    reporter.stop()
    count = len(published)
    assert reporter.latest is published[-1]
    assert all("hostname" in p for p in published)
    time.sleep(0.5)
    assert len(published) == count  # stopped means stopped


def test_default_interface_and_wifi_signal_are_read_from_proc_text():
    routes = ("Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\n"
              "eth0\t0002A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\n"
              "wlan0\t00000000\t0102A8C0\t0003\t0\t0\t600\t00000000\n")
    wireless = ("Inter-| sta-|   Quality        |   Discarded packets               | Missed | WE\n"
                " face | tus | link level noise |  nwid  crypt   frag  retry   misc | beacon | 22\n"
                " wlan0: 0000   58.  -52.  -256        0      0      0      0     12        0\n")
    assert default_interface(routes) == "wlan0"
    assert default_interface(routes.splitlines()[0]) is None
    assert wifi_rssi(wireless, "wlan0") == -52
    assert wifi_rssi(wireless, "eth0") is None
