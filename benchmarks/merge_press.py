"""CPU per press that merges into an open ticket, on a database of 100,000 tickets, in process.

    .venv/bin/python -m benchmarks.merge_press [--data-dir DIR] [--against REV] [--batch 50] [--rounds 5]

Runs ``server.domain.incidents.handle_press`` (what ``POST /api/v1/incidents`` runs)
in this process on a copy of a seeded database (``benchmarks.seed_tickets``:
``--data-dir`` if it has tickets, else a temporary one seeded with
``--tickets``), with no HTTP, broker or bridge around it. Each press is a
single press, with a device's telemetry, of the button that reported an open
ticket: it merges into that ticket and changes neither its status nor its
priority. Each one is its own write transaction, committed as the server
commits it (WAL, ``synchronous=FULL``).

``--batch`` presses (each to a different ticket) are timed together with
``time.process_time()``: CPU seconds of this process, user and system. The
figure is the best of ``--rounds`` batches, per press (the median beside it).
Then one more batch of each code counts SQLite's virtual-machine
instructions per press (a progress handler at every instruction): a figure
the machine's load does not move.

``--against REV`` also times ``server/domain/incidents.py`` as it is at git revision
REV, loaded from git into this process beside the current one (the rest of
``server`` is the current code): the two take turns, batch by batch, on the
same database and connection, the first of each round alternating, so both
meet the same caches and the same machine.

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from sqlalchemy import event

from dashdesk import wire
from server.domain import incidents
from server.db import Database

from . import harness as c
from . import meters, stats
from . import seed_tickets

ROOT = Path(__file__).resolve().parent.parent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.merge_press", description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", type=Path, default=None,
                   help="a data directory seeded by benchmarks.seed_tickets (seeded here if it has no tickets); "
                        "the presses go to a copy of its database. Default: a temporary one")
    p.add_argument("--tickets", type=int, default=100_000, help="tickets to seed when seeding (100000)")
    p.add_argument("--against", default=None, metavar="REV",
                   help="also time server/domain/incidents.py of this git revision, taking turns with the current code")
    p.add_argument("--batch", type=int, default=50, help="presses per timed batch (50)")
    p.add_argument("--rounds", type=int, default=5, help="timed batches of each code (5)")
    p.add_argument("--session", action="store_true",
                   help="the press path through the SQLAlchemy session instead of sqlite3's cursor")
    p.add_argument("--seed", type=int, default=1, help="random seed of the data and of the presses (1)")
    p.add_argument("--json", action="store_true", help="also print the results as one JSON object")
    return p.parse_args(argv)


# Where the press transaction is, and the package it belongs to. A revision from before it moved there (or before
# presses were wire.IncidentBody) cannot run beside today's code: time it in a checkout of its own instead.
INCIDENTS = "server/domain/incidents.py"


def load_revision(rev: str) -> ModuleType:
    """``server/domain/incidents.py`` as it is at ``rev``, as a module of ``server.domain`` beside the current one."""
    shown = subprocess.run(["git", "show", f"{rev}:{INCIDENTS}"], cwd=ROOT, capture_output=True, text=True)
    if shown.returncode != 0:
        raise SystemExit(f"--against {rev}: it has no {INCIDENTS} (older code cannot run beside today's; run this "
                         f"benchmark in a checkout of {rev} instead)")
    name = f"server.domain._incidents_at_{re.sub(r'[^0-9A-Za-z]', '_', rev)}"
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(name, loader=None))
    module.__package__ = "server.domain"
    sys.modules[name] = module  # dataclasses look their module up there
    exec(compile(shown.stdout, f"{rev}:{INCIDENTS}", "exec"), module.__dict__)
    return module




@dataclass
class Target:
    ticket_id: int
    device_id: str
    button: str


def merge_targets(db_path: Path) -> list[Target]:
    """Open tickets a single press of the button that reported them merges into without raising them.

    The button is the one that reported the ticket, of a device that is active, not in test mode and
    still at the ticket's site; the ticket is the oldest open one of its scope and category (the one a
    press finds), and no more urgent than its category's default priority.
    """
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT t.id, t.device_id, t.button FROM tickets t "
            "JOIN categories c ON c.id = t.category_id JOIN devices d ON d.device_id = t.device_id "
            "WHERE t.status IN ('new', 'in_progress', 'on_hold') AND t.is_test = 0 AND t.priority <= c.priority "
            "AND d.status = 'active' AND d.test_mode = 0 AND t.scope = 'site:' || d.site_id "
            "AND t.id = (SELECT min(o.id) FROM tickets o WHERE o.scope = t.scope AND o.category_id = t.category_id "
            "            AND o.status IN ('new', 'in_progress', 'on_hold')) "
            "ORDER BY t.id").fetchall()
    finally:
        conn.close()
    return [Target(*r) for r in rows]


@dataclass
class Code:
    name: str
    module: Any
    cpu: list[float] = field(default_factory=list)
    wall: list[float] = field(default_factory=list)
    results: dict[str, int] = field(default_factory=dict)
    vm_steps: float = 0.0

    def per_press_ms(self, values: list[float], batch: int) -> tuple[float, float]:
        return min(values) / batch * 1000, statistics.median(values) / batch * 1000


def run_batch(code: Code, db: Database, targets: list[Target], rng: random.Random, settings: Any) -> None:
    now = wire.utcnow()
    presses = [wire.IncidentBody(
        event_id=str(uuid.UUID(int=rng.getrandbits(128))), device_id=t.device_id, button=t.button, press="single",
        pressed_at=now, seq=None, telemetry=seed_tickets.telemetry_of(rng, t.device_id, now), received_at=now)
        for t in targets]
    answers = []
    wall0, cpu0 = stats.clock(), time.process_time()
    for p in presses:
        answers.append(code.module.handle_press(db, p, settings)[0])
    code.cpu.append(time.process_time() - cpu0)
    code.wall.append(stats.clock() - wall0)
    for t, a in zip(targets, answers):
        kind = a["result"] if (a.get("ticket") or {}).get("id") == t.ticket_id else f"{a['result']} elsewhere"
        code.results[kind] = code.results.get(kind, 0) + 1


def count_vm_steps(code: Code, db: Database, targets: list[Target], rng: random.Random, settings: Any) -> float:
    """SQLite virtual-machine instructions per press over one batch, whatever the machine's load.

    A progress handler called at every instruction, on a connection made for it.
    """
    steps = [0]

    def count() -> int:
        steps[0] += 1
        return 0

    def listen(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.set_progress_handler(count, 1)

    db.engine.dispose()
    event.listen(db.engine, "connect", listen)
    try:
        run_batch(code, db, targets, rng, settings)
    finally:
        event.remove(db.engine, "connect", listen)
        db.engine.dispose()
    code.cpu.pop(), code.wall.pop()
    return steps[0] / len(targets)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="dashdesk-merge-press-"))
    try:
        source = args.data_dir or tmp / "seed"
        path = seed_tickets.database_path(source)
        if not c.ticket_count(path):
            print(f"seeding {args.tickets} tickets in {source} ...", file=sys.stderr)
            print(seed_tickets.describe(seed_tickets.seed(source, args.tickets, seed=args.seed)), file=sys.stderr)
        work = tmp / "dashdesk.sqlite3"
        shutil.copyfile(path, work)
        tickets = c.ticket_count(work)
        targets = merge_targets(work)
        codes = [Code("current", incidents)]
        if args.against:
            codes.insert(0, Code(args.against, load_revision(args.against)))
        needed = (args.rounds + 2) * args.batch * len(codes)
        if len(targets) < needed:
            print(f"merge_press: {len(targets)} open tickets to press, {needed} needed: seed more tickets or "
                  "lower --batch/--rounds", file=sys.stderr)
            return 2
        rng = random.Random(args.seed)
        rng.shuffle(targets)
        db = Database(f"sqlite:///{work}", fast_sql=not args.session)
        settings = incidents.Settings()
        batches = iter(targets[i:i + args.batch] for i in range(0, needed, args.batch))
        for code in codes:  # warm-up: statements prepared, modules' first-call costs paid
            run_batch(code, db, next(batches), rng, settings)
            code.cpu.clear(), code.wall.clear(), code.results.clear()
        meter = meters.PartsMeter({})  # what else the machine did meanwhile
        meter.start()
        for r in range(args.rounds):
            for code in (codes if r % 2 == 0 else codes[::-1]):
                run_batch(code, db, next(batches), rng, settings)
        machine_cpu = meter.stop()
        for code in codes:
            code.vm_steps = count_vm_steps(code, db, next(batches), rng, settings)
        db.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    path_name = "SQLAlchemy session" if args.session else "sqlite3 cursor (the default)"
    print(f"merging presses, {args.batch} a batch, {args.rounds} batches of each code, taking turns; "
          f"database of {tickets} tickets; press path: {path_name}")
    rows = []
    out: dict[str, Any] = {"machine": c.machine(), "batch": args.batch, "rounds": args.rounds, "tickets": tickets,
                           "session": args.session, "codes": {}}
    for code in codes:
        best, median = code.per_press_ms(code.cpu, args.batch)
        wall_best, _ = code.per_press_ms(code.wall, args.batch)
        rows.append([code.name, best, median, wall_best, round(code.vm_steps),
                     ", ".join(f"{k} {v}" for k, v in sorted(code.results.items()))])
        out["codes"][code.name] = {"cpu_ms_best": best, "cpu_ms_median": median, "wall_ms_best": wall_best,
                                   "cpu_s": code.cpu, "vm_steps_per_press": code.vm_steps, "results": code.results}
    print(stats.table(rows, ["code", "cpu ms/press best", "median", "wall ms/press best", "SQLite VM steps/press",
                         "answers checked"]))
    if len(codes) == 2:
        before, after = (out["codes"][k.name]["cpu_ms_best"] for k in codes)
        print(f"current vs {codes[0].name}: {after - before:+.3f} ms CPU per press ({(after / before - 1) * 100:+.0f}%)")
    m = out["machine"]
    print(f"machine: {m['cores']} cores, Python {m['python']}, SQLite {m['sqlite']}, commit {m['commit']}")
    if line := meters.disturbance_line(machine_cpu):
        print(line)
    out["machine_cpu"] = machine_cpu
    if args.json:
        print(c.dump_json(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
