"""A chain's site file imported, timed: ``POST /api/v1/sites/import`` of a CSV of ``--sites`` shops, in process.

    .venv/bin/python -m benchmarks.site_import [--sites 500] [--rounds 5] [--json]

Each round starts a server (``create_app``) on a fresh data directory and posts the same file three
times through Flask's test client (no HTTP socket): every shop new, then every shop changed (a new
name and hours), then the file again unchanged. Each import is one write transaction, committed as
the server commits it (WAL, ``synchronous=FULL``). Reported per import: the wall time and this
process's CPU time (median and best of the rounds), and the audit rows it wrote.

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from typing import Any

from sqlalchemy import func, select

TOKEN = "bench-site-import-token-0123456789abcdef"


def csv_text(sites: int, variant: int) -> str:
    lines = ["code,name,address,timezone,hours,contact"]
    for i in range(sites):
        name = f"Shop {i:04d}" + (f" ({variant})" if variant else "")
        hours = "Mon-Sat 05:00-18:00; Sun closed" if variant == 0 else "Mon-Fri 06:00-20:00; Sat-Sun 08:00-14:00"
        lines.append(f"shop-{i:04d},{name},\"{i} High Street, Town\",Europe/Warsaw,{hours},+48 600 000 {i:03d}")
    return "\n".join(lines) + "\n"


def one_round(sites: int) -> dict[str, dict[str, float]]:
    from server.app import create_app
    from server.models import AuditLog

    data_dir = tempfile.mkdtemp(prefix="dashdesk-bench-import-")
    os.environ["DASHDESK_ADMIN_TOKEN"] = TOKEN
    try:
        app = create_app({"data_dir": data_dir})
        client = app.test_client()
        db = app.extensions["dashdesk"].db
        out: dict[str, dict[str, float]] = {}
        for label, variant in (("new", 0), ("changed", 1), ("unchanged", 1)):
            body = csv_text(sites, variant).encode()
            with db.read() as s:
                before = s.scalar(select(func.count()).select_from(AuditLog)) or 0
            wall, cpu = time.perf_counter(), time.process_time()
            r = client.post("/api/v1/sites/import", data=body, content_type="text/csv",
                            headers={"Authorization": f"Bearer {TOKEN}"})
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            if r.status_code != 200:
                raise SystemExit(f"import answered {r.status_code}: {r.get_data(as_text=True)[:300]}")
            with db.read() as s:
                after = s.scalar(select(func.count()).select_from(AuditLog)) or 0
            out[label] = {"wall_ms": wall * 1000, "cpu_ms": cpu * 1000, "audit_rows": after - before}
        db.close()
        return out
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.site_import", description=__doc__.split("\n\n")[0])
    p.add_argument("--sites", type=int, default=500, help="shops in the file (500)")
    p.add_argument("--rounds", type=int, default=5, help="rounds, each on a fresh database (5)")
    p.add_argument("--json", action="store_true", help="print one JSON object after the report")
    args = p.parse_args(argv)
    one_round(min(args.sites, 20))  # warm-up: imports, caches
    rounds = [one_round(args.sites) for _ in range(args.rounds)]
    report: dict[str, Any] = {"sites": args.sites, "rounds": args.rounds}
    print(f"site import of {args.sites} shops, {args.rounds} rounds (median / best):")
    for label in ("new", "changed", "unchanged"):
        walls = [r[label]["wall_ms"] for r in rounds]
        cpus = [r[label]["cpu_ms"] for r in rounds]
        audit_rows = rounds[-1][label]["audit_rows"]
        report[label] = {"wall_ms_median": statistics.median(walls), "wall_ms_best": min(walls),
                         "cpu_ms_median": statistics.median(cpus), "audit_rows": audit_rows}
        print(f"  {label:9s}  wall {statistics.median(walls):7.1f} / {min(walls):7.1f} ms   "
              f"cpu {statistics.median(cpus):7.1f} / {min(cpus):7.1f} ms   audit rows {audit_rows}")
    if args.json:
        print(json.dumps(report))


if __name__ == "__main__":
    main()
