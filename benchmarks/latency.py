"""Press → ack latency at a steady rate, beside the bare broker, the bare server and the bare database.

    /tmp/venv/bin/python -m benchmarks.latency [--presses 1000] [--rate 50] [--devices 50] [--json]

Starts a real Mosquitto, the ticket server and the bridge on free ports of
127.0.0.1 (``benchmarks.stack.Stack``), then in one run measures, each at the same
rate and count:

* press → final ack: a device publishes a press (QoS 1) on its press topic; the
  time until the final ack (created/merged/...) arrives on its ack topic;
* bare MQTT: a client publishes QoS 1 to a topic an echo client subscribes to,
  which republishes it QoS 1 to a topic the first subscribes to (two broker
  hops, as press → bridge → ack); the time from publish to receipt;
* server alone: ``POST /api/v1/incidents`` straight to the server over a
  keep-alive HTTP connection, as the bridge sends it;
* bare SQLite: one INSERT + COMMIT in WAL with synchronous=FULL in the same
  data directory (back to back unless ``--db-paced``).

Prints figures only; it asserts nothing about time.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from typing import Any

import requests

from dashdesk import wire

from . import harness as c
from . import clients, meters, profiling, stats

TARGET_P99_MS = 50.0
PROFILE_RATE = 100


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.latency", description=__doc__.split("\n\n")[0])
    p.add_argument("--presses", type=int, default=1000, help="presses (and pings, and inserts) to time (1000)")
    p.add_argument("--rate", type=float, default=50.0, help="presses per second (50)")
    p.add_argument("--devices", type=int, default=50, help="devices the presses come from, round robin (50)")
    p.add_argument("--warmup", type=int, default=None, help="untimed presses first (default: one per device)")
    p.add_argument("--no-map", action="store_true", help="leave buttons unmapped (presses go to 'other')")
    p.add_argument("--no-http", action="store_true", help="skip the server-alone HTTP phase")
    p.add_argument("--no-db", action="store_true", help="skip the bare SQLite phase")
    p.add_argument("--db-paced", action="store_true", help="pace the SQLite inserts at --rate too")
    p.add_argument("--profile", action="store_true",
                   help="run py-spy on the server and the bridge during the press phase")
    c.add_stack_options(p)
    return p.parse_args(argv)


def server_alone(stack: Any, devices: list[str], count: int, rate: float) -> tuple[list[float], int]:
    """POST /api/v1/incidents as the bridge does (keep-alive session), timed per request."""
    from .stack import ADMIN_TOKEN

    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
    times: list[float] = []
    errors = 0

    def one(i: int) -> None:
        nonlocal errors
        body = wire.new_press(devices[i % len(devices)], "b1").to_dict()
        body["telemetry"] = {}
        body["received_at"] = wire.format_time(wire.utcnow())
        t0 = stats.clock()
        r = http.post(stack.base + "/api/v1/incidents", json=body, headers={"Idempotency-Key": body["event_id"]},
                      timeout=10)
        times.append(stats.clock() - t0)
        if r.status_code not in (200, 201):
            errors += 1

    stats.pace(rate, count, one)
    http.close()
    return times, errors


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    run = stats.run_id()
    devices = [f"bench-{run}-d{i:03d}" for i in range(args.devices)]
    http_devices = [f"bench-{run}-h{i:03d}" for i in range(args.devices)]
    warmup = args.devices if args.warmup is None else args.warmup
    t_begin = time.monotonic()
    print("starting Mosquitto, the server and the bridge ...", file=sys.stderr)
    stack = c.start_stack(args, "latency")
    collector = None
    presser = None
    try:
        out: dict[str, Any] = {"benchmark": "latency", "machine": c.machine(),
                               "settings": {"presses": args.presses, "rate": args.rate, "devices": args.devices,
                                            "warmup": warmup, "mapped": not args.no_map,
                                            **c.stack_settings(stack, args)}}
        whole = meters.CpuMeter(stack)
        whole.start()
        if not args.no_map:
            for d in devices + http_devices:
                stack.map_button(d, "b1", "printer", label="Printer")
        url = stack.broker.url
        collector = clients.AckCollector(url)
        presser = clients.Client(url, "devices", max_inflight=200)
        topics = wire.Topics()

        def press(i: int, ids: list[str]) -> None:
            device = devices[i % len(devices)]
            eid = str(uuid.uuid4())
            payload = clients.press_payload(device, eid)
            ids.append(eid)
            collector.note_sent(eid, device, stats.clock())
            presser.publish(topics.press(device), payload)

        # Warm-up: creates each device's ticket, opens the bridge's and server's connections.
        warm_ids: list[str] = []
        if warmup:
            print(f"warm-up: {warmup} presses ...", file=sys.stderr)
            collector.expect(warmup)
            stats.pace(args.rate, warmup, lambda i: press(i, warm_ids))
            collector.wait_all(30)
            out["warmup"] = stats.summary_ms(collector.latencies(warm_ids))

        print(f"bare MQTT: {args.presses} QoS 1 round trips at {args.rate:g}/s ...", file=sys.stderr)
        bare = clients.round_trips(url, args.presses, args.rate)
        out["bare_mqtt_rtt"] = stats.summary_ms(bare["rtt"])
        out["bare_mqtt_one_way"] = stats.summary_ms(bare["one_way"])

        if not args.no_db:
            print(f"bare SQLite: {args.presses} INSERT+COMMIT ...", file=sys.stderr)
            out["bare_sqlite"] = stats.summary_ms(c.sqlite_bare(stack.root, args.presses,
                                                            args.rate if args.db_paced else None))
            out["bare_sqlite"]["paced"] = bool(args.db_paced)

        if not args.no_http:
            print(f"server alone: {args.presses} POST /api/v1/incidents at {args.rate:g}/s ...", file=sys.stderr)
            times, errors = server_alone(stack, http_devices, args.presses, args.rate)
            out["server_http"] = stats.summary_ms(times)
            out["server_http"]["errors"] = errors

        print(f"presses: {args.presses} at {args.rate:g}/s from {args.devices} devices ...", file=sys.stderr)
        profiler = profiling.Profiler(stack, stack.root / "profile", rate=PROFILE_RATE) if args.profile else None
        if profiler:
            profiler.start()
        meter = meters.CpuMeter(stack, profiler)
        meter.start()
        ids: list[str] = []
        collector.expect(warmup + args.presses)
        duration = stats.pace(args.rate, args.presses, lambda i: press(i, ids))
        complete = collector.wait_all(30)
        cpu = meter.stop()
        profiles = profiler.stop() if profiler else {}
        lat = collector.latencies(ids)
        out["press_ack"] = stats.summary_ms(lat)
        out["press_ack"].update({"sent": len(ids), "final_acks": len(lat), "missing": len(ids) - len(lat),
                                 "complete": complete, "publish_s": round(duration, 3),
                                 "achieved_rate": round(len(ids) / duration, 2)})
        out["press_ack"]["results"] = collector.results(ids)
        out["press_ack"]["duplicate_final_acks"] = collector.duplicates(ids)
        out["press_ack"]["queued_acks"] = collector.queued
        out["press_ack"]["acks_on_wrong_topic"] = collector.wrong_topic
        out["cpu"] = cpu
        whole.profiler = profiler  # py-spy's CPU is its own row, not "other processes"
        out["machine_during_run"] = whole.stop()
        profiling.add_profiles(out, profiles)
    finally:
        clients.close_all(presser, collector)
        c.stop_stack(stack, keep=args.keep or args.profile)
    out["elapsed_s"] = round(time.monotonic() - t_begin, 1)
    report(out, args)
    return 0


def report(out: dict[str, Any], args: argparse.Namespace) -> None:
    print()
    print(f"dashdesk latency benchmark: {args.presses} presses at {args.rate:g}/s from {args.devices} devices "
          f"({'mapped' if not args.no_map else 'unmapped'} buttons; {out['settings']['warmup']} warm-up presses first)"
          + ("\nUNDER py-spy: the latencies below are distorted by the profiler; run without --profile for figures"
             if args.profile else ""))
    print(c.stack_lines(out))
    rows = []
    names = [("press_ack", "press -> final ack (whole pipe)"),
             ("bare_mqtt_rtt", "bare MQTT QoS1 round trip (2 hops)"),
             ("bare_mqtt_one_way", "bare MQTT QoS1 one hop"),
             ("server_http", "server alone: POST /incidents"),
             ("bare_sqlite", "bare SQLite INSERT+COMMIT (WAL, FULL)")]
    for key, label in names:
        if key in out:
            s = out[key]
            rows.append([label, s["n"], s["p50_ms"], s["p90_ms"], s["p99_ms"], s["max_ms"], s["mean_ms"]])
    print()
    print(stats.table(rows, ["measurement (ms)", "n", "p50", "p90", "p99", "max", "mean"]))
    pa = out["press_ack"]
    print()
    print(f"presses: sent {pa['sent']} in {pa['publish_s']:.1f} s ({pa['achieved_rate']:.1f}/s), final acks "
          f"{pa['final_acks']}, missing {pa['missing']}, duplicate finals {pa['duplicate_final_acks']}, "
          f"queued acks {pa['queued_acks']}, results {pa['results']}")
    if "warmup" in out:
        w = out["warmup"]
        print(f"warm-up (first press of each device, creates its ticket): p50 {w['p50_ms']:.2f} ms, "
              f"p99 {w['p99_ms']:.2f} ms, max {w['max_ms']:.2f} ms")
    meters.print_cpu("CPU used during the press phase:", out["cpu"], out["machine_during_run"], pa["sent"])
    profiling.print_profile(out, "the press phase", PROFILE_RATE, pa["sent"])
    p99 = pa["p99_ms"]
    verdict = "MET" if pa["missing"] == 0 and p99 <= TARGET_P99_MS else "MISSED"
    bare = out["bare_mqtt_rtt"]
    extra = ""
    if "server_http" in out:
        extra += f", server alone p99 {out['server_http']['p99_ms']:.1f} ms"
    if "bare_sqlite" in out:
        extra += f", SQLite commit p99 {out['bare_sqlite']['p99_ms']:.1f} ms"
    c.print_summary(f"press->ack p50 {pa['p50_ms']:.1f} ms, p99 {p99:.1f} ms, max {pa['max_ms']:.1f} ms at "
                    f"{args.rate:g}/s (target p99 <= {TARGET_P99_MS:g} ms: {verdict}); bare MQTT round trip p50 "
                    f"{bare['p50_ms']:.2f} ms, p99 {bare['p99_ms']:.2f} ms{extra}",
                    out, args, out["machine_during_run"])


if __name__ == "__main__":
    sys.exit(main())
