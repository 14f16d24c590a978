"""New broker credentials for a device, timed: ``POST /api/v1/devices/{id}/credentials`` over HTTP.

A real Mosquitto with its dynamic security plugin, the ticket server (``dashdesk server``) and
the bridge, each its own process (``benchmarks.stack.Stack`` with accounts on). One device is
registered, then its credentials are made again ``--calls`` times, one after another; each
call makes the device's account anew on the broker, as the admin account. Reported: the
time per call (median, p90, max, mean) and the broker's admin connections per call, counted
from Mosquitto's log; beside it, the broker's part alone (``DynsecAccounts.add_device`` called
in this process, as many times).

``--admin-url`` gives the server the admin account's URL (``[broker] admin_url``), as a broker
that ``dashdesk up`` does not run is reached; by default the server reads the admin's password
from the data directory, as under ``dashdesk up``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from server.domain.mosquitto import ADMIN_USERNAME


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.credentials", description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=50, help="credential calls timed (50)")
    p.add_argument("--warmup", type=int, default=3, help="calls made first and not timed (3)")
    p.add_argument("--admin-url", action="store_true",
                   help="the server reaches the broker through [broker] admin_url, not the data dir's password")
    p.add_argument("--keep", action="store_true", help="keep the data directory (logs, databases) afterwards")
    p.add_argument("--json", action="store_true", help="also print the results as one JSON object")
    return p.parse_args(argv)


def admin_connections(log: Path) -> int:
    """The admin account's connections Mosquitto has logged so far."""
    if not log.exists():
        return 0
    return sum(1 for line in log.read_text(errors="replace").splitlines()
               if "New client connected" in line and f"u'{ADMIN_USERNAME}'" in line)


def figures(times: list[float], connections: int, calls: int) -> dict[str, Any]:
    ms = sorted(t * 1000 for t in times)
    return {"median_ms": round(statistics.median(ms), 2), "p90_ms": round(ms[int(0.9 * (len(ms) - 1))], 2),
            "max_ms": round(ms[-1], 2), "mean_ms": round(statistics.fmean(ms), 2),
            "admin_connections_per_call": round(connections / calls, 2) if connections else None}


def show(f: dict[str, Any]) -> None:
    print(f"  median {f['median_ms']} ms, p90 {f['p90_ms']} ms, max {f['max_ms']} ms, mean {f['mean_ms']} ms; "
          f"admin connections per call: {f['admin_connections_per_call'] or 'not in the broker log'}")


def main(argv: list[str] | None = None) -> int:
    from .stack import Stack

    args = parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="dashdesk-credentials-"))
    stack = Stack(root, auth=True)
    if not args.admin_url:
        # As under `dashdesk up`: the server finds the admin's password in its data directory.
        stack.env.pop("DASHDESK_BROKER_ADMIN_URL")
        stack.env["DASHDESK_DATA_DIR"] = str(stack.broker.data_dir)
    try:
        stack.start()
        assert stack.api("POST", "/api/v1/sites", json={"code": "bench", "name": "Bench"}).status_code == 201
        r = stack.api("POST", "/api/v1/devices/register", json={"device_id": "bench-1", "site": "bench"})
        assert r.status_code == 201 and r.json()["broker"]["credentials"] == "issued", r.text
        log = stack.broker.data_dir / "mosquitto.log"
        for _ in range(args.warmup):
            assert stack.api("POST", "/api/v1/devices/bench-1/credentials").status_code == 200
        connections_before = admin_connections(log)
        times: list[float] = []
        for _ in range(args.calls):
            t0 = time.perf_counter()
            r = stack.api("POST", "/api/v1/devices/bench-1/credentials")
            times.append(time.perf_counter() - t0)
            assert r.status_code == 200 and r.json()["broker"]["credentials"] == "issued", r.text
        connections = admin_connections(log) - connections_before
        # Beside it, the broker's part alone: the same account made anew by this process, as the admin.
        bare: list[float] = []
        for _ in range(args.calls):
            t0 = time.perf_counter()
            stack.accounts.add_device("bench-1")
            bare.append(time.perf_counter() - t0)
        bare_connections = admin_connections(log) - connections_before - connections
    finally:
        stack.stop()
        if args.keep:
            print(f"data directory kept: {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)
    out: dict[str, Any] = {"calls": args.calls, "admin_url": args.admin_url,
                           "http": figures(times, connections, args.calls),
                           "bare_add_device": figures(bare, bare_connections, args.calls)}
    print(f"POST /api/v1/devices/{{id}}/credentials, {args.calls} calls "
          f"({'[broker] admin_url' if args.admin_url else 'admin password from the data dir'}):")
    show(out["http"])
    print(f"beside it, DynsecAccounts.add_device in this process, {args.calls} calls:")
    show(out["bare_add_device"])
    if args.json:
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
