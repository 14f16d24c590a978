"""The system under measure: a broker, ``dashdesk server`` and ``dashdesk bridge``, each its own process.

Started on free ports of 127.0.0.1 in a directory of the benchmark's: Mosquitto (with the dynamic security
plugin if ``auth``) or the embedded broker, as ``dashdesk up`` starts them (``launcher.broker``), then the
server and the bridge as the ``dashdesk`` command runs them. Data goes in through the HTTP API only.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

from dashdesk.mqtt import url_with_credentials
from launcher import broker as dd_broker
from launcher import broker_setup
from server.domain.mosquitto import ADMIN_USERNAME, BRIDGE_USERNAME, DynsecAccounts

# The API token of the server's admin, made at its first start (DASHDESK_ADMIN_TOKEN).
ADMIN_TOKEN = "bench-admin-token-0123456789"
ADMIN_PASSWORD = "bench-admin-password-0123"
DASHDESK = [sys.executable, "-m", "launcher.cli"]


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


class Broker:
    """Mosquitto (``auth``: every client its own account, as ``[broker] auth = "dynsec"``), or the embedded
    broker (``embedded``: MQTT 3.1.1 only), on a free port."""

    def __init__(self, data_dir: Path, *, auth: bool = False, embedded: bool = False):
        self.data_dir, self.auth, self.embedded = data_dir, auth, embedded
        self.port = dd_broker.free_port()
        self.proc: subprocess.Popen | None = None
        self.secrets = broker_setup.prepare(data_dir) if auth else None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        if self.embedded:
            from launcher.embedded_broker import start_embedded

            self.proc = start_embedded(self.data_dir, self.port)
            return
        self.proc = dd_broker.start_mosquitto(self.data_dir, self.port,
                                              dynsec_config=self.secrets.dynsec_config if self.secrets else None)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


class Part:
    """One ``dashdesk`` process (server or bridge), its output in a log file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path):
        self.name, self.argv, self.env, self.log = name, argv, env, log
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.argv, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


class Stack:
    """A broker, the ticket server and the bridge in ``root``; ``env`` is what the parts run with (change it
    before :meth:`start`)."""

    def __init__(self, root: Path, *, env: dict[str, str] | None = None, auth: bool = False,
                 embedded: bool = False):
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.broker = Broker(root / "broker", auth=auth, embedded=embedded)
        self.accounts: DynsecAccounts | None = None
        self.http_port = dd_broker.free_port()
        self.base = f"http://127.0.0.1:{self.http_port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("DASHDESK_")}
        self.env.update({
            "DASHDESK_CONFIG": str(root / "none.toml"),
            "DASHDESK_ADMIN_TOKEN": ADMIN_TOKEN,
            "DASHDESK_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "DASHDESK_DATA_DIR": str(root / "data"),
            "DASHDESK_DATABASE_URL": f"sqlite:///{root / 'server.sqlite3'}",
            "DASHDESK_MQTT_URL": self.broker.url,
            "DASHDESK_SERVER_URL": self.base,
            "DASHDESK_HTTP_PORT": str(self.http_port),
        })
        if self.broker.secrets is not None:
            self.env["DASHDESK_BROKER__AUTH"] = "dynsec"
            self.env["DASHDESK_BROKER_ADMIN_URL"] = self.broker.secrets.url(ADMIN_USERNAME, self.broker.url)
        self.env.update(env or {})
        self.server = Part("server", DASHDESK + ["server"], self.env, root / "server.log")
        self.ready_file = root / "bridge.ready"
        self.bridge = Part("bridge", DASHDESK + ["bridge", "--data-dir", str(root / "bridge"), "--ready-file",
                                                str(self.ready_file)], self.env, root / "bridge.log")
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"

    def start(self) -> "Stack":
        self.broker.start()
        bridge_url = self.broker.url
        if self.broker.secrets is not None:
            self.accounts = broker_setup.set_up_service_accounts(self.broker.secrets, self.broker.url)
            bridge_url = url_with_credentials(self.broker.url, BRIDGE_USERNAME,
                                              self.accounts.service_passwords[BRIDGE_USERNAME])
        self.start_server()
        token = self.make_token("bridge (benchmark)", "bridge")
        self.bridge.env = {**self.env, "DASHDESK_API_TOKEN": token, "DASHDESK_BRIDGE_MQTT_URL": bridge_url}
        self.ready_file.unlink(missing_ok=True)
        self.bridge.start()
        _wait(lambda: self.ready_file.exists() or self.bridge.proc.poll() is not None, 30, "the bridge")
        if self.bridge.proc.poll() is not None:
            raise RuntimeError(f"the bridge exited: {self.logs('bridge')}")
        return self

    def start_server(self) -> None:
        self.server.env = self.env
        self.server.start()

        def healthy() -> bool:
            if self.server.proc.poll() is not None:
                raise RuntimeError(f"the server exited: {self.logs('server')}")
            try:
                return requests.get(self.base + "/healthz", timeout=1).status_code == 200
            except requests.RequestException:
                return False

        _wait(healthy, 60, "the server's /healthz")

    def stop(self) -> None:
        self.bridge.stop()
        self.server.stop()
        self.broker.stop()

    def logs(self, name: str) -> str:
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.http.request(method, self.base + path, timeout=10, **kwargs)

    def make_token(self, name: str, role: str) -> str:
        r = self.api("POST", "/api/v1/tokens", json={"name": name, "role": role})
        if r.status_code != 201:
            raise RuntimeError(f"no token: {r.status_code} {r.text}")
        return r.json()["token"]

    def tickets(self, **params: Any) -> list[dict[str, Any]]:
        params.setdefault("limit", 500)
        r = self.api("GET", "/api/v1/tickets", params=params)
        r.raise_for_status()
        return r.json()["items"]

    def map_button(self, device_id: str, button: str, category: str, **extra: Any) -> None:
        r = self.api("PUT", f"/api/v1/devices/{device_id}/buttons/{button}", json={"category": category, **extra})
        r.raise_for_status()
