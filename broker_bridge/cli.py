"""The bridge's command, ``dashdesk bridge``; ``launcher.cli`` adds it to the ``dashdesk`` command."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from dashdesk.commands import claim, override


def register(group: click.Group) -> None:
    """Add ``bridge`` to ``group`` (the ``dashdesk`` command)."""
    group.add_command(bridge)


@click.command()
@click.option("--data-dir", type=click.Path(file_okay=False), default=None)
@click.option("--ready-file", type=click.Path(dir_okay=False), default=None,
              help="Create this file once subscribed (for supervisors).")
@click.pass_obj
def bridge(cfg: dict[str, Any], data_dir: str | None, ready_file: str | None) -> None:
    """Run the MQTT bridge between devices and the ticket server.

    One bridge per outbox: another one running on it (two would throw each other off the broker, having one
    client id) makes this one exit at once (1), naming its pid.
    """
    from broker_bridge.bridge import BridgeSettings, run_bridge

    override(cfg, None, "data_dir", data_dir)
    settings = BridgeSettings.from_config(cfg)
    with claim("bridge", settings.state_path, f"the bridge's outbox {settings.state_path}"):
        sys.exit(run_bridge(cfg, ready_file=Path(ready_file) if ready_file else None, settings=settings))


