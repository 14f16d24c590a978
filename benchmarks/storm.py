"""A storm: presses from many devices published as fast as ONE client can, every one acked and counted once.

    /tmp/venv/bin/python -m benchmarks.storm [--presses 5000] [--devices 500] [--profile] [--json]

Starts a real Mosquitto, the ticket server and the bridge on free ports of
127.0.0.1 (``benchmarks.stack.Stack``). In one run:

1. bare broker: one client publishes ``--presses`` QoS 1 messages (press-sized)
   as fast as it can to a topic another client subscribes to: messages/s;
2. storm: one client publishes ``--presses`` presses (QoS 1, a fresh event_id
   each, round robin over ``--devices`` devices) without waiting for any ack,
   then waits for every final ack on the devices' ack topics;
3. check: every event_id got exactly one final ack, and the tickets of those
   devices (one paged ``GET /api/v1/tickets?limit=500&cursor=...`` listing,
   filtered by device-id prefix) count each press exactly once: the sum of
   ``occurrences`` equals the number of presses, device by device.

``--profile`` attaches py-spy to the server and to
the bridge during the storm and says where their time went. It prints figures;
it asserts nothing about time, and exits 0 unless the stack fails to start.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from collections import Counter
from typing import Any

from dashdesk import wire

from . import harness as c
from . import clients, meters, profiling, stats

TARGET_RATE = 500.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.storm", description=__doc__.split("\n\n")[0])
    p.add_argument("--presses", type=int, default=5000, help="presses in the storm (5000)")
    p.add_argument("--devices", type=int, default=500, help="devices they come from, round robin (500)")
    p.add_argument("--timeout", type=float, default=None,
                   help="seconds to wait for the last ack (default: 60 + presses / 50)")
    p.add_argument("--no-map", action="store_true", help="leave buttons unmapped (presses go to 'other')")
    p.add_argument("--no-bare", action="store_true", help="skip the bare broker throughput phase")
    p.add_argument("--profile", action="store_true",
                   help="run py-spy on the server and the bridge during the storm (slows the storm down)")
    p.add_argument("--profile-rate", type=int, default=100, help="py-spy samples per second (100)")
    c.add_stack_options(p)
    return p.parse_args(argv)


def bare_throughput(url: str, count: int) -> dict[str, Any]:
    """One client publishes ``count`` QoS 1 messages as fast as it can to a subscriber."""
    prefix = f"bench/{stats.run_id()}"
    sub = clients.Receiver(url, f"{prefix}/+", "bare-sub")
    pub = clients.Client(url, "bare-pub", max_inflight=0)
    sub.want = pub.expect_pubacks = count
    payload = clients.press_payload("bench-bare", str(uuid.uuid4()))
    topics = [f"{prefix}/{i}" for i in range(count)]
    try:
        t0 = stats.clock()
        for topic in topics:
            pub.publish(topic, payload)
        t_calls = stats.clock() - t0
        pub.puback_done.wait(60)
        t_pubacked = stats.clock() - t0
        sub.done.wait(60)
        t_all = stats.clock() - t0
        received = sub.count
    finally:
        pub.close()
        sub.close()
    return {"messages": count, "received": received, "publish_calls_s": round(t_calls, 3),
            "all_pubacked_s": round(t_pubacked, 3), "all_received_s": round(t_all, 3),
            "msgs_per_s": round(received / t_all, 1)}


def count_in_tickets(stack: Any, prefix: str) -> dict[str, Any]:
    """Sum ``occurrences`` of the tickets whose device id starts with ``prefix``: one paged listing."""
    per_device: Counter[str] = Counter()
    tickets = pages = 0
    cursor = None
    t0 = stats.clock()
    while True:
        params: dict[str, Any] = {"limit": 500}
        if cursor:
            params["cursor"] = cursor
        r = stack.api("GET", "/api/v1/tickets", params=params)
        r.raise_for_status()
        page = r.json()
        pages += 1
        for t in page["items"]:
            if (t["device_id"] or "").startswith(prefix):
                per_device[t["device_id"]] += t["occurrences"]
                tickets += 1
        cursor = page.get("next")
        if not cursor:
            break
    return {"occurrences": sum(per_device.values()), "tickets": tickets, "devices": len(per_device),
            "per_device": per_device, "pages": pages, "listing_s": round(stats.clock() - t0, 3)}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    run = stats.run_id()
    prefix = f"storm-{run}-"
    devices = [f"{prefix}d{i:04d}" for i in range(args.devices)]
    timeout = args.timeout if args.timeout is not None else 60 + args.presses / 50
    t_begin = time.monotonic()
    print("starting Mosquitto, the server and the bridge ...", file=sys.stderr)
    stack = c.start_stack(args, "storm")
    collector = publisher = None
    try:
        out: dict[str, Any] = {"benchmark": "storm", "machine": c.machine(),
                               "settings": {"presses": args.presses, "devices": args.devices,
                                            "mapped": not args.no_map, "profile": args.profile,
                                            **c.stack_settings(stack, args)}}
        whole = meters.CpuMeter(stack)
        whole.start()
        if not args.no_map:
            print(f"mapping {args.devices} devices' buttons ...", file=sys.stderr)
            for d in devices:
                stack.map_button(d, "b1", "printer", label="Printer")
        url = stack.broker.url
        if not args.no_bare:
            print(f"bare broker: {args.presses} QoS 1 messages from one client ...", file=sys.stderr)
            out["bare_broker"] = bare_throughput(url, args.presses)

        collector = clients.AckCollector(url)
        publisher = clients.Client(url, "storm", max_inflight=0)  # no client-side cap on presses in flight
        topics = wire.Topics()
        presses = []
        for i in range(args.presses):
            device = devices[i % len(devices)]
            eid = str(uuid.uuid4())
            presses.append((eid, device, topics.press(device), clients.press_payload(device, eid)))
        ids = [p[0] for p in presses]
        publisher.expect_pubacks = len(presses)
        collector.expect(len(presses))

        profiler = profiling.Profiler(stack, stack.root / "profile", rate=args.profile_rate) if args.profile else None
        if profiler:
            profiler.start()
        meter = meters.CpuMeter(stack, profiler)
        print(f"storm: {args.presses} presses from {args.devices} devices ...", file=sys.stderr)
        meter.start()
        t0 = stats.clock()
        for eid, device, topic, payload in presses:
            collector.note_sent(eid, device, t0)
            publisher.publish(topic, payload)
        t_calls = stats.clock() - t0
        publisher.puback_done.wait(timeout)
        t_pubacked = stats.clock() - t0
        complete = collector.wait_all(timeout)
        t_done = stats.clock() - t0
        cpu = meter.stop()
        profiles = profiler.stop() if profiler else {}
        time.sleep(0.5)  # let a duplicate ack, if any, arrive before counting
        finals = collector.latencies(ids)
        last_ack = max(finals) if finals else float("nan")
        with collector.lock:
            final_acks = sum(collector.final_count[e] for e in ids)
            unique = sum(1 for e in ids if collector.final_count[e] >= 1)
        storm = {"presses": len(ids), "publish_calls_s": round(t_calls, 3), "all_pubacked_s": round(t_pubacked, 3),
                 "last_final_ack_s": round(last_ack, 3), "complete": complete,
                 "presses_per_s": round(unique / last_ack, 1) if finals else 0.0,
                 "final_acks": final_acks, "event_ids_acked": unique, "missing": len(ids) - unique,
                 "duplicate_final_acks": collector.duplicates(ids), "queued_acks": collector.queued,
                 "acks_on_wrong_topic": collector.wrong_topic, "unknown_acks": collector.unknown,
                 "results": collector.results(ids), "wait_s": round(t_done, 3)}
        storm["ack_latency"] = stats.summary_ms(finals)
        out["storm"] = storm
        out["cpu"] = cpu
        whole.profiler = profiler  # py-spy's CPU is its own row, not "other processes"
        out["machine_during_run"] = whole.stop()

        print("checking the tickets through the API ...", file=sys.stderr)
        counted = count_in_tickets(stack, prefix)
        expected = Counter(p[1] for p in presses)
        wrong = {d: (counted["per_device"].get(d, 0), n) for d, n in expected.items()
                 if counted["per_device"].get(d, 0) != n}
        out["api"] = {"occurrences": counted["occurrences"], "tickets": counted["tickets"],
                      "devices_with_tickets": counted["devices"], "pages": counted["pages"],
                      "listing_s": counted["listing_s"], "devices_miscounted": len(wrong),
                      "miscounted_examples": dict(list(wrong.items())[:5])}
        profiling.add_profiles(out, profiles)
        if profiles:
            out["profile_rate"] = args.profile_rate
    finally:
        clients.close_all(publisher, collector)
        c.stop_stack(stack, keep=args.keep or args.profile)
    out["elapsed_s"] = round(time.monotonic() - t_begin, 1)
    report(out, args)
    return 0


def report(out: dict[str, Any], args: argparse.Namespace) -> None:
    s, api = out["storm"], out["api"]
    print()
    print(f"dashdesk storm benchmark: {s['presses']} presses from {args.devices} devices, one publishing client"
          + (" (UNDER py-spy: slower than a plain run)" if args.profile else ""))
    print(c.stack_lines(out))
    print()
    rows = []
    if "bare_broker" in out:
        b = out["bare_broker"]
        rows.append(["bare broker (QoS1 pub -> sub)", b["messages"], b["publish_calls_s"], b["all_pubacked_s"],
                     b["all_received_s"], b["msgs_per_s"]])
    rows.append(["storm (press -> final ack)", s["presses"], s["publish_calls_s"], s["all_pubacked_s"],
                 s["last_final_ack_s"], s["presses_per_s"]])
    print(stats.table(rows, ["phase", "msgs", "publish calls s", "all PUBACKed s", "last received s", "per s"]))
    print()
    ok_acks = (s["event_ids_acked"] == s["presses"] and s["duplicate_final_acks"] == 0
               and s["final_acks"] == s["presses"])
    ok_count = api["occurrences"] == s["presses"] and api["devices_miscounted"] == 0
    print(f"acks: {s['final_acks']} final acks for {s['presses']} presses; {s['event_ids_acked']} event ids acked, "
          f"missing {s['missing']}, duplicate finals {s['duplicate_final_acks']}, queued acks {s['queued_acks']}, "
          f"on a wrong topic {s['acks_on_wrong_topic']}; results {s['results']}")
    lat = s["ack_latency"]
    print(f"ack latency during the storm (from the storm's start): p50 {lat['p50_ms'] / 1000:.2f} s, "
          f"p99 {lat['p99_ms'] / 1000:.2f} s, max {lat['max_ms'] / 1000:.2f} s")
    print(f"API: sum of occurrences over {api['tickets']} tickets of {api['devices_with_tickets']} devices = "
          f"{api['occurrences']} (expected {s['presses']}); devices miscounted {api['devices_miscounted']} "
          f"{api['miscounted_examples'] or ''}; listing took {api['pages']} pages, {api['listing_s']} s")
    meters.print_cpu("CPU used during the storm:", out["cpu"], out["machine_during_run"], s["presses"])
    profiling.print_profile(out, "the storm", out.get("profile_rate", args.profile_rate), s["presses"])
    rate_ok = s["presses_per_s"] >= TARGET_RATE
    c.print_summary(f"{s['presses_per_s']:.0f} presses/s end to end "
                    f"(last final ack after {s['last_final_ack_s']:.2f} s; "
                    f"target >= {TARGET_RATE:.0f}/s: {'MET' if rate_ok else 'MISSED'}); every press acked once: "
                    f"{'YES' if ok_acks else 'NO'}; counted once in tickets: {'YES' if ok_count else 'NO'} "
                    f"({api['occurrences']}/{s['presses']})"
                    + (f"; bare broker {out['bare_broker']['msgs_per_s']:.0f} msgs/s" if "bare_broker" in out else ""),
                    out, args, out["machine_during_run"])


if __name__ == "__main__":
    sys.exit(main())
