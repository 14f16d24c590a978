"""Run Mosquitto for ``dashdesk up`` and the tests, configured as dashdesk needs it."""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import time
from pathlib import Path

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


def find_mosquitto() -> str | None:
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()), None)


def write_config(data_dir: Path, port: int, *, host: str = "127.0.0.1", ws_port: int | None = None,
                 extra: str = "") -> Path:
    """Write ``mosquitto.conf`` under ``data_dir`` and return its path."""
    store = data_dir / "mosquitto"
    store.mkdir(parents=True, exist_ok=True)
    lines = [SETTINGS.format(store=store), f"user {getpass.getuser()}",
             f"log_dest file {data_dir / 'mosquitto.log'}", "log_type error", "log_type warning",
             "log_type notice", f"listener {port} {host}", "allow_anonymous true"]
    if ws_port:
        lines += [f"listener {ws_port} {host}", "protocol websockets", "allow_anonymous true"]
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


def start_mosquitto(data_dir: Path, port: int, *, ws_port: int | None = None) -> subprocess.Popen:
    """Start Mosquitto on ``port`` with dashdesk's settings; return once it accepts connections."""
    exe = find_mosquitto()
    if exe is None:
        raise FileNotFoundError("Mosquitto is not installed: `apt-get install mosquitto`, or pass --mqtt-url")
    conf = write_config(data_dir, port, ws_port=ws_port)
    # Its own session: a Ctrl+C at `dashdesk up` must not stop the broker before the bridge.
    proc = subprocess.Popen([exe, "-c", str(conf)], stdin=subprocess.DEVNULL, start_new_session=True)
    wait_for_port("127.0.0.1", port, proc=proc)
    return proc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
