"""The embedded broker (amqtt, pure Python) beside Mosquitto, in the same run, on the same machine.

For each broker, started fresh with the ticket server and the bridge
(``benchmarks.stack.Stack``, every part on MQTT 3.1.1 since amqtt speaks nothing
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
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from launcher import broker as dd_broker
from dashdesk import wire
from launcher.embedded_broker import start_embedded

from . import harness as c
from . import clients, stats
from .meters import psutil

PAYLOAD = json.dumps({"device_id": "bench-device", "button": "b1", "press": "single",
                      "event_id": str(uuid.uuid4()), "ts": "2024-01-01T00:00:00.000Z",
                      "telemetry": {"rssi": -61, "battery": 87}}).encode()


# ---------------------------------------------------------------- the broker alone


def round_trip(url: str, protocol: int, count: int, rate: float) -> dict[str, Any]:
    times = clients.round_trips(url, count, rate, protocol, PAYLOAD)
    return {"rtt": stats.summary_ms(times["rtt"]), "one_hop": stats.summary_ms(times["one_way"]),
            "lost": count - len(times["rtt"])}


def throughput(url: str, protocol: int, count: int) -> dict[str, Any]:
    prefix = f"bench/{uuid.uuid4().hex[:8]}"
    sub = clients.Receiver(url, f"{prefix}/t/+", "sink", protocol)
    pub = clients.Client(url, "source", max_inflight=200, protocol=protocol)
    sub.want = count
    try:
        t0 = stats.clock()
        for i in range(count):
            pub.publish(f"{prefix}/t/{i}", PAYLOAD)
        complete = sub.done.wait(120)
        last = max(sub.at.values()) if sub.at else stats.clock()
    finally:
        pub.close()
        sub.close()
    elapsed = last - t0
    return {"messages": count, "received": len(sub.at), "duplicates": sub.count - len(sub.at),
            "complete": complete, "elapsed_s": elapsed, "msgs_per_s": len(sub.at) / elapsed if elapsed else 0.0}


# ---------------------------------------------------------------- the whole pipe


def pipe(kind: str, protocol: int, args: argparse.Namespace) -> dict[str, Any]:
    """Start the stack on ``kind``'s broker; measure press → ack at a rate, then a storm."""
    from .stack import Stack

    root = Path(tempfile.mkdtemp(prefix=f"dashdesk-bench-{kind}-"))
    stack = Stack(root, env={"DASHDESK_MQTT__PROTOCOL": str(protocol), "DASHDESK_BRIDGE__FEED_POLL_S": "0.2"},
                  embedded=kind == "embedded")
    stack.env.pop("DASHDESK_BRIDGE__WORKERS", None)  # the product's default, as benchmarks.latency does
    acks = presser = None
    try:
        stack.start()
        url = stack.broker.url
        run = uuid.uuid4().hex[:6]
        devices = [f"bench-{run}-d{i:03d}" for i in range(args.devices)]
        for d in devices:
            stack.map_button(d, "b1", "printer", label="Printer")
        acks = clients.AckCollector(url, protocol=protocol)
        presser = clients.Client(url, "devices", max_inflight=200, protocol=protocol)
        topics = wire.Topics()

        def press(i: int, ids: list[str]) -> None:
            device = devices[i % len(devices)]
            body = wire.new_press(device, "b1").to_dict()
            ids.append(body["event_id"])
            acks.note_sent(body["event_id"], device, stats.clock())
            presser.publish(topics.press(device), wire.dumps(body))

        out: dict[str, Any] = {"broker": kind, "protocol": "5" if protocol == 5 else "3.1.1"}
        warm: list[str] = []
        acks.expect(len(devices))
        stats.pace(args.rate, len(devices), lambda i: press(i, warm))  # creates each device's ticket, opens connections
        acks.wait_all(30)

        ids: list[str] = []
        acks.expect(len(devices) + args.presses)
        c0 = cpu_s(stack.broker.proc)
        stats.pace(args.rate, args.presses, lambda i: press(i, ids))
        acks.wait_all(30)
        lat = acks.latencies(ids)
        out["press_ack"] = stats.summary_ms(lat)
        out["press_ack"]["missing"] = len(ids) - len(lat)
        out["press_ack"]["broker_cpu_s"] = cpu_s(stack.broker.proc) - c0

        storm: list[str] = []
        acks.expect(len(devices) + args.presses + args.storm)
        c0 = cpu_s(stack.broker.proc)
        t0 = stats.clock()
        for i in range(args.storm):
            press(i, storm)
        publish_s = stats.clock() - t0
        complete = acks.wait_all(60 + args.storm / 20)
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
        out["storm"]["ack_p50_s"] = stats.pct(lat, 50)
        out["storm"]["ack_p99_s"] = stats.pct(lat, 99)
        out["broker_rss_mib"] = rss_mib(stack.broker.proc)
        return out
    finally:
        clients.close_all(presser, acks)
        c.stop_stack(stack, keep=False)


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

    mosq = c.mosquitto_version()
    return {"python": platform.python_version(), "cores": os.cpu_count(), "amqtt": pkg("amqtt"),
            "paho-mqtt": pkg("paho-mqtt"), "mosquitto": mosq}


def pipe_table(results: list[dict[str, Any]]) -> str:
    rows = []
    for r in results:
        pa, st = r["press_ack"], r["storm"]
        rows.append([r["broker"], r["protocol"], f"{pa['p50_ms']:.1f}", f"{pa['p99_ms']:.1f}", f"{pa['max_ms']:.1f}",
                     str(pa["missing"]), f"{st['last_final_ack_s']:.2f}", f"{st['presses_per_s']:.0f}",
                     f"{st['ack_p99_s']:.2f}", f"{st['acked']}/{st['presses']}",
                     f"{st['api_occurrences']}/{st['api_expected']}",
                     f"{pa['broker_cpu_s']:.2f}/{st['broker_cpu_s']:.2f}", f"{r['broker_rss_mib']:.0f}"])
    return stats.table(rows, ["broker", "proto", "press->ack p50 ms", "p99 ms", "max ms", "missing", "storm last ack s",
                          "presses/s", "storm ack p99 s", "acked", "API count", "broker CPU s (rate/storm)",
                          "RSS MiB"])


def bare_table(results: list[dict[str, Any]]) -> str:
    rows = []
    for r in results:
        rt, th = r["round_trip"], r["throughput"]
        rows.append([r["broker"], r["protocol"], f"{rt['rtt']['p50_ms']:.2f}", f"{rt['rtt']['p99_ms']:.2f}",
                     f"{rt['one_hop']['p50_ms']:.2f}", f"{rt['one_hop']['p99_ms']:.2f}", str(rt["lost"]),
                     f"{th['elapsed_s']:.2f}", f"{th['msgs_per_s']:.0f}", f"{th['received']}/{th['messages']}",
                     f"{r['broker_cpu_s']['round_trip']:.2f}/{r['broker_cpu_s']['throughput']:.2f}",
                     f"{r['broker_rss_mib']:.0f}"])
    return stats.table(rows, ["broker", "proto", "RTT p50 ms", "RTT p99 ms", "hop p50 ms", "hop p99 ms", "lost",
                          "msgs in s", "msgs/s", "recv", "CPU s (rtt/thr)", "RSS MiB"])


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
