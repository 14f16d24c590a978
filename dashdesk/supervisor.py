"""``dashdesk up``: every part as its own process, restarted if it dies, stopped in order.

Each part runs alone (``dashdesk server``, ``dashdesk bridge``, ...), so a
crash of one is a crash of one; the supervisor starts them in the order the
flow needs and stops them the other way round, so nothing acknowledged is
lost on SIGINT or SIGTERM.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from . import broker, config as dd_config

log = logging.getLogger("dashdesk.up")

# A part that dies is started again, but not faster than this, so a part that
# cannot start does not spin.
RESTART_DELAY_S = 1.0
START_TIMEOUT_S = 60.0


class Part:
    def __init__(self, name: str, argv: list[str], env: dict[str, str], stdin: int | None = None):
        self.name, self.argv, self.env, self.stdin = name, argv, env, stdin
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(self.argv, env=self.env, stdin=self.stdin if self.stdin is not None
                                     else subprocess.DEVNULL, start_new_session=True)

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop within %s s; killing it", self.name, timeout)
            self.proc.kill()
            self.proc.wait()


class Supervisor:
    def __init__(self, cfg: dict[str, Any], *, mqtt_port: int | None = None, mqtt_url: str | None = None,
                 demo: bool = False):
        self.cfg = cfg
        self.data_dir = Path(cfg.get("data_dir") or "./dashdesk-data").resolve()
        self.http_port = int(cfg["server"]["http_port"])
        self.mqtt_port = mqtt_port or 1883
        self.mqtt_url = mqtt_url or (cfg["mqtt"]["url"] if os.environ.get("DASHDESK_MQTT_URL") else None)
        self.demo = demo
        self.parts: list[Part] = []
        self.mosquitto: subprocess.Popen | None = None
        self._stop = threading.Event()

    # ------------------------------------------------------------ set-up

    def _prepare_database(self) -> dict[str, str]:
        """Migrate, seed, and make the tokens the parts use; return the environment for them."""
        from server.app import bootstrap, database_url, load_categories, seed
        from server.db import Database
        from server.migrate import upgrade

        url = database_url(self.cfg)
        upgrade(url)
        db = Database(url)
        seed(db, *load_categories())
        bootstrap(db, os.environ)
        env = {"DASHDESK_DATABASE_URL": url, "DASHDESK_DATA_DIR": str(self.data_dir)}
        env["DASHDESK_API_TOKEN"] = self._token_file(db, "bridge.token", "bridge", "bridge")
        if self.demo:
            from server.demo import setup_demo

            setup_demo(db)
            if not os.environ.get("DASHDESK_ADMIN_TOKEN"):
                self._token_file(db, "admin.token", "admin (demo)", "admin")
        db.close()
        return env

    def _token_file(self, db: Any, filename: str, name: str, role: str) -> str:
        from server.auth import create_token

        path = self.data_dir / filename
        token = path.read_text().strip() if path.exists() else None
        token = create_token(db, name, role, token)
        if not path.exists():
            path.touch(mode=0o600)
            path.write_text(token + "\n")
        return token

    def _env(self, extra: dict[str, str]) -> dict[str, str]:
        env = dict(os.environ)
        env.update(extra)
        env["DASHDESK_MQTT_URL"] = self.mqtt_url or f"mqtt://127.0.0.1:{self.mqtt_port}"
        env["DASHDESK_HTTP_PORT"] = str(self.http_port)
        env["DASHDESK_SERVER_URL"] = f"http://127.0.0.1:{self.http_port}"
        return env

    def _wait_http(self, proc: subprocess.Popen) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited with {proc.returncode}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/healthz", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise TimeoutError("the server did not answer /healthz")

    def _wait_file(self, path: Path, proc: subprocess.Popen) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not path.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{path.name} did not appear")
            time.sleep(0.05)

    # ------------------------------------------------------------ run

    def run(self) -> int:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        signal.signal(signal.SIGTERM, lambda *_: self._stop.set())
        signal.signal(signal.SIGINT, lambda *_: self._stop.set())
        try:
            self._start_all()
        except Exception as exc:
            log.error("could not start: %s", exc)
            self._stop_all()
            return 1
        print(f"dashdesk ready: http://127.0.0.1:{self.http_port}", flush=True)
        if self.demo:
            print(f"demo: press with `dashdesk press shop-demo b1` (b1 printer, b2 till, b3 sales app), or type "
                  f"`b1`, `b2 long`, `b1 double` here; API token in {self.data_dir / 'admin.token'}", flush=True)
            threading.Thread(target=self._forward_stdin, daemon=True).start()
        while not self._stop.wait(0.5):
            self._restart_dead()
        self._stop_all()
        return 0

    def _start_all(self) -> None:
        env = self._env(self._prepare_database())
        if self.mqtt_url is None:
            self.mosquitto = broker.start_mosquitto(self.data_dir, self.mqtt_port)
        exe = [sys.executable, "-m", "dashdesk.cli"]
        server = Part("server", exe + ["server", "--http-port", str(self.http_port)], env)
        server.start()
        self.parts.append(server)
        self._wait_http(server.proc)
        ready = self.data_dir / "bridge.ready"
        ready.unlink(missing_ok=True)
        bridge = Part("bridge", exe + ["bridge", "--ready-file", str(ready)], env)
        bridge.start()
        self.parts.append(bridge)
        self._wait_file(ready, bridge.proc)
        if self.demo:
            device_cfg = dd_config.default_file("demo-device.toml")
            demo = Part("device", exe + ["device", "--device-config", str(device_cfg),
                                         "--mqtt-url", env["DASHDESK_MQTT_URL"]], env, stdin=subprocess.PIPE)
            demo.start()
            self.parts.append(demo)

    def _forward_stdin(self) -> None:
        """Hand lines typed at ``up`` to the simulated device (``b1``, ``b2 long``)."""
        device = next(p for p in self.parts if p.name == "device")
        for line in sys.stdin:
            if device.proc and device.proc.stdin and device.proc.poll() is None:
                device.proc.stdin.write(line.encode())
                device.proc.stdin.flush()

    def _restart_dead(self) -> None:
        for part in self.parts:
            if part.proc is not None and part.proc.poll() is not None and not self._stop.is_set():
                log.warning("%s exited with %s; starting it again", part.name, part.proc.returncode)
                time.sleep(RESTART_DELAY_S)
                part.start()
        if self.mosquitto is not None and self.mosquitto.poll() is not None and not self._stop.is_set():
            log.warning("the broker exited with %s; starting it again", self.mosquitto.returncode)
            self.mosquitto = broker.start_mosquitto(self.data_dir, self.mqtt_port)

    def _stop_all(self) -> None:
        # The device first (no new presses), the bridge next (it finishes what it holds),
        # then the server, then the broker, which saves its store on SIGTERM.
        for part in reversed(self.parts):
            part.stop()
        if self.mosquitto is not None and self.mosquitto.poll() is None:
            self.mosquitto.terminate()
            self.mosquitto.wait(20)
