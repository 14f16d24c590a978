"""``python -m device --config FILE [--mqtt-url URL]``: run a device agent."""

from __future__ import annotations

import argparse
import logging
import sys

from device.run import run_device


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the device."""
    parser = argparse.ArgumentParser(prog="python -m device", description=__doc__)
    parser.add_argument("--config", required=True, help="the device TOML")
    parser.add_argument("--mqtt-url", help="broker URL, overriding mqtt_url in the TOML")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # APScheduler logs every telemetry run at INFO: a line a minute that says nothing.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    return run_device(args.config, mqtt_url=args.mqtt_url)


if __name__ == "__main__":
    sys.exit(main())
