"""The ``dashdesk`` command line: its root group, ``up``, and each part's commands.

Each part registers its own commands (as flaskr's ``init_app`` does): ``device.cli`` adds ``device`` and
``press``, ``broker_bridge.cli`` adds ``bridge``, ``server.cli`` adds ``server``, ``db``, ``token``,
``user``, ``config`` and ``broker``. ``python -m launcher.cli`` is the same command.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import click

import broker_bridge.cli
import device.cli
import server.cli
from dashdesk import config as dd_config
from dashdesk.commands import Exit, override


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)


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

    config_path = click.get_current_context().find_root().params.get("config_path")
    if config_path:
        # The parts (`dashdesk server`, `bridge`) read the same file: the server needs its [broker]
        # settings (accounts, device_url) to hand devices their credentials.
        os.environ["DASHDESK_CONFIG"] = str(Path(config_path).resolve())
    override(cfg, None, "data_dir", data_dir)
    override(cfg, "server", "http_port", http_port)
    sys.exit(Supervisor(cfg, mqtt_port=mqtt_port, mqtt_url=mqtt_url, demo=demo, broker_kind=broker_kind,
                        ws_port=ws_port).run())


for part in (device.cli, broker_bridge.cli, server.cli):
    part.register(cli)


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
