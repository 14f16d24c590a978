"""The ``dashdesk`` command line."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
import uuid
from enum import IntEnum
from pathlib import Path
from typing import Any

import click

from . import config as dd_config
from . import wire


class Exit(IntEnum):
    OK = 0
    FAILED = 1
    USAGE = 2
    NO_ACK = 3


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)


def _override(cfg: dict[str, Any], section: str | None, key: str, value: Any) -> None:
    if value is None:
        return
    (cfg.setdefault(section, {}) if section else cfg)[key] = value


@click.group()
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="TOML configuration file (default config/dashdesk.toml if present).")
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, verbose: bool) -> None:
    """dashdesk: one press on a button becomes one ticket at the service desk."""
    _setup_logging(verbose)
    for noisy in ("alembic", "apscheduler"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    ctx.obj = dd_config.load(config_path)


@cli.command()
@click.option("--http-port", type=int, default=None, help="Port of the web server and API (8080).")
@click.option("--mqtt-port", type=int, default=None, help="Port of the broker that `up` starts (1883).")
@click.option("--mqtt-url", default=None, help="Use this broker instead of starting one.")
@click.option("--broker", "broker_kind", type=click.Choice(["auto", "mosquitto", "embedded"]), default="auto",
              show_default=True,
              help="The broker to start: Mosquitto, or the embedded Python one (amqtt; MQTT 3.1.1, sessions in "
                   "memory); auto = Mosquitto if installed.")
@click.option("--ws-port", type=click.IntRange(min=0, max=65535), default=None,
              help="Port of the broker's MQTT-over-WebSockets listener on 127.0.0.1 (9001, or a free port if "
                   "taken; 0: none).")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None, help="Where data is kept.")
@click.option("--demo", is_flag=True, help="Add a demo shop with three buttons and a simulated device.")
@click.pass_obj
def up(cfg: dict[str, Any], http_port: int | None, mqtt_port: int | None, mqtt_url: str | None,
       broker_kind: str, ws_port: int | None, data_dir: str | None, demo: bool) -> None:
    """Run the whole system on this machine: broker, server, bridge (and the demo device)."""
    from .supervisor import Supervisor

    _override(cfg, None, "data_dir", data_dir)
    _override(cfg, "server", "http_port", http_port)
    sys.exit(Supervisor(cfg, mqtt_port=mqtt_port, mqtt_url=mqtt_url, demo=demo, broker_kind=broker_kind,
                        ws_port=ws_port).run())


@cli.command()
@click.option("--http-port", type=int, default=None)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--workers", type=int, default=None,
              help="Worker processes (default: 1 on SQLite, whose writes queue on one lock anyway; 2 otherwise).")
@click.option("--threads", type=int, default=8, show_default=True, help="Threads per worker.")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None)
@click.pass_obj
def server(cfg: dict[str, Any], http_port: int | None, host: str, workers: int | None, threads: int,
           data_dir: str | None) -> None:
    """Run the ticket server (HTTP API and web pages)."""
    from server.serve import serve

    _override(cfg, None, "data_dir", data_dir)
    _override(cfg, "server", "http_port", http_port)
    sys.exit(serve(cfg, host=host, port=int(cfg["server"]["http_port"]), workers=workers, threads=threads))


@cli.command()
@click.option("--data-dir", type=click.Path(file_okay=False), default=None)
@click.option("--ready-file", type=click.Path(dir_okay=False), default=None,
              help="Create this file once subscribed (for supervisors).")
@click.pass_obj
def bridge(cfg: dict[str, Any], data_dir: str | None, ready_file: str | None) -> None:
    """Run the MQTT bridge between devices and the ticket server."""
    from broker_bridge.bridge import run_bridge

    _override(cfg, None, "data_dir", data_dir)
    sys.exit(run_bridge(cfg, ready_file=Path(ready_file) if ready_file else None))


@cli.command()
@click.option("--device-config", "device_config", type=click.Path(dir_okay=False), required=True,
              help="The device's TOML file (buttons, pins, probes).")
@click.option("--mqtt-url", default=None)
@click.option("--protocol", type=click.Choice(["4", "5"]), default=None,
              help="MQTT protocol (5, or 4 for 3.1.1), overriding the device's file.")
@click.option("--no-stdin", is_flag=True, help="Do not read presses from standard input.")
def device(device_config: str, mqtt_url: str | None, protocol: str | None, no_stdin: bool) -> None:
    """Run a button device (with gpiozero's MockFactory where there are no pins)."""
    from device.run import run_device

    sys.exit(run_device(device_config, mqtt_url=mqtt_url, read_stdin=not no_stdin,
                        protocol=int(protocol) if protocol else None))


@cli.command()
@click.argument("device_id")
@click.argument("button")
@click.option("--press", "press_type", type=click.Choice(wire.PRESS_TYPES), default="single", show_default=True)
@click.option("--mqtt-url", default=None)
@click.option("--timeout", type=float, default=10.0, show_default=True, help="Seconds to wait for the final ack.")
@click.pass_obj
def press(cfg: dict[str, Any], device_id: str, button: str, press_type: str, mqtt_url: str | None,
          timeout: float) -> None:
    """Publish one press as DEVICE_ID and print the ack."""
    if not wire.valid_id(device_id) or not wire.valid_id(button):
        raise click.BadParameter(f"DEVICE_ID and BUTTON must match {wire.ID_PATTERN.pattern}")
    topics = wire.Topics(cfg["mqtt"].get("topic_root", wire.DEFAULT_TOPIC_ROOT))
    event = wire.new_press(device_id, button, press_type)
    url = mqtt_url or cfg["mqtt"]["url"]
    protocol = int(cfg["mqtt"].get("protocol", 5))
    deadline = time.monotonic() + timeout
    got, refused = _press_once(url, protocol, topics, event, timeout)
    if refused and protocol == 5:
        # An MQTT 3.1.1-only broker (the embedded one of `dashdesk up`) answers an MQTT 5
        # CONNECT with a refusal or just closes the connection: try 3.1.1, which every broker
        # speaks, for the time left. The press was not published: same event, no duplicate.
        click.echo("could not connect with MQTT 5; trying MQTT 3.1.1", err=True)
        got, refused = _press_once(url, 4, topics, event, max(1.0, deadline - time.monotonic()))
    if not got:
        click.echo(f"no final ack for {event.event_id} within {timeout:g} s", err=True)
    sys.exit(Exit.OK if got else Exit.NO_ACK)


# How long `dashdesk press` waits for an MQTT 5 CONNACK before it tries MQTT 3.1.1.
MQTT5_CONNACK_WAIT_S = 3.0


def _press_once(url: str, protocol: int, topics: wire.Topics, event: wire.PressEvent,
                timeout: float) -> tuple[bool, bool]:
    """Publish ``event`` and wait for its final ack: (got it, the first connection attempt failed)."""
    from paho.mqtt.reasoncodes import ReasonCode

    from . import mqtt as dd_mqtt

    final, refused, connected = threading.Event(), threading.Event(), threading.Event()
    device_id = event.device_id
    client, broker = dd_mqtt.make_client(url, f"dashdesk-press-{uuid.uuid4().hex[:12]}",
                                         protocol=protocol, persistent=False)

    def on_connect(c: Any, _u: Any, _f: Any, rc: ReasonCode, _p: Any = None) -> None:
        if rc.is_failure:
            if rc == "Unsupported protocol version":
                refused.set()
                final.set()  # stop waiting
            return
        connected.set()
        dd_mqtt.set_nodelay(c)
        c.subscribe(topics.ack(device_id), qos=1)

    def on_subscribe(c: Any, *_: Any) -> None:
        c.publish(topics.press(device_id), event.to_json(), qos=1)

    def on_message(_c: Any, _u: Any, msg: Any) -> None:
        try:
            ack = json.loads(msg.payload)
        except ValueError:
            return
        if isinstance(ack, dict) and ack.get("event_id") == event.event_id:
            click.echo(json.dumps(ack))
            if ack.get("result") != "queued":
                final.set()

    def on_connect_fail(_c: Any, _u: Any) -> None:
        if not connected.is_set():  # reset during the handshake, or nothing listening yet
            refused.set()
            final.set()

    client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, on_message
    if protocol == 5:
        client.on_connect_fail = on_connect_fail
    dd_mqtt.connect(client, broker, protocol=protocol, persistent=False)
    client.loop_start()
    if protocol == 5:
        # amqtt misreads an MQTT 5 CONNECT with properties and never answers it.
        deadline = time.monotonic() + min(timeout, MQTT5_CONNACK_WAIT_S)
        while not (connected.is_set() or refused.is_set()) and time.monotonic() < deadline:
            time.sleep(0.02)
        if not connected.is_set():
            refused.set()
            final.set()
    got = final.wait(timeout)
    client.disconnect()
    client.loop_stop()
    return got and not refused.is_set(), refused.is_set()


@cli.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None)
@click.pass_obj
def db_upgrade(cfg: dict[str, Any], data_dir: str | None) -> None:
    """Apply the migrations the database has not had yet."""
    from server.app import database_url
    from server.migrate import current, upgrade

    _override(cfg, None, "data_dir", data_dir)
    url = database_url(cfg)
    upgrade(url)
    click.echo(f"database at revision {current(url)}")


@cli.group()
def token() -> None:
    """API tokens."""


@token.command("create")
@click.argument("name")
@click.option("--role", type=click.Choice(["admin", "bridge"]), default="admin", show_default=True)
@click.option("--data-dir", type=click.Path(file_okay=False), default=None)
@click.pass_obj
def token_create(cfg: dict[str, Any], name: str, role: str, data_dir: str | None) -> None:
    """Create an API token and print it (it is shown only this once)."""
    from server.app import database_url
    from server.auth import create_token
    from server.db import Database
    from server.migrate import upgrade

    _override(cfg, None, "data_dir", data_dir)
    url = database_url(cfg)
    upgrade(url)
    database = Database(url)
    click.echo(create_token(database, name, role))
    database.close()


def main(argv: list[str] | None = None) -> int:
    try:
        cli.main(args=argv, prog_name="dashdesk", standalone_mode=False)
    except click.exceptions.Abort:
        return Exit.FAILED
    except click.ClickException as exc:
        exc.show()
        return Exit.USAGE
    except SystemExit as exc:
        return int(exc.code or 0)
    return Exit.OK


if __name__ == "__main__":
    sys.exit(main())
