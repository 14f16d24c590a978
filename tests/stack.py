"""Real parts for integration tests: Mosquitto, the server and the bridge as processes.

Nothing here is a fake: each part is the program a shop runs, started on free
ports with its own data directory, so a test can kill -9 or restart any of them.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import requests

from dashdesk import mqtt as dd_mqtt
from dashdesk import wire
from dashdesk.press_client import PressClient
from launcher import broker, broker_setup
from server.domain import mosquitto

ADMIN_TOKEN = "test-admin-token-0123456789"
# The password of web user ``admin``, made at the server's first start.
ADMIN_PASSWORD = "test-admin-password-0123"
PYTHON = [sys.executable, "-m", "launcher.cli"]


class NoFinalAck(AssertionError):
    """A press got no final ack (created, merged, rejected, ...) in time: the press was lost on the way."""


def wait_until(predicate: Any, timeout: float = 10.0, interval: float = 0.02, what: str = "condition",
               error: type[AssertionError] = AssertionError) -> Any:
    """``predicate()``'s first true value; ``error`` if none comes within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise error(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


class _BrokerProcess:
    """What both brokers share: a process listening on ``port`` (and ``ws_port``) of 127.0.0.1."""

    port: int
    ws_port: int | None
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.ws_port}/mqtt"

    def stop(self) -> None:
        """Stop cleanly (SIGTERM): Mosquitto saves its store."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


class Broker(_BrokerProcess):
    """A real Mosquitto with dashdesk's settings, on a free port.

    ``auth=True``: with the dynamic security plugin, as ``[broker] auth = "dynsec"``
    runs it: no anonymous clients, the admin's and bridge's passwords under ``data_dir``.
    """

    def __init__(self, data_dir: Path, port: int | None = None, *, auth: bool = False, ws: bool = False):
        """``ws=True``: also an MQTT-over-WebSockets listener (``ws_port``), as the phone app needs."""
        self.data_dir = data_dir
        self.port = port or broker.free_port()
        self.ws_port = broker.free_port() if ws else None
        self.proc: subprocess.Popen | None = None
        self.auth = auth
        self.secrets = broker_setup.prepare(data_dir) if auth else None

    def url_for(self, username: str, password: str) -> str:
        """This broker's URL with a username and password in it."""
        return dd_mqtt.url_with_credentials(self.url, username, password)

    @property
    def bridge_url(self) -> str:
        return self.secrets.url(mosquitto.BRIDGE_USERNAME, self.url)

    def accounts(self) -> mosquitto.DynsecAccounts:
        """The account manager, as the admin account."""
        return mosquitto.DynsecAccounts(self.secrets.url(mosquitto.ADMIN_USERNAME, self.url),
                                        service_passwords=self.secrets.passwords)

    def start(self) -> None:
        if self.auth:
            self.secrets = broker_setup.prepare(self.data_dir)
        self.proc = broker.start_mosquitto(self.data_dir, self.port, ws_port=self.ws_port,
                                           dynsec_config=self.secrets.dynsec_config if self.auth else None)


class EmbeddedBroker(_BrokerProcess):
    """The embedded broker (amqtt, ``python -m launcher.embedded_broker``), with ``Broker``'s face.

    It speaks MQTT 3.1.1 only and keeps everything in memory: a restart forgets its sessions.
    """

    def __init__(self, data_dir: Path, port: int | None = None, *, ws: bool = False):
        self.data_dir = data_dir
        self.port = port or broker.free_port()
        self.ws_port = broker.free_port() if ws else None
        self.proc = None

    def start(self) -> None:
        from launcher.embedded_broker import start_embedded

        self.proc = start_embedded(self.data_dir, self.port, self.ws_port)


class Part:
    """One dashdesk process (server or bridge) with its log in a file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path):
        self.name, self.argv, self.env, self.log = name, argv, env, log
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        out = open(self.log, "ab")
        self.proc = subprocess.Popen(self.argv, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        out.close()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)

    def kill(self) -> None:
        """SIGKILL the part and every process it started."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


class Stack:
    """Mosquitto + ticket server + bridge, each a real process, on free ports."""

    def __init__(self, root: Path, *, bridge_workers: int = 2, server_workers: int = 1, env: dict[str, str] | None = None,
                 auth: bool = False, ws: bool = False, embedded: bool = False):
        """``auth=True``: the broker asks every client for an account; the bridge has its own
        (``accounts`` gives devices theirs once started). ``ws=True``: the broker has a WebSockets
        listener too, and the server tells phones its port (``[app] ws_port``). ``embedded=True``:
        the embedded broker (amqtt) instead of Mosquitto; its clients must speak MQTT 3.1.1
        (``DASHDESK_MQTT__PROTOCOL=4`` in ``env``)."""
        if embedded and auth:
            raise ValueError("the embedded broker has no accounts")
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.auth = auth
        self.broker: Broker | EmbeddedBroker = (EmbeddedBroker(root / "broker", ws=ws) if embedded
                                                else Broker(root / "broker", auth=auth, ws=ws))
        self.accounts: mosquitto.DynsecAccounts | None = None
        self.http_port = broker.free_port()
        self.base = f"http://127.0.0.1:{self.http_port}"
        base_env = dict(os.environ)
        base_env.update({
            "DASHDESK_ADMIN_TOKEN": ADMIN_TOKEN,
            "DASHDESK_ADMIN_PASSWORD": ADMIN_PASSWORD,
            # The server's own files (its session key) stay under root.
            "DASHDESK_DATA_DIR": str(root / "data"),
            "DASHDESK_DATABASE_URL": f"sqlite:///{root / 'server.sqlite3'}",
            "DASHDESK_MQTT_URL": self.broker.url,
            "DASHDESK_SERVER_URL": self.base,
            "DASHDESK_API_TOKEN": ADMIN_TOKEN,
            "DASHDESK_HTTP_PORT": str(self.http_port),
            "DASHDESK_BRIDGE__RETRY_S": "0.3",
            "DASHDESK_BRIDGE__FEED_POLL_S": "0.1",
            "DASHDESK_BRIDGE__WORKERS": str(bridge_workers),
            "DASHDESK_CONFIG": str(root / "none.toml"),
        })
        if auth:
            base_env["DASHDESK_BRIDGE_MQTT_URL"] = self.broker.bridge_url
            # The server hands devices their accounts (approve, retire, replace) as the account manager.
            base_env["DASHDESK_BROKER__AUTH"] = "dynsec"
            base_env["DASHDESK_BROKER_ADMIN_URL"] = self.broker.secrets.url(mosquitto.ADMIN_USERNAME,
                                                                           self.broker.url)
        if ws:
            base_env["DASHDESK_APP__WS_PORT"] = str(self.broker.ws_port)
        base_env.update(env or {})
        self.env = base_env
        self.server = Part("server", PYTHON + ["server", "--workers", str(server_workers)], base_env,
                           root / "server.log")
        self.ready_file = root / "bridge.ready"
        self.bridge = Part("bridge", PYTHON + ["bridge", "--data-dir", str(root / "bridge"),
                                               "--ready-file", str(self.ready_file)], base_env, root / "bridge.log")
        # The bridge's API token: one with the bridge role, as `dashdesk up` gives it (made once the server
        # runs; None: the admin token). A test may set another before starting the bridge again.
        self.bridge_token: str | None = None
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"

    # ------------------------------------------------------------ parts

    def start(self) -> "Stack":
        self.broker.start()
        if self.auth:
            self.accounts = self.broker.accounts()
            self.accounts.ensure_service_accounts()
        self.start_server()
        self.bridge_token = self.make_token("bridge (tests)", "bridge")
        self.start_bridge()
        return self

    def start_server(self) -> None:
        self.server.start()
        wait_until(self._healthy, timeout=60, what="the server's /healthz")

    def start_bridge(self) -> None:
        self.ready_file.unlink(missing_ok=True)
        # Everything the stack's parts share (tests change it), with the bridge's own token.
        self.bridge.env = {**self.env, "DASHDESK_API_TOKEN": self.bridge_token or ADMIN_TOKEN}
        self.bridge.start()
        wait_until(lambda: self.ready_file.exists() or self.bridge.proc.poll() is not None, timeout=30,
                   what="the bridge to subscribe")
        assert self.bridge.proc.poll() is None, self.logs("bridge")

    def _healthy(self) -> bool:
        if self.server.proc.poll() is not None:
            raise AssertionError(f"server exited: {self.logs('server')}")
        try:
            return requests.get(self.base + "/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def stop(self) -> None:
        self.bridge.stop()
        self.server.stop()
        self.broker.stop()

    def logs(self, name: str) -> str:
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    # ------------------------------------------------------------ API

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.http.request(method, self.base + path, timeout=10, **kwargs)

    def make_token(self, name: str, role: str) -> str:
        """A new API token, made through the API."""
        r = self.api("POST", "/api/v1/tokens", json={"name": name, "role": role})
        assert r.status_code == 201, r.text
        return r.json()["token"]

    def tickets(self, **params: Any) -> list[dict[str, Any]]:
        params.setdefault("limit", 500)
        r = self.api("GET", "/api/v1/tickets", params=params)
        assert r.status_code == 200, r.text
        return r.json()["items"]

    def map_button(self, device_id: str, button: str, category: str, **extra: Any) -> None:
        r = self.api("PUT", f"/api/v1/devices/{device_id}/buttons/{button}", json={"category": category, **extra})
        assert r.status_code == 200, r.text

    def place(self, device_id: str, site: str) -> None:
        r = self.api("POST", "/api/v1/devices", json={"device_id": device_id, "site": site})
        assert r.status_code in (200, 201), r.text


class Presser(PressClient):
    """A real MQTT client that publishes presses as devices do and collects every ack (and every device's
    ticket summary): ``dashdesk.press_client.PressClient``, waiting for the broker's PUBACK of each publish."""

    def __init__(self, url: str, topics: wire.Topics = wire.Topics(), protocol: int = 5):
        try:
            super().__init__(url, topics=topics, protocol=protocol, name="test-presser")
        except (ConnectionError, TimeoutError) as exc:
            raise AssertionError(f"presser did not subscribe: {exc}") from None

    def publish(self, topic: str, payload: bytes | str, *, wait: bool = True) -> None:
        super().publish(topic, payload, wait=wait)

    def final_ack(self, event_id: str, timeout: float = 10.0, device_id: str | None = None) -> dict[str, Any]:
        """The first final ack of ``event_id`` (on ``device_id``'s ack topic only, if given: an event_id is
        unique per device only); :class:`NoFinalAck` if none came within ``timeout``."""
        ack = self.wait_final(event_id, timeout, device_id)
        if ack is None:
            raise NoFinalAck(f"timed out after {timeout} s waiting for a final ack for {event_id}")
        return ack


# ---------------------------------------------------------------- faults


class SlowLink:
    """A real TCP hop to the server on 127.0.0.1:``port`` that holds back what passes, as a slow or stalling
    network (or a client process stalled mid-send) would; point a part's server URL at ``url``.

    Requests whose first bytes are ``prefix`` (the presses, by default) wait ``delay_s`` before they go on;
    ``stall_next()``: the next one's body is sent but for its last byte (the server's body deadline then
    answers 408). Answers pass as they come.
    """

    def __init__(self, port: int, prefix: bytes = b"POST /api/v1/incidents"):
        self.upstream, self.prefix = port, prefix
        self.delay_s = 0.0
        self.stalled = 0  # requests stalled so far
        self._stall = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stall_next(self) -> None:
        with self._lock:
            self._stall += 1

    def close(self) -> None:
        self._closed = True
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
                server = socket.create_connection(("127.0.0.1", self.upstream))
            except OSError:
                continue
            threading.Thread(target=self._requests, args=(client, server), daemon=True).start()
            threading.Thread(target=self._answers, args=(server, client), daemon=True).start()

    def _answers(self, server: socket.socket, client: socket.socket) -> None:
        try:
            while data := server.recv(65536):
                client.sendall(data)
        except OSError:
            pass
        finally:
            for s in (client, server):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def _requests(self, client: socket.socket, server: socket.socket) -> None:
        to_send: int | None = None  # of a stalled request: the bytes still passed on
        try:
            while data := client.recv(65536):
                if to_send is None and data.startswith(self.prefix):
                    if self.delay_s:
                        time.sleep(self.delay_s)
                    with self._lock:
                        stall, self._stall = self._stall > 0, max(0, self._stall - 1)
                    if stall:
                        self.stalled += 1
                        head = data.index(b"\r\n\r\n") + 4  # the request line and headers come in one piece
                        length = int(re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", data[:head]).group(1))
                        to_send = head + length - 1
                if to_send is not None:
                    part, to_send = data[:to_send], max(0, to_send - len(data))
                    if part:
                        server.sendall(part)
                    continue
                server.sendall(data)
        except OSError:
            pass
        finally:
            for s in (client, server):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def counted(stack: Stack, devices: list[str]) -> dict[str, int]:
    """Presses counted per event, through the API: {event_id: number of tickets holding it}."""
    seen: dict[str, int] = {}
    for device in devices:
        for t in stack.tickets(device_id=device):
            presses = ticket_presses(stack, t["id"])
            for p in presses:
                seen[p["event_id"]] = seen.get(p["event_id"], 0) + 1
            assert t["occurrences"] == len([p for p in presses if not p["cancelled"]])
    return seen


def ticket_presses(stack: Stack, ticket_id: int) -> list[dict[str, Any]]:
    """Every press of a ticket, oldest first, page by page (``GET /api/v1/tickets/{id}`` answers the newest)."""
    presses: list[dict[str, Any]] = []
    params: dict[str, Any] = {"presses_limit": 500, "history_limit": 1}
    while True:
        page = stack.api("GET", f"/api/v1/tickets/{ticket_id}", params=params).json()
        presses[:0] = page["presses"]
        if page["presses_next"] is None:
            assert len(presses) == page["presses_total"]
            return presses
        params["presses_before"] = page["presses_next"]


def kill_bridge_mid_stream(stack: Stack, presser: Presser, devices: list[str], presses: int = 400,
                           acked_first: int = 60) -> list[str]:
    """Publish ``presses`` presses round robin from ``devices``; once ``acked_first`` of them have an
    ack, SIGKILL the bridge; when all are published, start it again. The presses' event ids."""
    events: list[str] = []

    def publish() -> None:
        for i in range(presses):
            events.append(presser.press(devices[i % len(devices)], "b1"))

    publisher = threading.Thread(target=publish)
    publisher.start()
    wait_until(lambda: sum(1 for e in list(events) if presser.ack_results(e)) >= acked_first,
               what="some presses acked")
    stack.bridge.kill()
    publisher.join()
    time.sleep(0.5)
    stack.start_bridge()
    return events


def presses_across_broker_restart(stack: Stack, device: str, presses: int,
                                  protocol: int = 5) -> tuple[Presser, list[str]]:
    """With the bridge stopped, publish ``presses`` presses of ``device``; stop the broker cleanly,
    start it again, then the bridge. A presser on the restarted broker, and the presses' event ids."""
    stack.bridge.stop()
    p = Presser(stack.broker.url, protocol=protocol)
    events = [p.press(device, "b1") for _ in range(presses)]
    p.close()
    stack.broker.stop()  # SIGTERM: Mosquitto writes its store
    stack.broker.start()
    p = Presser(stack.broker.url, protocol=protocol)
    try:
        stack.start_bridge()
    except BaseException:
        p.close()
        raise
    return p, events


class Up:
    """``dashdesk up`` as a user runs it, on free ports, its stdout lines collected."""

    def __init__(self, data_dir: Path, *args: str, env: dict[str, str] | None = None, http_port: int | None = None,
                 mqtt_port: int | None = None):
        """``http_port``, ``mqtt_port``: these ports (those of an earlier `up`, say), else free ones."""
        self.http_port, self.mqtt_port = http_port or broker.free_port(), mqtt_port or broker.free_port()
        self.data_dir = data_dir
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("DASHDESK_")}
        self.env["DASHDESK_CONFIG"] = str(data_dir.parent / "none.toml")
        self.env.update(env or {})
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            PYTHON + ["up", "--http-port", str(self.http_port), "--mqtt-port", str(self.mqtt_port),
                      "--data-dir", str(data_dir), *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=self.env)
        threading.Thread(target=self._read, daemon=True).start()
        self.http = requests.Session()

    def _read(self) -> None:
        for line in iter(self.proc.stdout.readline, b""):
            self.lines.append(line.decode(errors="replace").rstrip("\n"))

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def wait_ready(self, timeout: float = 60) -> None:
        wait_until(lambda: f"dashdesk ready: {self.base}" in self.lines or self.proc.poll() is not None,
                   timeout=timeout, what="the ready line")
        assert self.proc.poll() is None, f"`dashdesk up` exited with {self.proc.returncode}: {self.lines}"
        self.http.headers["Authorization"] = f"Bearer {(self.data_dir / 'admin.token').read_text().strip()}"

    def press(self, device_id: str, button: str, url: str | None = None,
              timeout: float = 30) -> subprocess.CompletedProcess:
        """``dashdesk press`` against this broker (or ``url``)."""
        return subprocess.run(PYTHON + ["press", device_id, button, "--mqtt-url",
                                        url or f"mqtt://127.0.0.1:{self.mqtt_port}"],
                              capture_output=True, env=self.env, timeout=timeout)

    def type(self, line: str) -> None:
        """Type a line at `up` (the demo device presses a button)."""
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def tickets(self, **params: Any) -> list[dict[str, Any]]:
        r = self.http.get(self.base + "/api/v1/tickets", params=params, timeout=10)
        assert r.status_code == 200, r.text
        return r.json()["items"]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                return self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise
        return self.proc.returncode
