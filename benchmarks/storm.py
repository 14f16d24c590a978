"""A storm: presses from many devices published as fast as one client can.

Every press must be acked and counted exactly once; prints presses/s end to
end beside the bare broker's throughput measured in the same run.

    python -m benchmarks.storm [--presses 5000] [--devices 500]
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import uuid
from typing import Any

from dashdesk import wire

from .common import Client, bare_throughput, machine, start_stack


def run(presses: int, devices: int, workers: int, server_workers: int) -> dict[str, Any]:
    stack = start_stack(bridge_workers=workers, server_workers=server_workers)
    try:
        bare = bare_throughput(stack.broker.url, presses)
        prefix = f"storm{uuid.uuid4().hex[:6]}"
        ids = [f"{prefix}-{i}" for i in range(devices)]
        topics = wire.Topics()
        finals: dict[str, str] = {}
        doubles = [0]
        lock = threading.Lock()
        done = threading.Event()

        def on_message(_c: Any, _u: Any, msg: Any) -> None:
            ack = json.loads(msg.payload)
            if ack["result"] == "queued":
                return
            with lock:
                if ack["event_id"] in finals:
                    doubles[0] += 1
                finals[ack["event_id"]] = ack["result"]
                if len(finals) == presses:
                    done.set()

        listener = Client(stack.broker.url, on_message, [topics.subscription("ack")])
        publisher = Client(stack.broker.url, lambda *_: None, [])
        events = [wire.new_press(ids[i % devices], "b1") for i in range(presses)]
        payloads = [(topics.press(e.device_id), e.to_json()) for e in events]
        start = time.perf_counter()
        for topic, payload in payloads:
            publisher.client.publish(topic, payload, qos=1)
        published = time.perf_counter() - start
        done.wait(300)
        elapsed = time.perf_counter() - start
        listener.close()
        publisher.close()

        occurrences = 0
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 500}
            if cursor:
                params["cursor"] = cursor
            page = stack.api("GET", "/api/v1/tickets", params=params).json()
            occurrences += sum(t["occurrences"] for t in page["items"] if t["device_id"].startswith(prefix))
            cursor = page["next"]
            if not cursor:
                break
        return {
            "presses": presses, "devices": devices, "bridge_workers": workers, "server_workers": server_workers,
            "publish_s": round(published, 3), "last_ack_s": round(elapsed, 3),
            "presses_per_s": round(len(finals) / elapsed, 1), "acked": len(finals),
            "acked_every_press": set(finals) == {e.event_id for e in events},
            "repeated_final_acks": doubles[0], "occurrences_counted": occurrences,
            "bare_broker_msgs_per_s": round(bare, 1),
        }
    finally:
        stack.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presses", type=int, default=5000)
    parser.add_argument("--devices", type=int, default=500)
    parser.add_argument("--bridge-workers", type=int, default=2)
    parser.add_argument("--server-workers", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    r = run(args.presses, args.devices, args.bridge_workers, args.server_workers)
    print(f"machine: {machine()}")
    print(f"storm: {r['presses']} presses from {r['devices']} devices (bridge workers {r['bridge_workers']}, "
          f"server workers {r['server_workers']})")
    print(f"  published in {r['publish_s']} s; last final ack after {r['last_ack_s']} s")
    print(f"  end to end: {r['presses_per_s']} presses/s; acked {r['acked']}/{r['presses']} "
          f"(every press: {r['acked_every_press']}); counted in tickets: {r['occurrences_counted']}")
    print(f"  bare broker, same run: {r['bare_broker_msgs_per_s']} QoS 1 messages/s")
    if args.json:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
