"""What the benchmarks share: the real stack, a bare MQTT echo, percentiles."""

from __future__ import annotations

import json
import platform
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from dashdesk import mqtt as dd_mqtt
from tests.stack import Stack


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def summary(values_ms: list[float]) -> dict[str, float]:
    return {"n": len(values_ms), "p50": percentile(values_ms, 50), "p90": percentile(values_ms, 90),
            "p99": percentile(values_ms, 99), "max": max(values_ms) if values_ms else float("nan"),
            "mean": statistics.fmean(values_ms) if values_ms else float("nan")}


def machine() -> str:
    import os

    import psutil

    return (f"{platform.system()} {platform.release()}, {os.cpu_count()} cores, "
            f"{psutil.virtual_memory().total / 2**30:.0f} GiB, Python {platform.python_version()}")


def start_stack(**kwargs: Any) -> Stack:
    root = Path(tempfile.mkdtemp(prefix="dashdesk-bench-"))
    return Stack(root, **kwargs).start()


class Client:
    """A paho client with Nagle off that hands every message to ``on_message``."""

    def __init__(self, url: str, on_message: Any, subscribe: list[str]):
        self.ready = threading.Event()
        self.client, broker = dd_mqtt.make_client(url, f"bench-{uuid.uuid4().hex[:8]}", persistent=False)

        def on_connect(c: mqtt.Client, *_: Any) -> None:
            dd_mqtt.set_nodelay(c)
            if subscribe:
                c.subscribe([(t, 1) for t in subscribe])
            else:
                self.ready.set()

        self.client.on_connect = on_connect
        self.client.on_subscribe = lambda *_: self.ready.set()
        self.client.on_message = on_message
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        dd_mqtt.connect(self.client, broker, persistent=False)
        self.client.loop_start()
        if not self.ready.wait(10):
            raise RuntimeError("benchmark client did not subscribe")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def bare_round_trips(url: str, count: int, rate: float) -> list[float]:
    """QoS 1 publish → receipt through the broker alone, at ``rate`` per second (ms)."""
    sent: dict[str, float] = {}
    got: list[float] = []
    done = threading.Event()

    def on_message(_c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        t = time.perf_counter()
        key = msg.payload.decode()
        if key in sent:
            got.append((t - sent[key]) * 1000)
            if len(got) == count:
                done.set()

    topic = f"bench/{uuid.uuid4().hex[:8]}"
    client = Client(url, on_message, [topic])
    interval = 1 / rate
    start = time.perf_counter()
    for i in range(count):
        target = start + i * interval
        delay = target - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        key = str(i)
        sent[key] = time.perf_counter()
        client.client.publish(topic, key, qos=1)
    done.wait(30)
    client.close()
    return got


def bare_throughput(url: str, count: int) -> float:
    """Messages per second from one QoS 1 publisher to one subscriber through the broker alone."""
    got = [0]
    done = threading.Event()

    def on_message(*_: Any) -> None:
        got[0] += 1
        if got[0] == count:
            done.set()

    topic = f"bench/{uuid.uuid4().hex[:8]}"
    sub = Client(url, on_message, [topic])
    pub = Client(url, lambda *_: None, [])
    payload = json.dumps({"event_id": str(uuid.uuid4()), "pad": "x" * 150}).encode()
    start = time.perf_counter()
    for _ in range(count):
        pub.client.publish(topic, payload, qos=1)
    done.wait(60)
    elapsed = time.perf_counter() - start
    sub.close()
    pub.close()
    return got[0] / elapsed


def print_table(title: str, rows: dict[str, dict[str, float]]) -> None:
    print(f"\n{title}")
    print(f"{'':34} {'n':>6} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for name, s in rows.items():
        print(f"{name:34} {s['n']:>6} {s['p50']:>8.2f} {s['p90']:>8.2f} {s['p99']:>8.2f} {s['max']:>8.2f}")
