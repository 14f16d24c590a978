"""Health probes: small checks of what a button reports on (printer, till, app).

A probe kind is a factory registered with :func:`register`; it reads its
settings from a ``[[probes]]`` table of the device TOML and returns a check
that gives ``{"ok": bool, "detail": str}``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Callable, Iterable

# Probes run on the telemetry thread one after another; 3 s lets a busy Pi or
# print server answer while keeping a whole round well inside the interval.
DEFAULT_TIMEOUT_S = 3.0
# Telemetry rides along in every press (16 KiB at most), so details stay short.
MAX_DETAIL_CHARS = 200

Check = Callable[[], dict[str, Any]]
Factory = Callable[[dict[str, Any]], Check]

KINDS: dict[str, Factory] = {}


def register(kind: str) -> Callable[[Factory], Factory]:
    """Register a probe factory under ``kind``."""
    def add(factory: Factory) -> Factory:
        KINDS[kind] = factory
        return factory
    return add


def _required(conf: dict[str, Any], key: str) -> Any:
    if key not in conf:
        raise ValueError(f"probe {conf.get('name')!r} ({conf.get('kind')}) needs {key!r}")
    return conf[key]


@register("http")
def http_probe(conf: dict[str, Any]) -> Check:
    """Check that GET ``url`` answers 2xx within ``timeout_s``."""
    url = str(_required(conf, "url"))
    timeout = float(conf.get("timeout_s", DEFAULT_TIMEOUT_S))

    def check() -> dict[str, Any]:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            return {"ok": False, "detail": f"HTTP {exc.code}"}
        except OSError as exc:  # URLError, refused, timed out
            return {"ok": False, "detail": str(getattr(exc, "reason", exc))}
        return {"ok": 200 <= status < 300, "detail": f"HTTP {status}"}
    return check


@register("tcp")
def tcp_probe(conf: dict[str, Any]) -> Check:
    """Check that ``host:port`` accepts a connection within ``timeout_s``."""
    host = str(_required(conf, "host"))
    port = int(_required(conf, "port"))
    timeout = float(conf.get("timeout_s", DEFAULT_TIMEOUT_S))

    def check() -> dict[str, Any]:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                pass
        except OSError as exc:
            return {"ok": False, "detail": str(exc)}
        return {"ok": True, "detail": f"connected to {host}:{port}"}
    return check


@register("cups")
def cups_probe(conf: dict[str, Any]) -> Check:
    """Check with ``lpstat -p`` that CUPS printer ``printer`` is idle or printing, not disabled."""
    printer = str(_required(conf, "printer"))
    timeout = float(conf.get("timeout_s", DEFAULT_TIMEOUT_S))

    def check() -> dict[str, Any]:
        try:
            done = subprocess.run(["lpstat", "-p", printer], capture_output=True, text=True,
                                  timeout=timeout, env={**os.environ, "LC_ALL": "C"})
        except FileNotFoundError:
            return {"ok": False, "detail": "lpstat not found: CUPS client tools are not installed"}
        except subprocess.TimeoutExpired:
            return {"ok": False, "detail": f"lpstat gave no answer within {timeout:g} s"}
        if done.returncode != 0:
            return {"ok": False, "detail": done.stderr.strip() or f"lpstat exited with {done.returncode}"}
        status = done.stdout.strip().splitlines()[0] if done.stdout.strip() else ""
        text = status.lower()
        ok = ("is idle" in text or "now printing" in text) and "disabled" not in text
        return {"ok": ok, "detail": status or "lpstat printed nothing"}
    return check


@dataclass(frozen=True)
class Probe:
    """One configured probe."""

    name: str
    kind: str
    check: Check

    def run(self) -> dict[str, Any]:
        """Run the check; a check that raises counts as failed."""
        start = time.monotonic()
        try:
            result = dict(self.check())
        except Exception as exc:  # a probe must never stop telemetry
            result = {"ok": False, "detail": f"{type(exc).__name__}: {exc}"}
        result["detail"] = str(result.get("detail", ""))[:MAX_DETAIL_CHARS]
        result["ms"] = round((time.monotonic() - start) * 1000)
        return result


def build_probes(confs: Iterable[dict[str, Any]]) -> list[Probe]:
    """Make the probes of a device config's ``[[probes]]`` tables; bad settings raise ValueError."""
    probes = []
    for conf in confs:
        name, kind = conf.get("name"), conf.get("kind")
        if not isinstance(name, str) or not name:
            raise ValueError(f"a probe needs a name: {conf!r}")
        if any(p.name == name for p in probes):
            raise ValueError(f"two probes are named {name!r}")
        if kind not in KINDS:
            raise ValueError(f"probe {name!r}: kind must be one of {', '.join(sorted(KINDS))}, not {kind!r}")
        probes.append(Probe(name, kind, KINDS[kind](conf)))
    return probes


def run_probes(probes: Iterable[Probe]) -> dict[str, dict[str, Any]]:
    """Run every probe and return their results by name."""
    return {probe.name: probe.run() for probe in probes}
