"""The embedded broker (amqtt, pure Python) beside Mosquitto, in the same run, on the same machine.

For each broker, started fresh with the ticket server and the bridge
(``tests.stack.Stack``, every part on MQTT 3.1.1 since amqtt speaks nothing
else; ``--mqtt5`` adds Mosquitto with MQTT 5, dashdesk's default):

* press → final ack: presses (QoS 1, a fresh event_id each) at a steady rate
  (``--rate``, 50/s) round robin from ``--devices`` devices, after one warm-up
  press per device; the time from publish to the final ack on the device's ack
  topic, p50/p99.
* storm: ``--storm`` presses (2000) from the same devices as fast as one client
  publishes them; the time to the last final ack and presses/s end to end; the
  sum of the tickets' occurrences through the API must equal the presses.
* ``--bare`` adds the broker alone: QoS 1 round trips through an echo client
  (two hops, like press → bridge → ack) and a 5000-message throughput run.

Every client is paho as dashdesk makes it (``dashdesk.mqtt.make_client``),
Nagle off. Prints figures; asserts nothing about time.

    /tmp/venv/bin/python -m benchmarks.embedded_broker [--presses 500] [--rate 50] [--storm 2000]
        [--devices 50] [--rounds 1] [--mqtt5] [--bare] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import paho.mqtt.client as mqtt

from dashdesk import broker as dd_broker
from dashdesk import mqtt as dd_mqtt
from dashdesk import wire
from dashdesk.embedded_broker import start_embedded

try:
    import psutil
except ImportError:  # CPU and memory are left out without it
    psutil = None

clock = time.perf_counter
PAYLOAD = json.dumps({"device_id": "bench-device", "button": "b1", "press": "single",
                      "event_id": str(uuid.uuid4()), "ts": "2024-01-01T00:00:00.000Z",
                      "telemetry": {"rssi": -61, "battery": 87}}).encode()


# ---------------------------------------------------------------- statistics


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile of ``values`` (p in 0..100); NaN when empty."""
    if not values:
        return float("nan")
    s = sorted(values)
    return s[max(0, min(len(s) - 1, math.ceil(p / 100 * len(s)) - 1))]


def summary_ms(seconds: list[float]) -> dict[str, Any]:
    ms = [v * 1000 for v in seconds]
    return {"n": len(ms), "p50_ms": pct(ms, 50), "p99_ms": pct(ms, 99),
            "max_ms": max(ms) if ms else float("nan")}


# ---------------------------------------------------------------- clients


class Client:
    """A dashdesk paho client (Nagle off), connected and subscribed before use."""

    def __init__(self, url: str, name: str, protocol: int, subscriptions: list[str] = (), *,
                 on_message: Callable[[mqtt.MQTTMessage], None] | None = None, max_inflight: int = 200):
        self.client, broker = dd_mqtt.make_client(url, f"bench-{name}-{uuid.uuid4().hex[:6]}",
                                                  protocol=protocol, persistent=False)
        self.client.max_inflight_messages_set(max_inflight)
        self.client.max_queued_messages_set(0)
        self.subscriptions = list(subscriptions)
        self.ready = threading.Event()
        self.pubacks = 0
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *_: self.ready.set()
        self.client.on_publish = self._on_publish
        if on_message is not None:
            self.client.on_message = lambda _c, _u, msg: on_message(msg)
        dd_mqtt.connect(self.client, broker, protocol=protocol, persistent=False)
        self.client.loop_start()
        if not self.ready.wait(10):
            self.close()
            raise RuntimeError(f"MQTT client {name} did not connect/subscribe")

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason_code: Any, _p: Any = None) -> None:
        if reason_code.is_failure:
            return
        dd_mqtt.set_nodelay(client)
        if self.subscriptions:
            client.subscribe([(t, 1) for t in self.subscriptions])
        else:
            self.ready.set()

    def _on_publish(self, *_: Any) -> None:
        self.pubacks += 1

    def publish(self, topic: str, payload: bytes) -> None:
        info = self.client.publish(topic, payload, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise RuntimeError(f"publish failed: {mqtt.error_string(info.rc)}")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Arrivals:
    """When each message (keyed by its topic's last level) first arrived on a subscription."""

    def __init__(self, url: str, subscription: str, name: str, protocol: int):
        self.at: dict[str, float] = {}
        self.count = 0
        self.want = -1
        self.done = threading.Event()
        self.client = Client(url, name, protocol, [subscription], on_message=self._on_message)

    def _on_message(self, msg: mqtt.MQTTMessage) -> None:
        now = clock()
        self.at.setdefault(msg.topic.rsplit("/", 1)[-1], now)  # only paho's network thread writes
        self.count += 1
        if self.count == self.want:
            self.done.set()

    def close(self) -> None:
        self.client.close()


# ---------------------------------------------------------------- phases


def round_trip(url: str, protocol: int, count: int, rate: float) -> dict[str, Any]:
    prefix = f"bench/{uuid.uuid4().hex[:8]}"
    echo = Client(url, "echo", protocol, [f"{prefix}/ping/+"])
    echo.client.on_message = lambda _c, _u, m: echo.client.publish(m.topic.replace("/ping/", "/pong/", 1),
                                                                   m.payload, qos=1)
    pings = Arrivals(url, f"{prefix}/ping/+", "ping-spy", protocol)
    pongs = Arrivals(url, f"{prefix}/pong/+", "pong", protocol)
    pub = Client(url, "pinger", protocol)
    pongs.want = count
    sent: dict[str, float] = {}
    try:
        start = clock()
        for i in range(count):
            delay = start + i / rate - clock()
            if delay > 0:
                time.sleep(delay)
            sent[str(i)] = clock()
            pub.publish(f"{prefix}/ping/{i}", PAYLOAD)
        pongs.done.wait(30)
        rtt = [pongs.at[k] - t for k, t in sent.items() if k in pongs.at]
        one_hop = [pings.at[k] - t for k, t in sent.items() if k in pings.at]
    finally:
        for x in (pub, pongs, pings, echo):
            x.close()
    return {"rtt": summary_ms(rtt), "one_hop": summary_ms(one_hop), "lost": count - len(rtt)}


def throughput(url: str, protocol: int, count: int) -> dict[str, Any]:
    prefix = f"bench/{uuid.uuid4().hex[:8]}"
    sub = Arrivals(url, f"{prefix}/t/+", "sink", protocol)
    pub = Client(url, "source", protocol)
    sub.want = count
    try:
        t0 = clock()
        for i in range(count):
            pub.publish(f"{prefix}/t/{i}", PAYLOAD)
        complete = sub.done.wait(120)
        last = max(sub.at.values()) if sub.at else clock()
    finally:
        pub.close()
        sub.close()
    elapsed = last - t0
    return {"messages": count, "received": len(sub.at), "duplicates": sub.count - len(sub.at),
            "complete": complete, "elapsed_s": elapsed, "msgs_per_s": len(sub.at) / elapsed if elapsed else 0.0}


# ---------------------------------------------------------------- the whole pipe


class Acks:
    """Every device's ack topic: when each event's first final ack arrived, and how many came."""

    def __init__(self, url: str, protocol: int):
        self.sent: dict[str, float] = {}
        self.final_at: dict[str, float] = {}
        self.finals = 0
        self.want = -1
        self.done = threading.Event()
        self.lock = threading.Lock()
        self.client = Client(url, "acks", protocol, [wire.Topics().subscription("ack")], on_message=self._on_message)

    def _on_message(self, msg: mqtt.MQTTMessage) -> None:
        now = clock()
        data = json.loads(msg.payload)
        if data.get("result") not in wire.FINAL_RESULTS:
            return
        with self.lock:
            self.finals += 1
            eid = data.get("event_id")
            if eid in self.sent and eid not in self.final_at:
                self.final_at[eid] = now
                if len(self.final_at) == self.want:
                    self.done.set()

    def expect(self, count: int) -> None:
        with self.lock:
            self.want = count
            self.done.clear()
            if len(self.final_at) >= count:
                self.done.set()

    def note(self, event_id: str) -> None:
        with self.lock:
            self.sent[event_id] = clock()

    def latencies(self, ids: list[str]) -> list[float]:
        with self.lock:
            return [self.final_at[e] - self.sent[e] for e in ids if e in self.final_at]

    def last_final(self, ids: list[str]) -> float:
        with self.lock:
            return max((self.final_at[e] for e in ids if e in self.final_at), default=float("nan"))

    def close(self) -> None:
        self.client.close()


def pipe(kind: str, protocol: int, args: argparse.Namespace) -> dict[str, Any]:
    """Start the stack on ``kind``'s broker; measure press → ack at a rate, then a storm."""
    from tests.stack import Stack

    root = Path(tempfile.mkdtemp(prefix=f"dashdesk-bench-{kind}-"))
    stack = Stack(root, env={"DASHDESK_MQTT__PROTOCOL": str(protocol), "DASHDESK_BRIDGE__FEED_POLL_S": "0.2"})
    stack.env.pop("DASHDESK_BRIDGE__WORKERS", None)  # the product's default, as benchmarks.latency does
    if kind == "embedded":
        stack.broker.start = lambda: setattr(stack.broker, "proc", start_embedded(root / "broker", stack.broker.port))
    acks = presser = None
    try:
        stack.start()
        url = stack.broker.url
        run = uuid.uuid4().hex[:6]
        devices = [f"bench-{run}-d{i:03d}" for i in range(args.devices)]
        for d in devices:
            stack.map_button(d, "b1", "printer", label="Printer")
        acks = Acks(url, protocol)
        presser = Client(url, "devices", protocol)
        topics = wire.Topics()

        def press(i: int, ids: list[str]) -> None:
            device = devices[i % len(devices)]
            body = wire.new_press(device, "b1").to_dict()
            ids.append(body["event_id"])
            acks.note(body["event_id"])
            presser.publish(topics.press(device), wire.dumps(body))

        def paced(count: int, rate: float, ids: list[str]) -> None:
            start = clock()
            for i in range(count):
                delay = start + i / rate - clock()
                if delay > 0:
                    time.sleep(delay)
                press(i, ids)

        out: dict[str, Any] = {"broker": kind, "protocol": "5" if protocol == 5 else "3.1.1"}
        warm: list[str] = []
        acks.expect(len(devices))
        paced(len(devices), args.rate, warm)  # creates each device's ticket, opens connections
        acks.done.wait(30)

        ids: list[str] = []
        acks.expect(len(devices) + args.presses)
        c0 = cpu_s(stack.broker.proc)
        paced(args.presses, args.rate, ids)
        acks.done.wait(30)
        lat = acks.latencies(ids)
        out["press_ack"] = summary_ms(lat)
        out["press_ack"]["missing"] = len(ids) - len(lat)
        out["press_ack"]["broker_cpu_s"] = cpu_s(stack.broker.proc) - c0

        storm: list[str] = []
        acks.expect(len(devices) + args.presses + args.storm)
        c0 = cpu_s(stack.broker.proc)
        t0 = clock()
        for i in range(args.storm):
            press(i, storm)
        publish_s = clock() - t0
        complete = acks.done.wait(60 + args.storm / 20)
        lat = acks.latencies(storm)
        last = acks.last_final(storm) - t0
        try:
            occurrences: Any = sum(t["occurrences"] for d in devices for t in stack.tickets(device_id=d))
        except AssertionError as exc:  # an API error: report it, keep the figures
            print(f"{kind}: the ticket listing failed: {str(exc)[:200]}", file=sys.stderr)
            occurrences = "error"
        out["storm"] = {"presses": len(storm), "acked": len(lat), "missing": len(storm) - len(lat),
                        "complete": complete, "last_final_ack_s": last,
                        "presses_per_s": len(lat) / last if lat else 0.0,
                        "publish_calls_s": publish_s, "broker_cpu_s": cpu_s(stack.broker.proc) - c0,
                        "api_occurrences": occurrences,
                        "api_expected": len(warm) + len(ids) + len(storm)}
        out["storm"]["ack_p50_s"] = pct(lat, 50)
        out["storm"]["ack_p99_s"] = pct(lat, 99)
        out["broker_rss_mib"] = rss_mib(stack.broker.proc)
        return out
    finally:
        for x in (presser, acks):
            if x is not None:
                x.close()
        try:
            stack.stop()
        finally:
            for part in (stack.bridge, stack.server):
                part.kill()
            stack.broker.kill()
            shutil.rmtree(root, ignore_errors=True)


# ---------------------------------------------------------------- brokers


def cpu_s(proc: subprocess.Popen) -> float:
    if psutil is None:
        return float("nan")
    try:
        t = psutil.Process(proc.pid).cpu_times()
        return t.user + t.system
    except psutil.Error:
        return float("nan")


def rss_mib(proc: subprocess.Popen) -> float:
    if psutil is None:
        return float("nan")
    try:
        return psutil.Process(proc.pid).memory_info().rss / 2**20
    except psutil.Error:
        return float("nan")


def measure(kind: str, protocol: int, args: argparse.Namespace) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix=f"dashdesk-bench-{kind}-"))
    port = dd_broker.free_port()
    proc = (start_embedded(root, port) if kind == "embedded" else dd_broker.start_mosquitto(root, port))
    url = f"mqtt://127.0.0.1:{port}"
    try:
        out: dict[str, Any] = {"broker": kind, "protocol": "5" if protocol == 5 else "3.1.1"}
        c0 = cpu_s(proc)
        out["round_trip"] = round_trip(url, protocol, args.count, args.rate)
        c1 = cpu_s(proc)
        out["throughput"] = throughput(url, protocol, args.messages)
        c2 = cpu_s(proc)
        out["broker_cpu_s"] = {"round_trip": c1 - c0, "throughput": c2 - c1}
        out["broker_rss_mib"] = rss_mib(proc)
        return out
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(root, ignore_errors=True)


def versions() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    def pkg(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    mosq = "?"
    exe = dd_broker.find_mosquitto()
    if exe:
        try:
            first = subprocess.run([exe, "-h"], capture_output=True, text=True, timeout=5).stdout.splitlines()
            mosq = first[0].split("version")[-1].strip() if first else "?"
        except (OSError, subprocess.SubprocessError):
            pass
    return {"python": platform.python_version(), "cores": os.cpu_count(), "amqtt": pkg("amqtt"),
            "paho-mqtt": pkg("paho-mqtt"), "mosquitto": mosq}


def table(header: list[str], rows: list[list[str]]) -> str:
    rows = [header] + rows
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def pipe_table(results: list[dict[str, Any]]) -> str:
    rows = []
    for r in results:
        pa, st = r["press_ack"], r["storm"]
        rows.append([r["broker"], r["protocol"], f"{pa['p50_ms']:.1f}", f"{pa['p99_ms']:.1f}", f"{pa['max_ms']:.1f}",
                     str(pa["missing"]), f"{st['last_final_ack_s']:.2f}", f"{st['presses_per_s']:.0f}",
                     f"{st['ack_p99_s']:.2f}", f"{st['acked']}/{st['presses']}",
                     f"{st['api_occurrences']}/{st['api_expected']}",
                     f"{pa['broker_cpu_s']:.2f}/{st['broker_cpu_s']:.2f}", f"{r['broker_rss_mib']:.0f}"])
    return table(["broker", "proto", "press->ack p50 ms", "p99 ms", "max ms", "missing", "storm last ack s",
                  "presses/s", "storm ack p99 s", "acked", "API count", "broker CPU s (rate/storm)", "RSS MiB"],
                 rows)


def bare_table(results: list[dict[str, Any]]) -> str:
    rows = []
    for r in results:
        rt, th = r["round_trip"], r["throughput"]
        rows.append([r["broker"], r["protocol"], f"{rt['rtt']['p50_ms']:.2f}", f"{rt['rtt']['p99_ms']:.2f}",
                     f"{rt['one_hop']['p50_ms']:.2f}", f"{rt['one_hop']['p99_ms']:.2f}", str(rt["lost"]),
                     f"{th['elapsed_s']:.2f}", f"{th['msgs_per_s']:.0f}", f"{th['received']}/{th['messages']}",
                     f"{r['broker_cpu_s']['round_trip']:.2f}/{r['broker_cpu_s']['throughput']:.2f}",
                     f"{r['broker_rss_mib']:.0f}"])
    return table(["broker", "proto", "RTT p50 ms", "RTT p99 ms", "hop p50 ms", "hop p99 ms", "lost",
                  "msgs in s", "msgs/s", "recv", "CPU s (rtt/thr)", "RSS MiB"], rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--presses", type=int, default=500, help="timed presses at --rate (500)")
    p.add_argument("--rate", type=float, default=50.0, help="presses (and bare pings) per second (50)")
    p.add_argument("--devices", type=int, default=50, help="devices pressing, round robin (50)")
    p.add_argument("--storm", type=int, default=2000, help="presses in the storm (2000)")
    p.add_argument("--rounds", type=int, default=1, help="runs of each broker, alternating (1)")
    p.add_argument("--mqtt5", action="store_true", help="also run Mosquitto with MQTT 5 clients")
    p.add_argument("--bare", action="store_true", help="also measure the brokers alone")
    p.add_argument("--count", type=int, default=1000, help="--bare: round-trip pings (1000)")
    p.add_argument("--messages", type=int, default=5000, help="--bare: throughput messages (5000)")
    p.add_argument("--json", action="store_true", help="also print the results as one JSON object")
    args = p.parse_args(argv)

    plan: list[tuple[str, int]] = []
    if dd_broker.find_mosquitto():
        plan.append(("mosquitto", 4))
    else:
        print("Mosquitto is not installed: measuring the embedded broker alone", file=sys.stderr)
    plan.append(("embedded", 4))
    if args.mqtt5 and dd_broker.find_mosquitto():
        plan.append(("mosquitto", 5))
    piped, bare = [], []
    t0 = time.monotonic()
    for n in range(args.rounds):
        for kind, protocol in (plan if n % 2 == 0 else plan[::-1]):
            name = f"{kind} (MQTT {'5' if protocol == 5 else '3.1.1'})"
            print(f"round {n + 1}: {name}: {args.presses} presses at {args.rate:g}/s, then a storm of "
                  f"{args.storm} ...", file=sys.stderr)
            piped.append(pipe(kind, protocol, args))
            if args.bare:
                print(f"round {n + 1}: {name} alone ...", file=sys.stderr)
                bare.append(measure(kind, protocol, args))
    info = versions()
    print(f"python {info['python']}, {info['cores']} cores, amqtt {info['amqtt']}, "
          f"mosquitto {info['mosquitto']}, paho-mqtt {info['paho-mqtt']}; run took {time.monotonic() - t0:.0f} s")
    print(f"whole pipe (broker + server + bridge): {args.presses} presses at {args.rate:g}/s from {args.devices} "
          f"devices after {args.devices} warm-up presses; storm: {args.storm} presses published at once")
    print(pipe_table(piped))
    if bare:
        print()
        print(f"broker alone: {args.count} QoS 1 pings at {args.rate:g}/s echoed as QoS 1 pongs (2 hops); "
              f"{args.messages} QoS 1 messages, 1 publisher -> 1 subscriber")
        print(bare_table(bare))
    if args.json:
        print(json.dumps({"versions": info, "args": vars(args), "pipe": piped, "bare": bare}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
