"""``dashdesk up``: every part as its own process, restarted if it dies, stopped in order.

Each part runs alone (``dashdesk server``, ``dashdesk bridge``, ...), so a
crash of one is a crash of one; the supervisor starts them in the order the
flow needs and stops them the other way round, so nothing acknowledged is
lost on SIGINT, SIGTERM or SIGHUP (the terminal closed).

The parts never outlive ``up``: each gets SIGTERM from the kernel when ``up``
dies, however it dies (Linux's parent-death signal), and stops as it would
for ``up``. One ``up`` per data dir: ``DIR/up.lock`` refuses a second one, and
``DIR/up-parts.lock``, which the parts hold as long as any of them runs, lets
an ``up`` started while those of a killed one are still stopping wait for them.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
import tomllib
import urllib.request
from pathlib import Path
from typing import Any

from dashdesk import config as dd_config
from dashdesk import datalock
from dashdesk.mqtt import url_with_credentials
from server.domain.mosquitto import BRIDGE_USERNAME

from . import broker, broker_setup

log = logging.getLogger("dashdesk.up")

# A part that dies is started again, but not faster than this, so a part that
# cannot start does not spin.
RESTART_DELAY_S = 1.0
START_TIMEOUT_S = 60.0
# The WebSockets listener's port unless --ws-port says otherwise (a free one if taken).
DEFAULT_WS_PORT = 9001
BROKERS = ("auto", "mosquitto", "embedded")
# The signal each part gets from the kernel when `up` dies. SIGTERM, not SIGKILL: each part then stops
# as `up` would stop it (the bridge finishes the presses in hand, the server its requests, Mosquitto
# saves its store), and whatever it holds unacknowledged the broker hands over again.
PARENT_DEATH_SIGNAL = signal.SIGTERM
# How long a new `up` waits for the parts of an `up` that died to stop, before it refuses to start.
PARTS_STOP_WAIT_S = 30.0
_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = PARENT_DEATH_SIGNAL) -> Any:
    """A ``preexec_fn`` that makes the kernel send ``sig`` to the child when this process (the thread that
    starts it) dies; None where there is no such thing (not Linux).

    It runs in the child between fork and exec: only what was bound here, no imports, no locks.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    parent, getppid, exit_now = os.getpid(), os.getppid, os._exit

    def in_child() -> None:
        prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)  # refused (a sandbox, say): the part runs without it
        if getppid() != parent:  # `up` died before the signal was armed: it will never come
            exit_now(70)

    return in_child


def demo_device_toml(source: str, http_port: int, mqtt_url: str | None = None) -> str:
    """The demo device's file (``source``) for an `up` whose server listens on ``http_port``: its
    ``ticket-server`` probe checks that port, and its ``mqtt_url`` is ``mqtt_url`` if given."""
    out, table, probe = [], "", None
    for line in source.splitlines(keepends=True):
        stripped = line.strip()
        if stripped.startswith("["):
            table, probe = stripped, None
        elif table == "[[probes]]" and re.match(r"name\s*=", stripped):
            probe = tomllib.loads(stripped)["name"]
        elif table == "[[probes]]" and probe == "ticket-server" and re.match(r"port\s*=", stripped):
            line = f"port = {http_port}\n"
        elif mqtt_url is not None and table == "" and re.match(r"mqtt_url\s*=", stripped):
            line = f"mqtt_url = {json.dumps(mqtt_url)}\n"
        out.append(line)
    text = "".join(out)
    probes = [p for p in tomllib.loads(text).get("probes", []) if p.get("name") == "ticket-server"]
    if any(p.get("port") != http_port for p in probes):
        raise ValueError("the demo device's ticket-server probe has no port line to set")
    return text


class BrokerChoiceError(RuntimeError):
    """The broker asked for cannot run here."""


class DataDirInUse(RuntimeError):
    """Another `up` runs on the data dir, or the parts of one that died still do."""


class Part:
    def __init__(self, name: str, argv: list[str], env: dict[str, str], stdin: int | None = None,
                 popen: dict[str, Any] | None = None):
        """``popen``: more arguments for ``subprocess.Popen`` (the parent-death signal, the parts' lock)."""
        self.name, self.argv, self.env, self.stdin = name, argv, env, stdin
        self.popen = popen or {}
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        # Its own session: a Ctrl+C at `up` reaches `up` alone, which stops the parts in order.
        self.proc = subprocess.Popen(self.argv, env=self.env, stdin=self.stdin if self.stdin is not None
                                     else subprocess.DEVNULL, start_new_session=True, **self.popen)

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
                 demo: bool = False, broker_kind: str = "auto", ws_port: int | None = None):
        """``broker_kind``: which broker to run (unless ``mqtt_url`` names one); ``ws_port``: its
        WebSockets listener's port, None for the default (9001, or a free port), 0 for none."""
        if broker_kind not in BROKERS:
            raise ValueError(f"broker must be one of {', '.join(BROKERS)}, not {broker_kind!r}")
        self.cfg = cfg
        self.data_dir = Path(cfg.get("data_dir") or "./dashdesk-data").resolve()
        self.http_port = int(cfg["server"]["http_port"])
        self.mqtt_port = mqtt_port or 1883
        self.mqtt_url = mqtt_url or (cfg["mqtt"]["url"] if os.environ.get("DASHDESK_MQTT_URL") else None)
        self.demo = demo
        self.broker_kind = broker_kind
        self.ws_port_asked = ws_port
        self.ws_port: int | None = None
        self.protocol = int(cfg["mqtt"].get("protocol", 5))
        broker_cfg = cfg.get("broker", {})
        # "dynsec": the broker `up` starts asks every client for its own account (broker_setup).
        self.auth = dd_config.broker_auth(cfg)
        self.broker_host = str(broker_cfg.get("host") or "127.0.0.1")
        self.dynsec_plugin = str(broker_cfg.get("dynsec_plugin") or "") or None
        self.secrets: broker_setup.ServiceSecrets | None = None
        self.bridge_mqtt_url: str | None = None  # with the bridge's credentials, when auth is on
        self.demo_device_config: Path | None = None  # the demo device's file with its credentials
        self.demo_password_file: Path | None = None  # the desk's admin password, made for the demo
        self.demo_enrolment_link: str | None = None  # sets up a phone as a demo shop button (the phone app)
        self.parts: list[Part] = []
        self.mosquitto: subprocess.Popen | None = None  # the broker process, Mosquitto or embedded
        self._stop = threading.Event()
        self._lock: datalock.Lock | None = None  # DIR/up.lock: this `up`'s alone
        self._parts_lock: datalock.Lock | None = None  # DIR/up-parts.lock: handed on to every part

    # ------------------------------------------------------------ set-up

    def prepare_database(self) -> dict[str, str]:
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
            from server.domain.demo import setup_demo

            setup_demo(db)
            if not os.environ.get("DASHDESK_ADMIN_TOKEN"):
                self._token_file(db, "admin.token", "admin (demo)", "admin")
            if not os.environ.get("DASHDESK_ADMIN_PASSWORD"):
                self._demo_admin_password(db)
            self.demo_enrolment_link = self._demo_enrolment(db)
        db.close()
        return env

    def _demo_enrolment(self, db: Any) -> str | None:
        """A one-time link that sets up a phone as a button of the demo shop; None if phones cannot connect."""
        from server.domain import enrolments
        from server.domain.demo import DEMO_DEVICE, DEMO_SITE

        app_cfg = self.cfg.get("app", {}) or {}
        if not self.ws_port and not app_cfg.get("broker_ws_url"):
            return None
        with db.write() as s:
            made = enrolments.create(s, DEMO_SITE[0], "dashdesk up --demo", source_device=DEMO_DEVICE)
        base = str(app_cfg.get("public_url") or f"http://127.0.0.1:{self.http_port}").rstrip("/")
        return f"{base}/app/enroll/{made.code}"

    def _demo_admin_password(self, db: Any) -> None:
        """The desk's web user ``admin`` for the demo, its password made once and kept in DIR/admin.password."""
        import secrets

        from server.domain.users import bootstrap_admin

        path = self.data_dir / "admin.password"
        if not path.exists():
            password = secrets.token_urlsafe(12)
            if not bootstrap_admin(db, password):
                return  # an admin made earlier keeps the password it has
            path.touch(mode=0o600)
            path.write_text(password + "\n")
        self.demo_password_file = path

    def _token_file(self, db: Any, filename: str, name: str, role: str) -> str:
        """The API token of ``role`` kept in ``DIR/filename`` (0600), made if there is none; one revoked (or of
        another role) is replaced by a new one, so the parts always start with a token that works."""
        from server.domain.tokens import ensure_token

        path = self.data_dir / filename
        old = path.read_text().strip() if path.exists() else ""
        token = ensure_token(db, name, role, old or None)
        if token != old:
            if old:
                log.warning("the API token in %s was revoked (or is not a %s token): a new one replaces it", path,
                            role)
            broker_setup.write_private_file(path, token + "\n")
        return token

    def _env(self, extra: dict[str, str]) -> dict[str, str]:
        env = dict(os.environ)
        env.update(extra)
        env["DASHDESK_MQTT_URL"] = self.mqtt_url or self._local_url()
        env["DASHDESK_MQTT__PROTOCOL"] = str(self.protocol)
        env["DASHDESK_BROKER__AUTH"] = self.auth
        if self.mqtt_url is None:
            # The broker is ours: the bridge's URL, with its own account's password, is the bridge's alone
            # (_bridge_env).
            env.pop("DASHDESK_BRIDGE_MQTT_URL", None)
            # The phone app connects to the broker's WebSockets listener (0: there is none).
            env["DASHDESK_APP__WS_PORT"] = str(self.ws_port or 0)
        env["DASHDESK_HTTP_PORT"] = str(self.http_port)
        env["DASHDESK_SERVER_URL"] = f"http://127.0.0.1:{self.http_port}"
        return env

    def _bridge_env(self, env: dict[str, str]) -> dict[str, str]:
        """The bridge's environment: the parts' (``env``), and with the broker `up` runs, the bridge's URL with
        its own account's credentials (none when auth is off), which the bridge takes from there alone. With
        another broker (``--mqtt-url``) the bridge's URL is the operator's: ``DASHDESK_BRIDGE_MQTT_URL`` or
        ``[bridge] mqtt_url``, else ``[mqtt] url``."""
        if self.mqtt_url is not None:
            return env
        return {**env, "DASHDESK_BRIDGE_MQTT_URL": self.bridge_mqtt_url or ""}

    # ------------------------------------------------------------ broker

    def _local_url(self) -> str:
        return f"mqtt://{broker.local_address(self.broker_host)}:{self.mqtt_port}"

    def choose_broker(self) -> None:
        """Settle ``broker_kind`` (mosquitto, embedded or external), the protocol and the ws port."""
        if self.mqtt_url is not None:
            self.broker_kind = "external"
            return
        self._check_auth()
        if self.broker_kind == "auto":
            self.broker_kind = "mosquitto" if broker.find_mosquitto() else "embedded"
        if self.broker_kind == "mosquitto" and broker.find_mosquitto() is None:
            raise BrokerChoiceError("Mosquitto is not installed: `apt-get install mosquitto`, "
                                    "or --broker embedded, or --mqtt-url")
        if self.broker_kind == "embedded":
            from . import embedded_broker

            if not embedded_broker.available():
                raise BrokerChoiceError("no Mosquitto here and the embedded broker needs amqtt: "
                                        "`apt-get install mosquitto` or `pip install 'amqtt==0.12.1'`")
            self.protocol = embedded_broker.PROTOCOL  # amqtt speaks MQTT 3.1.1 only
        asked = self.ws_port_asked
        if asked == 0:
            self.ws_port = None
        elif asked is not None:
            self.ws_port = asked
        elif self.broker_kind == "mosquitto" and not broker.ws_binds_loopback():
            # Not by default: this Mosquitto would open it, without a password, to the network.
            self.ws_port = None
        else:
            self.ws_port = DEFAULT_WS_PORT if port_free(DEFAULT_WS_PORT) else broker.free_port()

    def _check_auth(self) -> None:
        """Refuse a broker setting that cannot work, or that opens the broker to everyone."""
        if self.auth not in dd_config.BROKER_AUTH_MODES:
            raise BrokerChoiceError(f"[broker] auth must be one of {', '.join(dd_config.BROKER_AUTH_MODES)}, "
                                    f"not {self.auth!r}")
        if self.auth == "dynsec":
            if self.broker_kind == "embedded":
                raise BrokerChoiceError('[broker] auth = "dynsec" needs Mosquitto 2; the embedded broker has no '
                                        "accounts")
            if broker.find_mosquitto() is None:
                raise BrokerChoiceError('[broker] auth = "dynsec" needs Mosquitto 2: `apt-get install mosquitto`')
            if broker.find_dynsec_plugin(self.dynsec_plugin) is None:
                raise BrokerChoiceError("Mosquitto's dynamic security plugin (mosquitto_dynamic_security.so) was "
                                        "not found: set [broker] dynsec_plugin to its path")
            self.broker_kind = "mosquitto"
        elif not broker.is_loopback(self.broker_host):
            raise BrokerChoiceError(f"[broker] host = {self.broker_host!r} opens the broker to other machines: "
                                    'set [broker] auth = "dynsec" too, so that each device needs its own password')

    def _start_broker(self) -> subprocess.Popen:
        if self.broker_kind == "embedded":
            from .embedded_broker import start_embedded

            return start_embedded(self.data_dir, self.mqtt_port, self.ws_port, popen=self._popen())
        return broker.start_mosquitto(self.data_dir, self.mqtt_port, ws_port=self.ws_port, host=self.broker_host,
                                      dynsec_config=self.secrets.dynsec_config if self.secrets else None,
                                      dynsec_plugin=self.dynsec_plugin, popen=self._popen())

    def _set_up_accounts(self) -> None:
        """Give the bridge (and the demo device) their accounts on the broker just started."""
        assert self.secrets is not None
        local = self._local_url()
        accounts = broker_setup.set_up_service_accounts(self.secrets, local, protocol=self.protocol,
                                                        topic_root=self.cfg["mqtt"].get("topic_root", "dashdesk/v1"))
        self.bridge_mqtt_url = url_with_credentials(local, BRIDGE_USERNAME,
                                                    accounts.service_passwords[BRIDGE_USERNAME])
        if self.demo:
            # A copy of the demo device's file with its credentials in mqtt_url: not on a command line,
            # where every user of the machine could read them.
            source = dd_config.default_file("demo-device.toml").read_text()
            device_id = tomllib.loads(source)["device_id"]
            url = url_with_credentials(local, device_id, accounts.add_device(device_id))
            path = self.secrets.directory / "demo-device.toml"
            broker_setup.write_private_file(path, demo_device_toml(source, self.http_port, url))
            self.demo_device_config = path

    def _demo_device_argv(self, env: dict[str, str]) -> list[str]:
        """Where the demo device finds its file (and broker): a copy whose probe checks this server's port."""
        if self.demo_device_config is not None:  # with its broker credentials (_set_up_accounts)
            return ["--device-config", str(self.demo_device_config)]
        source = dd_config.default_file("demo-device.toml").read_text()
        path = self.data_dir / "demo-device.toml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(demo_device_toml(source, self.http_port))
        return ["--device-config", str(path), "--mqtt-url", env["DASHDESK_MQTT_URL"]]

    def _broker_lines(self) -> list[str]:
        """What `up` says about the broker it runs, before the ready line."""
        if self.broker_kind == "external":
            return [f"broker: external, {self.mqtt_url}"]
        ws = f", WebSockets ws://{broker.local_address(self.broker_host)}:{self.ws_port}/mqtt" if self.ws_port else ""
        if self.broker_kind == "embedded":
            from .embedded_broker import amqtt_version

            lines = [f"WARNING: using the embedded MQTT broker (amqtt {amqtt_version()}), not Mosquitto: "
                     "MQTT 3.1.1 only (devices must use protocol 4), sessions and queued messages kept in "
                     "memory only (a broker restart loses them; devices re-send what was not acknowledged); "
                     "install Mosquitto (`apt-get install mosquitto`) for a shop"]
            return lines + [f"broker: embedded (amqtt, MQTT 3.1.1) on mqtt://127.0.0.1:{self.mqtt_port}{ws}"]
        version = ".".join(map(str, broker.mosquitto_version() or ())) or "?"
        lines = [f"broker: Mosquitto {version} on {self._local_url()}{ws}"]
        if self.auth == "dynsec":
            lines.append(f"broker accounts: each device needs its own (`dashdesk broker device-credentials "
                         f"DEVICE_ID`); listening on {self.broker_host}")
        if self.ws_port and broker.listens_on_every_interface(self.ws_port):
            unguarded = ", without a password" if self.auth == "none" else ""
            lines.append(f"WARNING: this Mosquitto binds its WebSockets listener (port {self.ws_port}) to every "
                         f"network interface{unguarded} (fixed in Mosquitto 2.0.12)")
        elif self.ws_port_asked is None and not self.ws_port:
            lines.append("note: no WebSockets listener: this Mosquitto would open it to every network "
                         "interface (fixed in 2.0.12); --ws-port PORT opens it anyway")
        return lines

    def _phone_line(self) -> str:
        """What `up --demo` says about the phone app."""
        app = f"http://127.0.0.1:{self.http_port}/app"
        if self.demo_enrolment_link:
            return (f"phone app: {app}; set a phone up as a demo shop button with this one-time link (24 h), or "
                    f"its QR code at /admin/enrolments: {self.demo_enrolment_link}")
        why = (" (this Mosquitto opens it to every network interface)"
               if self.broker_kind == "mosquitto" and not broker.ws_binds_loopback() else "")
        return f"phone app: {app} needs the broker's WebSockets listener: start with --ws-port {DEFAULT_WS_PORT}{why}"


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
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, lambda *_: self._stop.set())
        try:
            self._take_data_dir()
        except DataDirInUse as exc:
            log.error("%s", exc)
            return 1
        try:
            self.choose_broker()
            self._start_all()
        except Exception as exc:
            log.error("could not start: %s", exc)
            self._stop_all()
            return 1
        for line in self._broker_lines():
            print(line, flush=True)
        print(f"dashdesk ready: http://127.0.0.1:{self.http_port}", flush=True)
        if self.demo and self.demo_device_config is not None:
            print(f"demo: type `b1` (printer), `b2` (till), `b3` (sales app), `b2 long`, `b1 double` here; the "
                  f"demo device's broker account is in {self.demo_device_config}; API token in "
                  f"{self.data_dir / 'admin.token'}", flush=True)
            threading.Thread(target=self._forward_stdin, daemon=True).start()
        elif self.demo:
            print(f"demo: press with `dashdesk press shop-demo b1` (b1 printer, b2 till, b3 sales app), or type "
                  f"`b1`, `b2 long`, `b1 double` here; API token in {self.data_dir / 'admin.token'}", flush=True)
            threading.Thread(target=self._forward_stdin, daemon=True).start()
        if self.demo:
            if self.demo_password_file is not None:
                print(f"desk: sign in at http://127.0.0.1:{self.http_port}/ as admin, with the password in "
                      f"{self.demo_password_file}", flush=True)
            print(self._phone_line(), flush=True)
        while not self._stop.wait(0.5):
            self._restart_dead()
        self._stop_all()
        return 0

    def _take_data_dir(self) -> None:
        """Lock the data dir for this `up`; ``DataDirInUse`` if another `up` runs on it, or if the parts of one
        that died are still running after PARTS_STOP_WAIT_S."""
        try:
            self._lock = datalock.acquire(self.data_dir / "up.lock", str(self.data_dir))
        except datalock.Busy as busy:
            raise DataDirInUse(f"{busy}: another `dashdesk up` runs on it; stop that one first") from None

        def waiting(busy: datalock.Busy) -> None:
            log.warning("the parts of an earlier `dashdesk up` on %s are still stopping (%s); waiting up to %g s "
                        "for them", self.data_dir, _parts_said(busy.holder), PARTS_STOP_WAIT_S)

        try:
            self._parts_lock = datalock.acquire(self.data_dir / "up-parts.lock", str(self.data_dir),
                                                wait_s=PARTS_STOP_WAIT_S, waiting=waiting, stop=self._stop.is_set)
        except datalock.Busy as busy:
            self._release_data_dir()
            raise DataDirInUse(f"{self.data_dir} is in use by the parts of an earlier `dashdesk up`, still running "
                               f"after {PARTS_STOP_WAIT_S:g} s ({_parts_said(busy.holder)}): stop them first") from None
        self._note_parts()
        self._check_no_part_runs_alone()

    def _check_no_part_runs_alone(self) -> None:
        """``DataDirInUse`` if a `dashdesk server` or `dashdesk bridge` started by hand runs on this data (its
        database, its outbox): found before `up` migrates the database or starts anything, not when its own
        server or bridge fails to start."""
        from server.app import database_url

        database = datalock.sqlite_file(database_url(self.cfg))
        guarded = [("server", database, f"the database {database}")] if database else []
        outbox = self.data_dir / "bridge-outbox.sqlite3"
        guarded.append(("bridge", outbox, f"the bridge's outbox {outbox}"))
        for role, resource, what in guarded:
            try:
                datalock.acquire(datalock.lock_path(resource, role), what).release()
            except datalock.Busy as busy:
                self._release_data_dir()
                raise DataDirInUse(f"{busy}: a `dashdesk {role}` runs on it; stop that one first") from None

    def _note_parts(self) -> None:
        """Write this `up`'s pid and its parts' in DIR/up-parts.lock (what an `up` waiting for them names)."""
        if self._parts_lock is None:
            return
        lines = [str(os.getpid())]
        if self.mosquitto is not None:
            lines.append(f"broker {self.mosquitto.pid}")
        lines += [f"{p.name} {p.proc.pid}" for p in self.parts if p.proc is not None]
        self._parts_lock.write("\n".join(lines) + "\n")

    def _popen(self) -> dict[str, Any]:
        """How every part is started: the kernel stops it when `up` dies; it holds DIR/up-parts.lock."""
        options: dict[str, Any] = {"preexec_fn": die_with_parent()}
        if self._parts_lock is not None:
            options["pass_fds"] = (self._parts_lock.fd,)
        return options

    def _release_data_dir(self) -> None:
        for lock in (self._parts_lock, self._lock):
            if lock is not None:
                lock.release()
        self._parts_lock = self._lock = None

    def _start_all(self) -> None:
        database_env = self.prepare_database()
        if self.mqtt_url is None:
            if self.auth == "dynsec":
                self.secrets = broker_setup.prepare(self.data_dir,
                                                   self.cfg["mqtt"].get("topic_root", "dashdesk/v1"))
            self.mosquitto = self._start_broker()
            self._note_parts()
            if self.secrets is not None:
                self._set_up_accounts()
        env = self._env(database_env)
        exe = [sys.executable, "-m", "launcher.cli"]
        server = Part("server", exe + ["server", "--http-port", str(self.http_port)], env, popen=self._popen())
        self._start(server)
        self._wait_http(server.proc)
        ready = self.data_dir / "bridge.ready"
        ready.unlink(missing_ok=True)
        bridge = Part("bridge", exe + ["bridge", "--ready-file", str(ready)], self._bridge_env(env),
                      popen=self._popen())
        self._start(bridge)
        self._wait_file(ready, bridge.proc)
        if self.demo:
            where = self._demo_device_argv(env)
            demo = Part("device", exe + ["device", *where, "--protocol", str(self.protocol)], env,
                        stdin=subprocess.PIPE, popen=self._popen())
            self._start(demo)

    def _start(self, part: Part) -> None:
        part.start()
        self.parts.append(part)
        self._note_parts()

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
                self._note_parts()
        if self.mosquitto is not None and self.mosquitto.poll() is not None and not self._stop.is_set():
            log.warning("the broker (%s) exited with %s; starting it again", self.broker_kind,
                        self.mosquitto.returncode)
            time.sleep(RESTART_DELAY_S)
            try:
                self.mosquitto = self._start_broker()
                self._note_parts()
            except Exception as exc:  # the port still taken, say: the next round tries again
                log.error("could not start the broker again: %s", exc)

    def _stop_all(self) -> None:
        # The device first (no new presses), the bridge next (it finishes what it holds),
        # then the server, then the broker, which saves its store on SIGTERM.
        for part in reversed(self.parts):
            part.stop()
        if self.mosquitto is not None and self.mosquitto.poll() is None:
            self.mosquitto.terminate()
            try:
                self.mosquitto.wait(20)
            except subprocess.TimeoutExpired:
                self.mosquitto.kill()
                self.mosquitto.wait()
        self._release_data_dir()


def _parts_said(holder: str) -> str:
    """The parts an ``up-parts.lock`` names ("broker pid 12, server pid 13"), or what it says otherwise."""
    parts = [line.split() for line in holder.splitlines()[1:]]
    said = [f"{p[0]} pid {p[1]}" for p in parts if len(p) == 2 and p[1].isdigit()]
    return ", ".join(said) or "pids unknown"


def port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
