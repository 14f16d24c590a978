"""The device TOML: one device's id, broker, buttons, timings and probes."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from dashdesk import wire
from device.presses import DOUBLE_WINDOW_S, LONG_PRESS_S
from device.probes import build_probes
from device.telemetry import INTERVAL_S

# Where a relative queue_path lands, as for the rest of dashdesk.
DEFAULT_DATA_DIR = "./dashdesk-data"
# A press is shown as failed if no ack (not even "queued") came back this soon;
# a healthy round trip through the bridge takes well under a second.
ACK_TIMEOUT_S = 5.0
# A press still unanswered is published again (same event_id) after
# ack_timeout_s, then after twice as long each time, but at least this often.
RESEND_MAX_S = 60.0
# Seconds between MQTT pings: the broker announces "offline" within 1.5 times
# this after the device silently drops off the network.
KEEPALIVE_S = 30


@dataclass(frozen=True)
class ButtonConfig:
    """One button: its GPIO pin, its LED's pin and whether it knows double presses."""

    name: str
    pin: int
    led: int
    label: str
    double: bool = True


@dataclass(frozen=True)
class DeviceConfig:
    """Everything a device agent needs, checked and with defaults filled in."""

    device_id: str
    mqtt_url: str
    queue_path: Path
    buttons: tuple[ButtonConfig, ...]
    probes: tuple[dict[str, Any], ...] = ()
    protocol: int = 5
    topic_root: str = wire.DEFAULT_TOPIC_ROOT
    pin_factory: str = ""
    keepalive_s: int = KEEPALIVE_S
    long_press_s: float = LONG_PRESS_S
    double_window_s: float = DOUBLE_WINDOW_S
    ack_timeout_s: float = ACK_TIMEOUT_S
    resend_max_s: float = RESEND_MAX_S
    telemetry_interval_s: float = INTERVAL_S

    def button(self, name: str) -> ButtonConfig:
        """The button called ``name``; KeyError if there is none."""
        for button in self.buttons:
            if button.name == name:
                return button
        raise KeyError(name)


def _button(name: str, table: Any) -> ButtonConfig:
    if not wire.valid_id(name):
        raise ValueError(f"button name {name!r} must match {wire.ID_PATTERN.pattern}")
    if not isinstance(table, dict) or not isinstance(table.get("pin"), int) \
            or not isinstance(table.get("led"), int):
        raise ValueError(f"[buttons.{name}] needs integer pin and led (BCM numbers)")
    return ButtonConfig(name, table["pin"], table["led"], str(table.get("label", name)),
                        bool(table.get("double", True)))


def load_device_config(source: str | Path | Mapping[str, Any],
                       env: Mapping[str, str] | None = None) -> DeviceConfig:
    """Read a device TOML file (or its parsed dict) and check it; mistakes raise ValueError.

    A relative ``queue_path`` is taken within the data dir: ``DASHDESK_DATA_DIR``,
    else the file's ``data_dir``, else ``./dashdesk-data``.
    """
    env = os.environ if env is None else env
    raw = dict(source) if isinstance(source, Mapping) else tomllib.loads(Path(source).read_text())
    device_id = raw.get("device_id")
    if not wire.valid_id(device_id):
        raise ValueError(f"device_id {device_id!r} must match {wire.ID_PATTERN.pattern}")
    buttons = raw.get("buttons")
    if not isinstance(buttons, dict) or not buttons:
        raise ValueError("the device needs at least one [buttons.NAME] table")
    probes = tuple(dict(p) for p in raw.get("probes", []))
    build_probes(probes)  # fail at start-up, not at the first telemetry round
    data_dir = Path(env.get("DASHDESK_DATA_DIR") or raw.get("data_dir") or DEFAULT_DATA_DIR)
    timings = raw.get("timings", {})
    return DeviceConfig(
        device_id=device_id,
        mqtt_url=str(raw.get("mqtt_url", "mqtt://127.0.0.1:1883")),
        queue_path=data_dir / Path(raw.get("queue_path", f"device-{device_id}.sqlite3")),
        buttons=tuple(_button(name, table) for name, table in buttons.items()),
        probes=probes,
        protocol=int(raw.get("protocol", 5)),
        topic_root=str(raw.get("topic_root", wire.DEFAULT_TOPIC_ROOT)),
        pin_factory=str(raw.get("pin_factory", "")),
        keepalive_s=int(raw.get("keepalive_s", KEEPALIVE_S)),
        long_press_s=float(timings.get("long_press_s", LONG_PRESS_S)),
        double_window_s=float(timings.get("double_window_s", DOUBLE_WINDOW_S)),
        ack_timeout_s=float(timings.get("ack_timeout_s", ACK_TIMEOUT_S)),
        resend_max_s=float(timings.get("resend_max_s", RESEND_MAX_S)),
        telemetry_interval_s=float(timings.get("telemetry_interval_s", INTERVAL_S)),
    )
