"""Telemetry: system facts and health probes against real local servers."""

import http.server
import socket
import threading

import pytest

from device.probes import build_probes, run_probes
from device.telemetry import snapshot


@pytest.fixture
def http_server():
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/health" else 503)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_snapshot_has_system_facts():
    data = snapshot()
    assert data["reported_at"].endswith("Z")
    assert data["hostname"] == socket.gethostname()
    assert data["uptime_s"] > 0


def test_probes_report_what_is_up_and_what_is_down(http_server, monkeypatch):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    monkeypatch.setenv("PATH", "/nonexistent")  # no lpstat here, as on a device without CUPS
    probes = build_probes([
        {"name": "app", "kind": "http", "url": f"{http_server}/health"},
        {"name": "app-broken", "kind": "http", "url": f"{http_server}/down"},
        {"name": "till", "kind": "tcp", "host": "127.0.0.1", "port": listener.getsockname()[1]},
        {"name": "till-off", "kind": "tcp", "host": "127.0.0.1", "port": closed_port, "timeout_s": 1},
        {"name": "printer", "kind": "cups", "printer": "Front_Desk"},
    ])
    results = run_probes(probes)
    listener.close()
    assert {name: r["ok"] for name, r in results.items()} == {
        "app": True, "app-broken": False, "till": True, "till-off": False, "printer": False}
    assert "503" in results["app-broken"]["detail"]
    assert "lpstat" in results["printer"]["detail"]


def test_bad_probe_settings_are_refused_with_a_reason():
    with pytest.raises(ValueError, match="url"):
        build_probes([{"name": "x", "kind": "http"}])
    with pytest.raises(ValueError, match="kind"):
        build_probes([{"name": "x", "kind": "smoke"}])
