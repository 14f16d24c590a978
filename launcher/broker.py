"""Run Mosquitto for ``dashdesk up`` and the tests, configured as dashdesk needs it."""

from __future__ import annotations

import functools
import getpass
import glob
import ipaddress
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

# Mosquitto's defaults lose data or add latency; each line says why it is set.
SETTINGS = """\
# Keep sessions and queued messages across a broker restart.
persistence true
persistence_location {store}/
# Write the store every 10 s rather than every 30 min.
autosave_interval 10
# Mosquitto drops messages silently beyond 1000 queued for an offline session.
max_queued_messages 1000000
max_queued_bytes 0
# Let the bridge have many presses in flight while it waits on the server.
max_inflight_messages 200
# Nagle's algorithm adds tens of ms to every ack.
set_tcp_nodelay true
"""


# Mosquitto before 2.0.12 (Debian 12 ships 2.0.11) binds a websockets listener
# to every interface whatever address its `listener` line names
# (eclipse-mosquitto/mosquitto#2085, #3045).
WS_BIND_FIXED_IN = (2, 0, 12)


def find_mosquitto() -> str | None:
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()), None)


# Where Mosquitto 2's packages put its dynamic security plugin (Debian, Ubuntu, Fedora, a source build).
DYNSEC_PLUGIN_GLOBS = ("/usr/lib/*/mosquitto_dynamic_security.so", "/usr/lib/mosquitto_dynamic_security.so",
                       "/usr/lib64/mosquitto_dynamic_security.so", "/usr/local/lib/mosquitto_dynamic_security.so",
                       "/usr/local/lib/*/mosquitto_dynamic_security.so")


def find_dynsec_plugin(configured: str | None = None) -> str | None:
    """The path of Mosquitto's dynamic security plugin: ``configured`` if given, else where packages put it."""
    if configured:
        return configured if Path(configured).is_file() else None
    for pattern in DYNSEC_PLUGIN_GLOBS:
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    return None


def is_loopback(host: str) -> bool:
    """Whether a listener bound to ``host`` is reachable from this machine only."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def local_address(host: str) -> str:
    """The address this machine reaches a listener bound to ``host`` at."""
    return "127.0.0.1" if host in ("", "0.0.0.0", "::") else host


def mosquitto_version(exe: str | None = None) -> tuple[int, ...] | None:
    """The installed Mosquitto's version, e.g. (2, 0, 11); None if unknown."""
    exe = exe or find_mosquitto()
    if exe is None:
        return None
    return _version_of(exe)


# Asked once per program: `up` needs the answer several times, and a `mosquitto -h` started once the parts run
# would be one more child process of `up`'s coming and going beside them.
@functools.lru_cache(maxsize=8)
def _version_of(exe: str) -> tuple[int, ...] | None:
    try:
        out = subprocess.run([exe, "-h"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.search(r"version (\d+)\.(\d+)\.(\d+)", out)
    return tuple(int(x) for x in found.groups()) if found else None


def ws_binds_loopback(exe: str | None = None) -> bool:
    """Whether this Mosquitto can keep a websockets listener to 127.0.0.1."""
    version = mosquitto_version(exe)
    return version is not None and version >= WS_BIND_FIXED_IN


def listens_on_every_interface(port: int) -> bool:
    """Whether something listens on ``port`` at a wildcard address (Linux's /proc/net; False elsewhere)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state = fields[1], fields[3]
            address, _, hexport = local.rpartition(":")
            if state == "0A" and int(hexport, 16) == port and set(address) == {"0"}:
                return True
    return False


def write_config(data_dir: Path, port: int, *, host: str = "127.0.0.1", ws_port: int | None = None,
                 extra: str = "", dynsec_config: Path | None = None, dynsec_plugin: str | None = None) -> Path:
    """Write ``mosquitto.conf`` under ``data_dir`` and return its path.

    With ``dynsec_config`` every client needs an account of the dynamic security
    plugin (``server.domain.mosquitto``), and its client id becomes its username.
    """
    store = data_dir / "mosquitto"
    store.mkdir(parents=True, exist_ok=True)
    lines = [SETTINGS.format(store=store), f"user {getpass.getuser()}",
             f"log_dest file {data_dir / 'mosquitto.log'}", "log_type error", "log_type warning",
             "log_type notice"]
    listener_auth = ["allow_anonymous true"]
    if dynsec_config is not None:
        plugin = find_dynsec_plugin(dynsec_plugin)
        if plugin is None:
            raise FileNotFoundError("Mosquitto's dynamic security plugin (mosquitto_dynamic_security.so) was not "
                                    "found: install Mosquitto 2, or set [broker] dynsec_plugin to its path")
        lines += [f"plugin {plugin}", f"plugin_opt_config_file {dynsec_config}"]
        # A client's id is its username (the device id): no device can take over another's session.
        listener_auth = ["allow_anonymous false", "use_username_as_clientid true"]
    lines += [f"listener {port} {host}", *listener_auth]
    if ws_port:
        # MQTT over WebSockets (browsers, the phone app); any URL path is accepted.
        lines += [f"listener {ws_port} {host}", "protocol websockets", *listener_auth]
    conf = data_dir / "mosquitto.conf"
    conf.write_text("\n".join(lines) + "\n" + extra)
    return conf


def wait_for_port(host: str, port: int, timeout: float = 10.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout} s")


def wait_until_listening(proc: subprocess.Popen, host: str, *ports: int | None,
                         timeout: float = 10.0) -> subprocess.Popen:
    """``proc``, once each of ``ports`` (a None is skipped) accepts connections on ``host``.

    If it exits first or does not listen within ``timeout`` seconds a port, it is killed and the
    error raised: no half-started broker is left behind.
    """
    try:
        for port in ports:
            if port:
                wait_for_port(host, port, timeout=timeout, proc=proc)
    except BaseException:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        raise
    return proc


def start_mosquitto(data_dir: Path, port: int, *, ws_port: int | None = None, host: str = "127.0.0.1",
                    dynsec_config: Path | None = None, dynsec_plugin: str | None = None,
                    popen: dict[str, Any] | None = None) -> subprocess.Popen:
    """Start Mosquitto on ``port`` with dashdesk's settings; return once it accepts connections.

    ``dynsec_config``: the dynamic security plugin's file (``launcher.broker_setup.prepare`` makes it);
    with it, anonymous clients are refused. ``popen``: more arguments for ``subprocess.Popen``.
    """
    exe = find_mosquitto()
    if exe is None:
        raise FileNotFoundError("Mosquitto is not installed: `apt-get install mosquitto`, or pass --mqtt-url")
    conf = write_config(data_dir, port, ws_port=ws_port, host=host, dynsec_config=dynsec_config,
                        dynsec_plugin=dynsec_plugin)
    # Its own session: a Ctrl+C at `dashdesk up` must not stop the broker before the bridge.
    proc = subprocess.Popen([exe, "-c", str(conf)], stdin=subprocess.DEVNULL, start_new_session=True,
                            **(popen or {}))
    return wait_until_listening(proc, local_address(host), port, ws_port)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
