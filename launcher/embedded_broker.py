"""A pure-Python MQTT broker (amqtt) for ``dashdesk up`` on a machine without Mosquitto.

It runs as its own process, like Mosquitto, so the supervisor can start, watch
and restart either the same way::

    python -m launcher.embedded_broker --port 1883 [--ws-port 9001] --data-dir ./dashdesk-data

What it is not, compared with Mosquitto (see ``start_embedded``'s notes):

* MQTT 3.1.1 only: amqtt refuses an MQTT 5 CONNECT, so every dashdesk part must
  run with ``mqtt.protocol = 4`` against it.
* Sessions and queued messages live in memory: a broker crash or restart loses
  the bridge's session and the presses queued in it (Mosquitto keeps them in
  ``persistence_location``).
* A QoS 1 message the broker has handed to a client is forgotten when that
  client's connection closes before its PUBACK (amqtt 0.12.1 drops it from the
  session instead of sending it again), and there is no in-flight limit: a
  bridge killed mid-stream loses every press it held unacked, where Mosquitto
  hands them over again. End to end nothing acknowledged is lost even so: a
  device publishes a press again (same ``event_id``) until an ack comes.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dashdesk.mqtt import SESSION_EXPIRY_S

from .broker import wait_until_listening

# The only MQTT protocol level amqtt speaks (3.1.1); dashdesk's clients call it 4.
PROTOCOL = 4
HOST = "127.0.0.1"

try:  # the broker process needs amqtt; importing this module to start it does not
    from amqtt.plugins.base import BaseAuthPlugin
except ImportError:  # pragma: no cover - the child process reports the missing package
    BaseAuthPlugin = object  # type: ignore[misc,assignment]


def available() -> bool:
    """Whether amqtt is installed (the broker process needs it)."""
    import importlib.util

    return importlib.util.find_spec("amqtt") is not None


def amqtt_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("amqtt")
    except PackageNotFoundError:
        return "not installed"


class OpenAuthPlugin(BaseAuthPlugin):  # type: ignore[misc,valid-type]
    """Let every client in without a password, as Mosquitto's ``allow_anonymous true``.

    amqtt's own ``AnonymousAuthPlugin`` marks every session it lets in as
    anonymous, and amqtt then neither queues QoS 1 messages for an anonymous
    session that is offline nor keeps the session once it disconnects: the
    bridge's persistent session would lose every press published while it
    restarts. This plugin admits clients without marking them, so
    ``clean_session=False`` keeps its meaning.
    """

    async def authenticate(self, *, session: Any) -> bool:
        return True

    @dataclass
    class Config:
        pass


def broker_config(port: int, ws_port: int | None = None, host: str = HOST) -> dict[str, Any]:
    """amqtt's configuration: listeners on ``host`` only, open access, sessions kept a day."""
    listeners: dict[str, Any] = {"default": {"type": "tcp", "bind": f"{host}:{port}"}}
    if ws_port:
        listeners["ws"] = {"type": "ws", "bind": f"{host}:{ws_port}"}
    return {
        "listeners": listeners,
        # The same lifetime dashdesk's MQTT 5 clients ask Mosquitto for.
        "session_expiry_interval": SESSION_EXPIRY_S,
        # Not amqtt's defaults: those add a packet logger and $SYS publishing (CPU for
        # nothing) and the anonymous plugin that disables persistent sessions.
        "plugins": {f"{__name__}.OpenAuthPlugin": {}},
    }


async def serve(port: int, ws_port: int | None) -> None:
    from amqtt.broker import Broker

    broker = Broker(broker_config(port, ws_port))
    await broker.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await broker.shutdown()


def start_embedded(data_dir: Path, port: int, ws_port: int | None = None,
                   popen: dict[str, Any] | None = None) -> subprocess.Popen:
    """Start the embedded broker as its own process; return once ``port`` accepts connections.

    The same shape as ``broker.start_mosquitto`` (``popen``: more arguments for ``subprocess.Popen``).
    Clients must use MQTT 3.1.1 (``DASHDESK_MQTT__PROTOCOL=4``).
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", __name__, "--port", str(port), "--data-dir", str(data_dir)]
    if ws_port:
        argv += ["--ws-port", str(ws_port)]
    # Its own session: a Ctrl+C at `dashdesk up` must not stop the broker before the bridge.
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=True, **(popen or {}))
    return wait_until_listening(proc, HOST, port, ws_port, timeout=20.0)


class _QuietProbes(logging.Filter):
    """Drop the errors amqtt and websockets log for a connection closed before it spoke (a port probe)."""

    NOISE = ("No data from", "Failed to initialize client session: No data", "opening handshake failed")

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.NOISE)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m launcher.embedded_broker",
                                description="dashdesk's embedded MQTT 3.1.1 broker (amqtt), on 127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--ws-port", type=int, default=None)
    p.add_argument("--data-dir", type=Path, required=True, help="where the broker writes its log")
    args = p.parse_args(argv)
    args.data_dir.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(filename=str(args.data_dir / "embedded-broker.log"), level=logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(_QuietProbes())
    try:
        import amqtt  # noqa: F401
    except ImportError:
        print("the embedded broker needs amqtt: pip install 'amqtt==0.12.1'", file=sys.stderr)
        return 2
    asyncio.run(serve(args.port, args.ws_port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
