"""Press → ack latency at a steady rate, beside the bare broker and database in the same run.

    python -m benchmarks.latency [--presses 1000] [--rate 50] [--devices 50]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from dashdesk import wire

from .common import Client, bare_round_trips, machine, print_table, start_stack, summary


def press_latencies(stack: Any, count: int, rate: float, devices: int) -> list[float]:
    """Publish presses at ``rate``/s and time each until its final ack (ms)."""
    topics = wire.Topics()
    prefix = f"lat{uuid.uuid4().hex[:6]}"
    sent: dict[str, float] = {}
    got: dict[str, float] = {}
    done = threading.Event()

    def on_message(_c: Any, _u: Any, msg: Any) -> None:
        t = time.perf_counter()
        ack = json.loads(msg.payload)
        e = ack.get("event_id")
        if ack["result"] != "queued" and e in sent and e not in got:
            got[e] = (t - sent[e]) * 1000
            if len(got) == count:
                done.set()

    client = Client(stack.broker.url, on_message, [topics.subscription("ack")])
    start = time.perf_counter()
    for i in range(count):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        event = wire.new_press(f"{prefix}-{i % devices}", "b1")
        sent[event.event_id] = time.perf_counter()
        client.client.publish(topics.press(event.device_id), event.to_json(), qos=1)
    done.wait(60)
    client.close()
    return list(got.values())


def bare_database(path: Path, count: int) -> list[float]:
    """One insert and commit in SQLite, WAL with synchronous=FULL as the server runs it (ms)."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, event_id TEXT UNIQUE, body TEXT)")
    out = []
    for i in range(count):
        t = time.perf_counter()
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO t (event_id, body) VALUES (?, ?)", (str(uuid.uuid4()), "x" * 300))
        db.execute("COMMIT")
        out.append((time.perf_counter() - t) * 1000)
    db.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presses", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    stack = start_stack()
    try:
        # A short warm-up: the first connections and statements are not what a shop sees all day.
        press_latencies(stack, 50, args.rate, args.devices)
        rows = {
            "press → final ack (dashdesk)": summary(press_latencies(stack, args.presses, args.rate, args.devices)),
            "bare MQTT QoS 1 round trip": summary(bare_round_trips(stack.broker.url, args.presses, args.rate)),
            "bare SQLite insert+commit (FULL)": summary(bare_database(stack.root / "bare.sqlite3", args.presses)),
        }
    finally:
        stack.stop()
    print(f"machine: {machine()}")
    print_table(f"{args.presses} presses at {args.rate:g}/s from {args.devices} devices", rows)
    print(f"\np99 press → ack: {rows['press → final ack (dashdesk)']['p99']:.1f} ms (target ≤ 50 ms)")
    if args.json:
        print(json.dumps(rows))


if __name__ == "__main__":
    main()
