"""Fill a dashdesk database with months of realistic desk data, fast and deterministically.

    python -m benchmarks.seed_tickets --data-dir DIR --tickets 100000 [--open-share 0.2] [--sites 500] [--seed 1]

Creates (or migrates) ``DIR/dashdesk.sqlite3`` with ``server.migrate.upgrade``,
adds the shipped categories as the server does at start, then writes in
batches, straight on sqlite3's cursor with SQLAlchemy's own type conversions
(so every value is stored exactly as the app stores it):

* ``--sites`` sites and three devices each, their buttons mapped to the
  categories (b1 printer, b2 till, b3 sales-app, b4 network; b5 unmapped, so
  its presses go to ``other``);
* a few agents (``agent01``.. with password ``AGENT_PASSWORD``);
* ``--tickets`` tickets over ``--days`` days, more in shop hours and on
  weekdays, ids in the order they were reported. Priorities and deadlines
  follow ``server.domain.rules`` (a long press is one step more urgent). About
  ``--open-share`` of them are open (new, in progress, on hold; the younger a
  ticket, the likelier it is still open); the rest are mostly closed or
  resolved, some cancelled (by an agent, or by a double press); ~1 % are test
  tickets;
* every ticket's presses (one or more; the first created it, the others merged
  into it) with the ack the server answered, and its event-feed rows (created,
  merged, taken, assigned, held, resolved, closed, cancelled, notes), as
  ``server.domain.incidents`` and ``server.domain.tickets`` write them.

The same ``--seed`` and ``--now`` give the same database. ``--now`` defaults to
the start of the current UTC hour, so the open tickets' deadlines are near the
real clock (some breached, some not) when the desk shows them.

Meant for benchmarks and tests (``seed()``); it refuses a database that already
has tickets.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import random
import sqlite3
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence

from sqlalchemy import JSON, Table, create_engine, func, select

from dashdesk import wire
from server import migrate
from server.domain import rules, users
from server.app import load_categories, seed as seed_categories
from server.db import Database
from server.models import (OPEN_STATUSES, ButtonMapping, Category, Device, Event, Press, Site, Ticket, User,
    UTCDateTime)

AGENT_PASSWORD = "bench-agent-password"
AGENTS = tuple(f"agent{i:02d}" for i in range(1, 9))
DEVICES_PER_SITE = 3
# Buttons every device has, and the category each reports; b5 is unmapped (its presses go to "other").
BUTTONS = {"printer": "b1", "till": "b2", "sales-app": "b3", "network": "b4", "other": "b5"}
# How often each category is reported (of all tickets).
CATEGORY_SHARE = {"printer": 0.30, "till": 0.20, "sales-app": 0.20, "network": 0.15, "other": 0.15}
# Of the open tickets: new, in progress, on hold.
OPEN_MIX = {"new": 0.45, "in_progress": 0.40, "on_hold": 0.15}
# Of the others: most are closed, a quarter resolved and not yet closed, some cancelled.
DONE_MIX = {"closed": 0.70, "resolved": 0.24, "cancelled": 0.06}
LONG_PRESS_SHARE = 0.08
TEST_SHARE = 0.01
LATE_SHARE = 0.005
# How fast the chance of a ticket still being open falls with its age (days).
OPEN_DECAY_DAYS = 21.0
BATCH = 5000
CITIES = ("Northgate", "Riverside", "Old Town", "Harbour", "Station", "Market Square", "Hillview", "Westfield",
          "Eastside", "Parkway", "Lakeside", "Airport", "University", "Central", "Southbank", "Mill Lane")
FIRMWARE = ("1.3.2", "1.4.0", "1.4.1")
HOLD_REASONS = ("waiting for a part", "waiting for the shop to call back", "vendor ticket open",
                "needs an on-site visit")
RESOLUTIONS = ("restarted the device", "replaced the cable", "cleared the paper jam", "reset the router",
               "updated the app", "escalated to the vendor; fixed", "user error; explained")
NOTES = ("called the shop", "remote session done", "spare on its way", "shop manager informed")


class SeedError(RuntimeError):
    """The data directory cannot be seeded (it has tickets already)."""


@dataclass
class SeedResult:
    """What ``seed`` wrote."""

    path: Path
    now: datetime
    tickets: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    open_tickets: int = 0
    queue: int = 0  # open and not a test ticket: what the desk's queue shows
    presses: int = 0
    events: int = 0
    sites: int = 0
    devices: int = 0
    agents: tuple[str, ...] = AGENTS
    seconds: float = 0.0


def _utc_text(value: datetime | None) -> str | None:
    """An aware UTC datetime as SQLAlchemy stores ``UTCDateTime`` on SQLite, at a fifth of the cost."""
    return None if value is None else value.replace(tzinfo=None).isoformat(" ", "microseconds")


class _Writer:
    """``executemany`` of plain tuples on sqlite3's cursor, each value converted as SQLAlchemy binds it."""

    def __init__(self, conn: sqlite3.Connection, dialect: Any):
        self.cur = conn.cursor()
        self.dialect = dialect

    def _processor(self, column: Any, sample: Any) -> Any:
        """SQLAlchemy's bind processor for ``column``, or a faster one that stores the very same text."""
        process = column.type.dialect_impl(self.dialect).bind_processor(self.dialect)
        fast = (_utc_text if isinstance(column.type, UTCDateTime) else
                json.dumps if isinstance(column.type, JSON) else None)
        if fast is None:
            return process
        if sample is not None and fast(sample) != process(sample):
            raise AssertionError(f"{column}: {fast(sample)!r} != {process(sample)!r}")
        return fast

    def insert(self, table: Table, names: Sequence[str], rows: Iterable[tuple[Any, ...]]) -> int:
        rows = iter(rows)
        first = next(rows, None)
        if first is None:
            return 0
        procs = [(i, p) for i, (n, v) in enumerate(zip(names, first))
                 if (p := self._processor(table.c[n], v)) is not None]
        sql = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
        count, batch = 0, []
        for row in itertools.chain([first], rows):
            values = list(row)
            for i, process in procs:
                values[i] = process(values[i])
            batch.append(values)
            if len(batch) >= BATCH:
                self.cur.executemany(sql, batch)
                count += len(batch)
                batch.clear()
        if batch:
            self.cur.executemany(sql, batch)
            count += len(batch)
        return count


def _hour_start(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)


def database_path(data_dir: Path) -> Path:
    """Where the server keeps its SQLite database for ``--data-dir`` (``server.app.database_url``)."""
    return Path(data_dir).resolve() / "dashdesk.sqlite3"


def _report_times(rng: random.Random, count: int, now: datetime, days: int) -> list[datetime]:
    """``count`` times over the ``days`` before ``now``: mostly shop hours, fewer at weekends; ascending."""
    span = days * 86400.0
    out: list[float] = []
    while len(out) < count:
        s = rng.random() * span
        t = now - timedelta(seconds=s)
        weight = (1.0 if 8 <= t.hour < 20 else 0.12) * (0.6 if t.weekday() >= 5 else 1.0)
        if rng.random() < weight:
            out.append(s)
    out.sort(reverse=True)  # oldest first: ids in the order the tickets were reported
    return [now - timedelta(seconds=s) for s in out]


def telemetry_of(rng: random.Random, device_id: str, at: datetime) -> dict[str, Any]:
    """A press's telemetry as a device's ``telemetry.snapshot`` reports it."""
    r = rng.random
    data: dict[str, Any] = {"reported_at": at.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z",
                            "hostname": device_id,
                            "uptime_s": 600 + int(r() * 40 * 86400),
                            "ip": f"10.{int(r() * 256)}.{int(r() * 256)}.{2 + int(r() * 248)}",
                            "rssi_dbm": -88 + int(r() * 48), "cpu_temp_c": round(38 + r() * 46, 1),
                            "firmware": FIRMWARE[int(r() * len(FIRMWARE))]}
    if r() < 0.3:
        data["battery_pct"] = 5 + int(r() * 96)
    if r() < 0.5:
        data["probes"] = {"gateway": {"ok": r() > 0.1, "latency_ms": 1 + int(r() * 79)}}
    return data


def seed(data_dir: Path | str, tickets: int = 100_000, *, open_share: float = 0.2, sites: int = 500,
         days: int = 90, seed: int = 1, now: datetime | None = None) -> SeedResult:
    """Create ``data_dir/dashdesk.sqlite3`` (migrated) and fill it; return what was written."""
    t0 = time.perf_counter()
    if not 0.0 <= open_share <= 1.0:
        raise ValueError("open_share is a share: 0..1")
    now = _hour_start(now or wire.utcnow())
    path = database_path(Path(data_dir))
    path.parent.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{path}"
    migrate.upgrade(url)
    db = Database(url)
    try:
        categories, default_sla = load_categories()
        seed_categories(db, categories, default_sla)
        with db.read() as s:
            if s.scalar(select(func.count()).select_from(Ticket)):
                raise SeedError(f"{path} already has tickets; seed an empty data directory")
            cats = {c.slug: c for c in s.scalars(select(Category))}
    finally:
        db.close()
    rng = random.Random(seed)
    result = SeedResult(path=path, now=now)

    engine = create_engine(url)
    dialect = engine.dialect
    engine.dispose()
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=OFF")  # a seed that fails half way is simply made again
        conn.execute("PRAGMA cache_size=-262144")  # 256 MiB: the random event_id index stays in memory
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("BEGIN IMMEDIATE")
        w = _Writer(conn, dialect)
        first_id = _next_id(conn, "sites")
        site_rows = []
        for i in range(sites):
            code = f"st-{i + 1:04d}"
            site_rows.append((first_id + i, code, f"{CITIES[i % len(CITIES)]} {i // len(CITIES) + 1}"))
        result.sites = w.insert(Site.__table__, ("id", "code", "name"), site_rows)
        device_rows, mapping_rows, site_devices = [], [], {}
        first_dev = _next_id(conn, "devices")
        for sid, code, _name in site_rows:
            site_devices[sid] = [f"{code}-{chr(ord('a') + k)}" for k in range(DEVICES_PER_SITE)]
            for device_id in site_devices[sid]:
                seen = now - timedelta(seconds=rng.randrange(5, 600))
                device_rows.append((first_dev + len(device_rows), device_id, sid, "active", "physical",
                                    rng.random() > 0.03, now - timedelta(days=days + rng.randrange(5, 200)),
                                    seen, telemetry_of(rng, device_id, seen), seen))
                for slug, button in BUTTONS.items():
                    if slug != "other":
                        mapping_rows.append((device_id, button, "", cats[slug].id, cats[slug].name))
        result.devices = w.insert(Device.__table__, ("id", "device_id", "site_id", "status", "kind", "online",
                                                     "first_seen_at", "last_seen_at", "telemetry", "telemetry_at"),
                                  device_rows)
        w.insert(ButtonMapping.__table__, ("device_id", "button", "press", "category_id", "label"), mapping_rows)
        password_hash = users.hash_password(AGENT_PASSWORD)  # once: argon2 is slow on purpose
        w.insert(User.__table__, ("username", "password_hash", "role", "active", "created_at", "last_login_at"),
                 [(a, password_hash, "agent", True, now - timedelta(days=days + 30), None) for a in AGENTS])

        gen = _Tickets(rng, now, days, open_share, cats, site_rows, site_devices, _next_id(conn, "tickets"))
        ticket_rows, press_rows, event_rows = gen.build(tickets)
        w.insert(Ticket.__table__, _Tickets.TICKET_COLUMNS, ticket_rows)
        result.presses = w.insert(Press.__table__, _Tickets.PRESS_COLUMNS, press_rows)
        result.events = w.insert(Event.__table__, _Tickets.EVENT_COLUMNS, event_rows)
        conn.execute("COMMIT")
        result.tickets = len(ticket_rows)
        result.statuses = gen.statuses
        result.open_tickets = sum(gen.statuses[s] for s in OPEN_STATUSES)
        result.queue = gen.queue
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    finally:
        conn.close()
    result.seconds = time.perf_counter() - t0
    return result


def _next_id(conn: sqlite3.Connection, table: str) -> int:
    return (conn.execute(f"SELECT max(id) FROM {table}").fetchone()[0] or 0) + 1


class _Tickets:
    """Builds the tickets with their presses and events, as rows in the tables' column order."""

    TICKET_COLUMNS = ("id", "status", "priority", "category_id", "site_id", "scope", "device_id", "button", "title",
                      "occurrences", "reopen_count", "first_reported_at", "last_reported_at", "created_at",
                      "updated_at", "resolved_at", "respond_by", "resolve_by", "assignee", "responded_at",
                      "merged_into_id", "touched", "telemetry", "devices", "major_incident_id", "is_test",
                      "on_hold_since")
    PRESS_COLUMNS = ("event_id", "device_id", "button", "press", "seq", "pressed_at", "bridge_received_at",
                     "received_at", "late", "ticket_id", "result", "reason", "cancelled", "telemetry", "response")
    EVENT_COLUMNS = ("kind", "ticket_id", "devices", "actor", "data", "created_at")

    def __init__(self, rng: random.Random, now: datetime, days: int, open_share: float, cats: dict[str, Any],
                 site_rows: list[tuple[int, str, str]], site_devices: dict[int, list[str]], first_id: int):
        self.rng, self.now, self.days, self.open_share = rng, now, days, open_share
        self.cats = cats
        self.sites = site_rows
        # Some sites report far more than others (busy shops, old hardware).
        self.site_weights = [1.0 / math.sqrt(1 + (i * 7919) % len(site_rows)) for i in range(len(site_rows))]
        self.site_devices = site_devices
        self.first_id = first_id
        self.statuses: Counter[str] = Counter()
        self.queue = 0
        self.presses: list[list[Any]] = []  # seq is filled in once all presses are known
        self.events: list[tuple[Any, ...]] = []

    def _uuid(self) -> str:
        """A random (version 4 shaped) UUID from the seeded generator, as devices make event ids."""
        h = f"{self.rng.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"

    def _open_set(self, times: list[datetime]) -> set[int]:
        """Which tickets (by index) are still open: ``open_share`` of them, the young ones likelier."""
        want = round(self.open_share * len(times))
        # Weighted sampling without replacement (Efraimidis-Spirakis): keep the largest u ** (1 / w).
        keys = []
        for i, t in enumerate(times):
            age_days = (self.now - t).total_seconds() / 86400
            weight = math.exp(-age_days / OPEN_DECAY_DAYS) + 1e-3
            keys.append((self.rng.random() ** (1.0 / weight), i))
        keys.sort(reverse=True)
        return {i for _, i in keys[:want]}

    def build(self, count: int) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        rng = self.rng
        times = _report_times(rng, count, self.now, self.days)
        still_open = self._open_set(times)
        slugs, shares = zip(*CATEGORY_SHARE.items())
        site_picks = rng.choices(range(len(self.sites)), weights=self.site_weights, k=count)
        cat_picks = rng.choices(slugs, weights=shares, k=count)
        rows = []
        for i, created in enumerate(times):
            rows.append(self._ticket(self.first_id + i, created, cat_picks[i], self.sites[site_picks[i]],
                                     i in still_open))
        # Each device numbers its presses (seq) in the order it made them.
        self.presses.sort(key=lambda p: (p[1], p[5]))
        device, seq = None, 0
        for p in self.presses:
            seq = seq + 1 if p[1] == device else rng.randrange(1, 5000)
            device, p[4] = p[1], seq
        self.presses.sort(key=lambda p: p[7])  # rows in the order the server received them
        self.events.sort(key=lambda e: e[5])
        return rows, [tuple(p) for p in self.presses], self.events

    # ---------------------------------------------------------------- one ticket

    def _delay(self, minutes: float, spread: float = 0.8) -> timedelta:
        """A lognormal delay around ``minutes``."""
        return timedelta(minutes=max(0.2, minutes * math.exp(self.rng.gauss(0, spread))))

    def _ticket(self, tid: int, created: datetime, slug: str, site: tuple[int, str, str],
                is_open: bool) -> tuple[Any, ...]:
        rng, now = self.rng, self.now
        cat = self.cats[slug]
        site_id, _code, site_name = site
        device = rng.choice(self.site_devices[site_id])
        button = BUTTONS[slug]
        press_type = "long" if rng.random() < LONG_PRESS_SHARE else "single"
        priority = rules.press_priority(cat.priority, press_type)
        deadlines = rules.sla_deadlines(created, priority, cat.sla)
        targets = cat.sla.get(str(priority)) or {}
        respond_min = float(targets.get("respond_min", 60))
        resolve_min = float(targets.get("resolve_min", 1440))
        if is_open:
            status = rng.choices(tuple(OPEN_MIX), weights=tuple(OPEN_MIX.values()))[0]
        else:
            status = rng.choices(tuple(DONE_MIX), weights=tuple(DONE_MIX.values()))[0]
        by_press = status == "cancelled" and rng.random() < 0.5  # a double press right after the report
        is_test = rng.random() < TEST_SHARE
        self.statuses[status] += 1
        self.queue += is_open and not is_test

        def clamp(t: datetime, floor: datetime) -> datetime:
            """``t``, but not after the data's end nor before ``floor`` (the step before it)."""
            return max(floor, min(t, now - timedelta(seconds=rng.randrange(1, 300))))

        # What agents did, in order: (time, kind, changes, status after, extra data)
        actions: list[tuple[datetime, str, dict[str, Any], str, dict[str, Any]]] = []
        assignee = responded_at = resolved_at = on_hold_since = None
        if status == "new":
            if rng.random() < 0.1:
                assignee = rng.choice(AGENTS)
                responded_at = clamp(created + self._delay(respond_min * 0.5), created)
                actions.append((responded_at, "ticket.updated", {"assignee": [None, assignee]}, "new", {}))
        elif not by_press:
            assignee = rng.choice(AGENTS)
            responded_at = clamp(created + self._delay(respond_min * 0.6), created)
            actions.append((responded_at, "ticket.updated",
                            {"assignee": [None, assignee], "status": ["new", "in_progress"]}, "in_progress", {}))
            last = responded_at
            if status == "on_hold":
                last = on_hold_since = clamp(last + self._delay(30), last)  # the SLA clock stopped then
                actions.append((last, "ticket.updated", {"status": ["in_progress", "on_hold"]}, "on_hold",
                                {"reason": rng.choice(HOLD_REASONS)}))
            elif status in ("resolved", "closed"):
                resolved_at = clamp(last + self._delay(resolve_min * 0.35), last)
                actions.append((resolved_at, "ticket.updated", {"status": ["in_progress", "resolved"]},
                                "resolved", {"resolution": rng.choice(RESOLUTIONS)}))
                last = resolved_at
                if status == "closed":
                    last = clamp(last + timedelta(hours=rng.uniform(2, 72)), last)
                    actions.append((last, "ticket.updated", {"status": ["resolved", "closed"]}, "closed", {}))
            elif status == "cancelled":
                last = clamp(last + self._delay(20), last)
                actions.append((last, "ticket.updated", {"status": ["in_progress", "cancelled"]}, "cancelled", {}))
                resolved_at = None
            if rng.random() < 0.1:
                note_at = responded_at + (last - responded_at) * rng.random()
                actions.append((note_at, "ticket.note", {}, "", {"note": rng.choice(NOTES)}))
                actions.sort(key=lambda a: a[0])

        # Presses: the first made the ticket; more came until someone resolved it (or up to now).
        n = 1 if by_press else self._occurrences()
        until = resolved_at or (actions[-1][0] if status in ("closed", "cancelled") and actions else now)
        window = max(0.0, min((until - created).total_seconds(), 4 * 3600.0))
        extra = sorted(created + timedelta(seconds=rng.random() * window) for _ in range(n - 1))
        devices = [device]
        summary = {"id": tid, "number": rules.ticket_number(tid), "category": slug}
        last_telemetry = None
        pressed_times = []
        for k, received in enumerate([created, *extra]):
            by = device
            if k and rng.random() < 0.05:  # someone pressed another device of the same shop
                by = rng.choice(self.site_devices[site_id])
                if by not in devices:
                    devices = sorted([*devices, by])
            pressed = received - timedelta(milliseconds=rng.randrange(40, 200))
            late = rng.random() < LATE_SHARE
            if late:
                pressed -= timedelta(minutes=rng.uniform(1, 30))
            state = self._status_at(received, actions)
            result = "created" if k == 0 else "merged"
            telemetry = telemetry_of(rng, by, pressed)
            last_telemetry = telemetry
            pressed_times.append(pressed)
            self._press(by, button, press_type if k == 0 else "single", pressed, received, late, tid, result,
                        False, telemetry, {**summary, "status": state})
            self.events.append((f"ticket.{result}", tid, list(devices), f"device:{by}",
                                {"event_id": self.presses[-1][0], "press": self.presses[-1][3], "status": state,
                                 "late": late}, received))
        if by_press:
            cancel_at = created + timedelta(seconds=rng.uniform(2, 60))
            self.presses[-1][12] = True  # the report it cancelled
            self._press(device, button, "double", cancel_at - timedelta(milliseconds=80), cancel_at, False, tid,
                        "cancelled", False, last_telemetry, {**summary, "status": "cancelled"})
            self.events.append(("ticket.cancelled", tid, list(devices), f"device:{device}",
                                {"event_id": self.presses[-1][0], "press": "double", "status": "cancelled",
                                 "late": False}, cancel_at))
        for at, kind, changes, after, extra_data in actions:
            data: dict[str, Any] = {"changes": changes, "status": after or self._status_at(at, actions)}
            data.update(extra_data)
            self.events.append((kind, tid, list(devices), assignee or rng.choice(AGENTS), data, at))

        updated = max([created, *extra, *(a[0] for a in actions)] + ([cancel_at] if by_press else []))
        return (tid, status, priority, cat.id, site_id, f"site:{site_id}", device, button,
                f"{cat.name} at {site_name}", n, 0, min(pressed_times), max(pressed_times), created, updated,
                resolved_at, deadlines.respond_by, deadlines.resolve_by, assignee, responded_at, None, bool(actions),
                last_telemetry, devices, None, is_test, on_hold_since)

    def _occurrences(self) -> int:
        r = self.rng.random()
        return 1 if r < 0.70 else 2 if r < 0.88 else self.rng.randrange(3, 9)

    @staticmethod
    def _status_at(at: datetime, actions: list[tuple[datetime, str, dict[str, Any], str, dict[str, Any]]]) -> str:
        status = "new"
        for when, _kind, _changes, after, _extra in actions:
            if when > at:
                break
            status = after or status
        return status

    def _press(self, device_id: str, button: str, press: str, pressed: datetime, received: datetime, late: bool,
               ticket_id: int, result: str, cancelled: bool, telemetry: dict[str, Any] | None,
               summary: dict[str, Any]) -> None:
        event_id = self._uuid()
        bridge_at = received - timedelta(milliseconds=self.rng.randrange(3, 30))
        self.presses.append([event_id, device_id, button, press, None, pressed, bridge_at, received, late,
                             ticket_id, result, None, cancelled, telemetry,
                             wire.ack(event_id, result, summary, None)])


def describe(r: SeedResult) -> str:
    size = r.path.stat().st_size / 2**20 if r.path.exists() else 0.0
    statuses = ", ".join(f"{k} {v}" for k, v in sorted(r.statuses.items(), key=lambda kv: -kv[1]))
    return (f"seeded {r.path} in {r.seconds:.1f} s ({size:.0f} MiB): {r.tickets} tickets ({statuses}; "
            f"{r.queue} in the queue), {r.presses} presses, {r.events} events, {r.sites} sites, "
            f"{r.devices} devices, agents {', '.join(r.agents)} (password {AGENT_PASSWORD!r}); "
            f"times relative to {wire.format_time(r.now)}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.seed_tickets", description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", required=True, type=Path, help="the server's data directory (dashdesk.sqlite3)")
    p.add_argument("--tickets", type=int, default=100_000, help="tickets to write (100000)")
    p.add_argument("--open-share", type=float, default=0.2, help="share of the tickets still open (0.2)")
    p.add_argument("--sites", type=int, default=500, help=f"sites, {DEVICES_PER_SITE} devices each (500)")
    p.add_argument("--days", type=int, default=90, help="the tickets spread over this many days (90)")
    p.add_argument("--seed", type=int, default=1, help="random seed: the same seed, the same data (1)")
    p.add_argument("--now", default=None,
                   help="RFC 3339 time the data ends at (default: the start of the current UTC hour)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    now = datetime.fromisoformat(args.now.replace("Z", "+00:00")).astimezone(timezone.utc) if args.now else None
    try:
        result = seed(args.data_dir, args.tickets, open_share=args.open_share, sites=args.sites, days=args.days,
                      seed=args.seed, now=now)
    except (SeedError, ValueError) as exc:
        print(f"seed_tickets: {exc}", file=sys.stderr)
        return 2
    print(describe(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
