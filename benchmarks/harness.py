"""The benchmarks' harness: command-line options, the stack started and stopped, the machine, statistics
and the report's lines.

Everything runs on 127.0.0.1: a real Mosquitto, the ticket server (waitress)
and the bridge, started by ``benchmarks.stack.Stack`` in a fresh data directory.
The MQTT clients are in ``benchmarks.clients``, the CPU meters in ``benchmarks.meters``,
py-spy and the analysis of its samples in ``benchmarks.profiling``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from launcher import broker as dd_broker

from .clients import press_payload
from .meters import psutil, quiet
from .stack import DASHDESK, Stack
from .stats import clock, pace

# ---------------------------------------------------------------- command line and stack


def add_server_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--server-workers", type=int, default=None,
                   help="server processes (the server runs one; kept for older figures' command lines)")
    p.add_argument("--server-threads", type=int, default=None,
                   help="server threads (default: the product's own default)")


def add_stack_options(p: argparse.ArgumentParser) -> None:
    add_server_options(p)
    p.add_argument("--bridge-workers", type=int, default=None,
                   help="the bridge's press threads (default: the product's configured default)")
    p.add_argument("--keep", action="store_true", help="keep the data directory (logs, databases) afterwards")
    p.add_argument("--json", action="store_true", help="also print the results as one JSON object")


def start_stack(args: argparse.Namespace, name: str) -> Any:
    """Start Mosquitto, the server and the bridge in a fresh temporary directory.

    Worker counts not given on the command line are left to the product, so the
    benchmark measures what ``dashdesk server`` and ``dashdesk bridge`` do by default.
    """
    root = Path(tempfile.mkdtemp(prefix=f"dashdesk-{name}-"))
    workers = {} if args.bridge_workers is None else {"DASHDESK_BRIDGE__WORKERS": str(args.bridge_workers)}
    stack = Stack(root, env=workers)
    stack.server.argv = server_argv(args)
    try:
        stack.start()
    except BaseException:
        stop_stack(stack, keep=True)
        raise
    return stack


def server_argv(args: argparse.Namespace) -> list[str]:
    """``dashdesk server`` with the worker and thread counts given on the command line, if any."""
    argv = DASHDESK + ["server"]
    if args.server_workers is not None:
        argv += ["--workers", str(args.server_workers)]
    if args.server_threads is not None:
        argv += ["--threads", str(args.server_threads)]
    return argv


def server_settings(stack: Any, args: argparse.Namespace) -> dict[str, Any]:
    """The worker processes and threads the server actually runs with."""
    from launcher.cli import cli

    server = cli.commands["server"]
    workers: Any = args.server_workers or "?"
    if psutil is not None:
        try:
            workers = len(psutil.Process(stack.server.proc.pid).children()) or 1  # one process, no children
        except psutil.Error:
            pass
    threads = args.server_threads or next((p.default for p in server.params if p.name == "threads"), "?")
    return {"server_workers": workers, "server_threads": threads}


def stack_settings(stack: Any, args: argparse.Namespace) -> dict[str, Any]:
    """The worker counts the parts actually run with."""
    from dashdesk import config as dd_config

    bridge = args.bridge_workers or dd_config.load(env={})["bridge"].get("workers", "?")
    return {**server_settings(stack, args), "bridge_workers": bridge,
            "given": {"server_workers": args.server_workers, "server_threads": args.server_threads,
                      "bridge_workers": args.bridge_workers}}


def stop_stack(stack: Any, keep: bool) -> None:
    try:
        stack.stop()
    finally:
        for part in (stack.bridge, stack.server):
            part.kill()
        stack.broker.kill()
        if keep:
            print(f"data directory kept: {stack.root}", file=sys.stderr)
        else:
            shutil.rmtree(stack.root, ignore_errors=True)


def machine() -> dict[str, Any]:
    mem = None
    if psutil is not None:
        mem = round(psutil.virtual_memory().total / 2**30, 1)
    mosq = mosquitto_version()
    commit = "?"
    try:
        root = Path(__file__).resolve().parent.parent
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                              timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "server", "broker_bridge", "dashdesk"],
                               cwd=root, capture_output=True, text=True, timeout=5).stdout.strip()
        commit = (head + (" + uncommitted changes in product code" if dirty else "")) or "?"
    except (OSError, subprocess.SubprocessError):
        pass
    return {"cores": os.cpu_count(), "memory_gib": mem, "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version, "mosquitto": mosq, "os": platform.platform(), "commit": commit}


def mosquitto_version() -> str:
    """The version of the Mosquitto the stack starts (``launcher.broker.find_mosquitto``), or "?"."""
    exe = dd_broker.find_mosquitto()
    if not exe:
        return "?"
    try:
        out = subprocess.run([exe, "-h"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return "?"
    return out.splitlines()[0].split("version")[-1].strip() if out else "?"


def sqlite_bare(data_dir: Path, count: int, rate: float | None = None) -> list[float]:
    """Time ``count`` single-row INSERT + COMMIT transactions (WAL, synchronous=FULL) in ``data_dir``."""
    path = data_dir / "bench-bare.sqlite3"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, event_id TEXT UNIQUE, body TEXT)")
    body = press_payload("bench-db", str(uuid.uuid4())).decode()
    times: list[float] = []

    def one(_i: int) -> None:
        t0 = clock()
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO t (event_id, body) VALUES (?, ?)", (str(uuid.uuid4()), body))
        db.execute("COMMIT")
        times.append(clock() - t0)

    if rate:
        pace(rate, count, one)
    else:
        for i in range(count):
            one(i)
    db.close()
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    return times


# ---------------------------------------------------------------- reports


def machine_line(m: dict[str, Any], mosquitto: bool = True) -> str:
    """The report's line on the machine (``m``: :func:`machine`)."""
    return (f"machine: {m['cores']} cores, {m['memory_gib']} GiB, Python {m['python']}, SQLite {m['sqlite']}"
            + (f", Mosquitto {m['mosquitto']}" if mosquitto else ""))


def stack_lines(out: dict[str, Any]) -> str:
    """The machine, the code and the worker counts of a run of the whole stack."""
    m, st = out["machine"], out["settings"]
    return (machine_line(m) + "\n"
            + f"code: {m['commit']}; server {st['server_workers']} worker process(es) x {st['server_threads']} "
              f"threads, bridge {st['bridge_workers']} press workers")



def print_summary(text: str, out: dict[str, Any], args: argparse.Namespace,
                  whole: dict[str, Any] | None) -> None:
    """The SUMMARY line (``text``, then the run's duration and whether the machine was disturbed over
    ``whole``), then with ``--json`` the results as one JSON object."""
    print()
    print(("SUMMARY (UNDER py-spy, not a figure to quote): " if getattr(args, "profile", False) else "SUMMARY: ")
          + text + f"; run took {out['elapsed_s']} s"
          + ("" if whole is None or quiet(whole) else "; machine DISTURBED by other processes"))
    if args.json:
        print(dump_json(out))


def dump_json(obj: Any) -> str:
    def clean(o: Any) -> Any:
        if isinstance(o, dict):
            return {str(k): clean(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [clean(v) for v in o]
        if isinstance(o, float):
            return None if o != o else round(o, 3)
        if isinstance(o, (str, int, bool)) or o is None:
            return o
        return str(o)
    return json.dumps(clean(obj))


def ticket_count(path: Path) -> int:
    """Tickets in the dashdesk database at ``path``: 0 if there is none yet or it is not migrated."""
    if not path.exists():
        return 0
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return db.execute("SELECT count(*) FROM tickets").fetchone()[0]
    except sqlite3.OperationalError:  # not migrated yet
        return 0
    finally:
        db.close()
