"""Telemetry: a snapshot of the device's health, refreshed on a schedule and cached."""

from __future__ import annotations

import logging
import socket
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Sequence

import psutil
from apscheduler.schedulers.background import BackgroundScheduler

from dashdesk import wire
from device.probes import Probe, run_probes

log = logging.getLogger(__name__)

# Once a minute shows a printer or app going down before most people notice,
# at a cost of one small retained message per device.
INTERVAL_S = 60.0
# Linux's routing table and Wi-Fi signal levels; both exist on Raspberry Pi OS.
ROUTES = Path("/proc/net/route")
WIRELESS = Path("/proc/net/wireless")
# Names psutil gives the CPU's sensor: the Pi's first, then common PC ones.
CPU_SENSORS = ("cpu_thermal", "coretemp", "k10temp", "soc_thermal")


def default_interface(routes: str) -> str | None:
    """Name the interface of the default route in the text of ``/proc/net/route``."""
    for line in routes.splitlines()[1:]:
        fields = line.split()
        # Destination 0.0.0.0 and flag RTF_UP (1): the default route.
        if len(fields) > 3 and fields[1] == "00000000" and int(fields[3], 16) & 1:
            return fields[0]
    return None


def wifi_rssi(wireless: str, interface: str) -> int | None:
    """Signal level in dBm of ``interface`` in the text of ``/proc/net/wireless``."""
    for line in wireless.splitlines()[2:]:
        name, _, rest = line.partition(":")
        fields = rest.split()
        if name.strip() == interface and len(fields) > 2:
            return int(float(fields[2].rstrip(".")))
    return None


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _ipv4(interface: str) -> str | None:
    for addr in psutil.net_if_addrs().get(interface, []):
        if addr.family == socket.AF_INET:
            return addr.address
    return None


def _cpu_temp() -> float | None:
    sensors = getattr(psutil, "sensors_temperatures", lambda: {})()  # absent on macOS and Windows
    for name in (*CPU_SENSORS, *sensors):
        if sensors.get(name):
            return round(sensors[name][0].current, 1)
    return None


def _firmware() -> str | None:
    try:
        return metadata.version("dashdesk")
    except metadata.PackageNotFoundError:
        return None


def system_info() -> dict[str, Any]:
    """Hostname, uptime, firmware and, where known, IP, Wi-Fi signal, CPU temperature, battery."""
    info: dict[str, Any] = {
        "hostname": socket.gethostname(),
        "uptime_s": int(time.time() - psutil.boot_time()),
    }
    interface = default_interface(_read(ROUTES))
    battery = psutil.sensors_battery()
    known = {
        "ip": _ipv4(interface) if interface else None,
        "rssi_dbm": wifi_rssi(_read(WIRELESS), interface) if interface else None,
        "cpu_temp_c": _cpu_temp(),
        "battery_pct": round(battery.percent) if battery else None,
        "firmware": _firmware(),
    }
    info.update({k: v for k, v in known.items() if v is not None})
    return info


def snapshot(probes: Sequence[Probe] = ()) -> dict[str, Any]:
    """Collect one telemetry payload, running every probe."""
    data: dict[str, Any] = {"reported_at": wire.format_time(wire.utcnow())}
    data.update(system_info())
    if probes:
        data["probes"] = run_probes(probes)
    return data


class TelemetryReporter:
    """Collect telemetry on a background schedule, cache the last snapshot and publish it."""

    def __init__(self, probes: Sequence[Probe], publish: Callable[[dict[str, Any]], None],
                 interval_s: float = INTERVAL_S):
        self._probes = list(probes)
        self._publish = publish
        self._interval_s = interval_s
        self._latest: dict[str, Any] = {}
        self._scheduler = BackgroundScheduler(timezone=timezone.utc)

    @property
    def latest(self) -> dict[str, Any]:
        """The last snapshot ({} before the first); never changed once handed out."""
        return self._latest

    def report(self) -> dict[str, Any]:
        """Collect a snapshot now, cache it and publish it."""
        data = snapshot(self._probes)
        self._latest = data
        self._publish(data)
        return data

    def start(self) -> None:
        """Report now and then every interval, on the scheduler's thread."""
        self._scheduler.add_job(self.report, "interval", seconds=self._interval_s,
                                next_run_time=datetime.now(timezone.utc), id="telemetry",
                                coalesce=True, max_instances=1, misfire_grace_time=None)
        self._scheduler.start()

    def stop(self) -> None:
        """Stop the schedule, letting a running report finish."""
        if self._scheduler.running:
            self._scheduler.shutdown(wait=True)
