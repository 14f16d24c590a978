"""Enrichment: a press carries the device's health at the moment it was pressed."""

from __future__ import annotations

from typing import Any


def enrich(press_telemetry: dict[str, Any], latest: dict[str, Any] | None) -> dict[str, Any]:
    """Merge the device's latest published telemetry under the snapshot sent with the press.

    What the press itself carries was measured at the press, so it wins; the
    retained telemetry fills in what the press left out. Probe results merge
    per probe the same way.
    """
    if not latest:
        return dict(press_telemetry)
    merged = {**latest, **press_telemetry}
    probes_latest, probes_press = latest.get("probes"), press_telemetry.get("probes")
    if isinstance(probes_latest, dict) and isinstance(probes_press, dict):
        merged["probes"] = {**probes_latest, **probes_press}
    return merged
