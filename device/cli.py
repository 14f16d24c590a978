"""The device's commands, ``dashdesk device`` and ``dashdesk press``; ``launcher.cli`` adds them to the
``dashdesk`` command."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import click

from dashdesk import wire
from dashdesk.commands import Exit
from dashdesk.press_client import NotConnected, PressClient, ProtocolRefused, Refused


def register(group: click.Group) -> None:
    """Add ``device`` and ``press`` to ``group`` (the ``dashdesk`` command)."""
    group.add_command(device)
    group.add_command(press)


@click.command()
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


@click.command()
@click.argument("device_id")
@click.argument("button")
@click.option("--press", "press_type", type=click.Choice(wire.PRESS_TYPES), default="single", show_default=True)
@click.option("--mqtt-url", default=None)
@click.option("--timeout", type=float, default=10.0, show_default=True, help="Seconds to wait for the final ack.")
@click.pass_obj
def press(cfg: dict[str, Any], device_id: str, button: str, press_type: str, mqtt_url: str | None,
          timeout: float) -> None:
    """Publish one press as DEVICE_ID and print the ack.

    Exit 0 on a final ack; 3 if none came within --timeout; 4 if the broker refused the connection (a wrong or
    revoked password, an unknown user: it says why).
    """
    if not wire.valid_id(device_id) or not wire.valid_id(button):
        raise click.BadParameter(f"DEVICE_ID and BUTTON must match {wire.ID_PATTERN.pattern}")
    topics = wire.Topics(cfg["mqtt"].get("topic_root", wire.DEFAULT_TOPIC_ROOT))
    event = wire.new_press(device_id, button, press_type)
    url = mqtt_url or cfg["mqtt"]["url"]
    protocol = int(cfg["mqtt"].get("protocol", 5))
    deadline = time.monotonic() + timeout
    got, retry, refusal = _press_once(url, protocol, topics, event, timeout)
    if retry and protocol == 5:
        # An MQTT 3.1.1-only broker (the embedded one of `dashdesk up`) answers an MQTT 5
        # CONNECT with a refusal or just closes the connection: try 3.1.1, which every broker
        # speaks, for the time left. The press was not published: same event, no duplicate.
        click.echo("could not connect with MQTT 5; trying MQTT 3.1.1", err=True)
        got, retry, refusal = _press_once(url, 4, topics, event, max(1.0, deadline - time.monotonic()))
    if refusal:
        click.echo(f"the broker refused the connection: {refusal}", err=True)
        sys.exit(Exit.REFUSED)
    if not got:
        click.echo(f"no final ack for {event.event_id} within {timeout:g} s", err=True)
    sys.exit(Exit.OK if got else Exit.NO_ACK)


def _press_once(url: str, protocol: int, topics: wire.Topics, event: wire.PressEvent,
                timeout: float) -> tuple[bool, bool, str | None]:
    """Publish ``event`` and wait for its final ack, printing each ack: (got it, try MQTT 3.1.1: the broker did
    not take this protocol, the reason the broker gave for refusing the connection otherwise)."""
    started = time.monotonic()
    try:
        client = PressClient(url, topics=topics, protocol=protocol, subscriptions=[topics.ack(event.device_id)],
                             connect_timeout=timeout, protocol_check=True)
    except Refused as refused:
        return False, False, refused.reason
    except ProtocolRefused:
        return False, True, None
    except NotConnected:
        return False, False, None
    with client:
        client.send(event)
        # MQTT 5: the time to connect (a few seconds at most) is not counted.
        left = timeout if protocol == 5 else max(0.0, timeout - (time.monotonic() - started))
        final = client.wait_final(event.event_id, left, on_ack=lambda ack: click.echo(json.dumps(ack)))
    return final is not None, False, None
