"""Shared parts of the benchmarks: the stack, MQTT clients that time things, CPU meters, py-spy.

Everything runs on 127.0.0.1: a real Mosquitto, the ticket server (waitress)
and the bridge, started by ``tests.stack.Stack`` in a fresh data directory.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import paho.mqtt.client as mqtt

from dashdesk import broker as dd_broker
from dashdesk import mqtt as dd_mqtt
from dashdesk import wire

try:
    import psutil
except ImportError:  # CPU accounting is skipped without it
    psutil = None

clock = time.perf_counter


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
    from tests.stack import Stack

    root = Path(tempfile.mkdtemp(prefix=f"dashdesk-{name}-"))
    stack = Stack(root, bridge_workers=args.bridge_workers or 1,
                  # The shipped feed poll interval, not the tests' shorter one.
                  env={"DASHDESK_BRIDGE__FEED_POLL_S": "0.2"})
    if args.bridge_workers is None:
        stack.env.pop("DASHDESK_BRIDGE__WORKERS", None)  # the same dict the parts run with
    stack.server.argv = server_argv(args)
    try:
        stack.start()
    except BaseException:
        stop_stack(stack, keep=True)
        raise
    return stack


def server_argv(args: argparse.Namespace) -> list[str]:
    """``dashdesk server`` with the worker and thread counts given on the command line, if any."""
    from tests.stack import PYTHON

    argv = PYTHON + ["server"]
    if args.server_workers is not None:
        argv += ["--workers", str(args.server_workers)]
    if args.server_threads is not None:
        argv += ["--threads", str(args.server_threads)]
    return argv


def server_settings(stack: Any, args: argparse.Namespace) -> dict[str, Any]:
    """The worker processes and threads the server actually runs with."""
    from dashdesk.cli import server

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
    """The version of the Mosquitto the stack starts (``dashdesk.broker.find_mosquitto``), or "?"."""
    exe = dd_broker.find_mosquitto()
    if not exe:
        return "?"
    try:
        out = subprocess.run([exe, "-h"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return "?"
    return out.splitlines()[0].split("version")[-1].strip() if out else "?"


# ---------------------------------------------------------------- statistics


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of ``values``; NaN when empty."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = max(0, min(len(s) - 1, math.ceil(p / 100 * len(s)) - 1))
    return s[k]


def summary_ms(seconds: list[float]) -> dict[str, Any]:
    ms = [v * 1000 for v in seconds]
    return {"n": len(ms), "p50_ms": pct(ms, 50), "p90_ms": pct(ms, 90), "p99_ms": pct(ms, 99),
            "max_ms": max(ms) if ms else float("nan"), "mean_ms": sum(ms) / len(ms) if ms else float("nan")}


def table(rows: list[list[Any]], header: list[str]) -> str:
    cells = [[str(h) for h in header]] + [[f"{c:.2f}" if isinstance(c, float) else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]

    def line(r: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))

    return "\n".join([line(cells[0]), line(["-" * w for w in widths])] + [line(r) for r in cells[1:]])


def pace(rate: float, count: int, action: Callable[[int], None]) -> float:
    """Call ``action(i)`` for i in range(count) at ``rate`` per second on a fixed schedule; return the duration."""
    start = clock()
    for i in range(count):
        delay = start + i / rate - clock()
        if delay > 0:
            time.sleep(delay)
        action(i)
    return clock() - start


# ---------------------------------------------------------------- MQTT


def press_payload(device_id: str, event_id: str, button: str = "b1") -> bytes:
    body = wire.new_press(device_id, button).to_dict()
    body["event_id"] = event_id
    return wire.dumps(body)


class Client:
    """A paho client as dashdesk makes them (Nagle off), connected and subscribed before use.

    ``protocol``: 5 (MQTT 5, dashdesk's default) or 4 (MQTT 3.1.1, all the embedded broker speaks).
    """

    def __init__(self, url: str, name: str, subscriptions: list[str] = (), *,
                 on_message: Callable[[mqtt.MQTTMessage], None] | None = None, max_inflight: int = 20,
                 protocol: int = 5):
        self.client, broker = dd_mqtt.make_client(url, f"bench-{name}-{uuid.uuid4().hex[:6]}", protocol=protocol,
                                                  persistent=False)
        self.client.max_inflight_messages_set(max_inflight)
        self._subs = list(subscriptions)
        self._ready = threading.Event()
        self.published = 0  # PUBACKs received from the broker
        self.puback_done = threading.Event()
        self.expect_pubacks = -1
        self._handler = on_message
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *_: self._ready.set()
        self.client.on_publish = self._on_publish
        if on_message is not None:
            self.client.on_message = lambda _c, _u, msg: on_message(msg)
        dd_mqtt.connect(self.client, broker, protocol=protocol, persistent=False)
        self.client.loop_start()
        if not self._ready.wait(10):
            self.close()
            raise RuntimeError(f"MQTT client {name} did not connect/subscribe")

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason_code: Any, _p: Any = None) -> None:
        if reason_code.is_failure:
            return
        dd_mqtt.set_nodelay(client)
        if self._subs:
            client.subscribe([(t, 1) for t in self._subs])
        else:
            self._ready.set()

    def _on_publish(self, *_: Any) -> None:
        self.published += 1  # only the network thread touches it
        if self.published == self.expect_pubacks:
            self.puback_done.set()

    def publish(self, topic: str, payload: bytes) -> None:
        info = self.client.publish(topic, payload, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise RuntimeError(f"publish failed: {mqtt.error_string(info.rc)}")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class AckCollector:
    """Subscribes to every device's ack topic and notes when each event's final ack arrived."""

    def __init__(self, url: str, topics: wire.Topics = wire.Topics(), protocol: int = 5):
        self.topics = topics
        self.lock = threading.Lock()
        self.sent: dict[str, float] = {}
        self.final_at: dict[str, float] = {}
        self.final_count: Counter[str] = Counter()
        self.result_of: dict[str, str] = {}
        self.queued = 0
        self.unknown = 0
        self.wrong_topic = 0
        self.acks = 0
        self.expected_device: dict[str, str] = {}
        self._all = threading.Event()
        self._want = -1
        self.client = Client(url, "acks", [topics.subscription("ack")], on_message=self._on_message,
                             protocol=protocol)

    def expect(self, count: int) -> None:
        with self.lock:
            self._want = count
            self._all.clear()
            if len(self.final_at) >= count:
                self._all.set()

    def _on_message(self, msg: mqtt.MQTTMessage) -> None:
        now = clock()
        data = json.loads(msg.payload)
        eid = data.get("event_id")
        with self.lock:
            self.acks += 1
            if eid not in self.sent:
                self.unknown += 1
                return
            device, _leaf = self.topics.split(msg.topic) or ("", "")
            if device != self.expected_device.get(eid):
                self.wrong_topic += 1
            if data.get("result") not in wire.FINAL_RESULTS:
                self.queued += 1
                return
            self.final_count[eid] += 1
            if eid not in self.final_at:
                self.final_at[eid] = now
                self.result_of[eid] = data["result"]
                if len(self.final_at) == self._want:
                    self._all.set()

    def note_sent(self, event_id: str, device_id: str, at: float) -> None:
        with self.lock:
            self.sent[event_id] = at
            self.expected_device[event_id] = device_id

    def wait_all(self, timeout: float) -> bool:
        return self._all.wait(timeout)

    def results(self, event_ids: list[str]) -> dict[str, int]:
        with self.lock:
            return dict(Counter(self.result_of[e] for e in event_ids if e in self.result_of))

    def duplicates(self, event_ids: list[str]) -> int:
        with self.lock:
            return sum(self.final_count[e] - 1 for e in event_ids if self.final_count[e] > 1)

    def latencies(self, event_ids: list[str]) -> list[float]:
        with self.lock:
            return [self.final_at[e] - self.sent[e] for e in event_ids if e in self.final_at]

    def last_final(self, event_ids: list[str]) -> float:
        """When the last of these events' final acks arrived (``clock()``); NaN if none did."""
        with self.lock:
            return max((self.final_at[e] for e in event_ids if e in self.final_at), default=float("nan"))

    def close(self) -> None:
        self.client.close()


class Echo:
    """The bare broker: a client that republishes each ping as a pong, QoS 1 both ways (two broker hops,
    like press → bridge → ack)."""

    def __init__(self, url: str, prefix: str, protocol: int = 5):
        self.prefix = prefix
        self.client = Client(url, "echo", [f"{prefix}/ping/+"], on_message=self._on_message, max_inflight=200,
                             protocol=protocol)

    def _on_message(self, msg: mqtt.MQTTMessage) -> None:
        self.client.client.publish(msg.topic.replace("/ping/", "/pong/", 1), msg.payload, qos=1)

    def close(self) -> None:
        self.client.close()


class Receiver:
    """Notes the arrival time of each message on a subscription, keyed by its topic's last level."""

    def __init__(self, url: str, subscription: str, name: str = "recv", protocol: int = 5):
        self.at: dict[str, float] = {}
        self.count = 0
        self.want = -1
        self.done = threading.Event()
        self.lock = threading.Lock()
        self.client = Client(url, name, [subscription], on_message=self._on_message, protocol=protocol)

    def _on_message(self, msg: mqtt.MQTTMessage) -> None:
        now = clock()
        with self.lock:
            self.at.setdefault(msg.topic.rsplit("/", 1)[-1], now)
            self.count += 1
            if self.count == self.want:
                self.done.set()

    def close(self) -> None:
        self.client.close()


def round_trips(url: str, count: int, rate: float, protocol: int = 5,
                payload: bytes | None = None) -> dict[str, list[float]]:
    """The bare broker: ``count`` QoS 1 pings at ``rate`` per second, each echoed back as a QoS 1 pong
    (two broker hops, like press → bridge → ack). Seconds from publish to the pong (``rtt``) and to the
    ping's delivery (``one_way``), for those that arrived."""
    prefix = f"bench/{run_id()}"
    echo = Echo(url, prefix, protocol)
    pings = Receiver(url, f"{prefix}/ping/+", "ping-spy", protocol)  # one hop: when the broker delivered the ping
    pongs = Receiver(url, f"{prefix}/pong/+", "pong", protocol)
    pub = Client(url, "pinger", max_inflight=200, protocol=protocol)
    pongs.want = count
    payload = payload or press_payload("bench-ping", str(uuid.uuid4()))
    sent: dict[str, float] = {}

    def one(i: int) -> None:
        key = str(i)
        sent[key] = clock()
        pub.publish(f"{prefix}/ping/{key}", payload)

    try:
        pace(rate, count, one)
        pongs.done.wait(30)
        rtt = [pongs.at[k] - t for k, t in sent.items() if k in pongs.at]
        one_way = [pings.at[k] - t for k, t in sent.items() if k in pings.at]
    finally:
        close_all(pub, pongs, pings, echo)
    return {"rtt": rtt, "one_way": one_way}


# ---------------------------------------------------------------- CPU accounting


class CpuMeter:
    """CPU seconds used by each part (broker, server incl. workers, bridge, this process) over a phase."""

    def __init__(self, stack: Any, profiler: "Profiler | None" = None):
        self.parts = {"broker": stack.broker.proc.pid, "server": stack.server.proc.pid,
                      "bridge": stack.bridge.proc.pid, "benchmark": os.getpid()}
        self.profiler = profiler
        self._start: dict[str, float] = {}
        self._t0 = self._busy0 = self._steal0 = 0.0

    def _cpu(self) -> dict[str, float]:
        out: dict[str, float] = {}
        if psutil is None:
            return out
        for name, pid in self.parts.items():
            total = 0.0
            try:
                procs = [psutil.Process(pid)]
                if name != "benchmark":
                    procs += procs[0].children(recursive=True)
                for p in procs:
                    try:
                        t = p.cpu_times()
                        total += t.user + t.system
                    except psutil.Error:
                        pass
            except psutil.Error:
                pass
            out[name] = total
        if self.profiler is not None:
            out["py-spy"] = self.profiler.cpu()
        return out

    @staticmethod
    def _machine() -> tuple[float, float]:
        """(CPU seconds the machine's processes used, CPU seconds the hypervisor stole) so far."""
        if psutil is None:
            return 0.0, 0.0
        t = psutil.cpu_times()
        busy = t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)
        return busy, getattr(t, "steal", 0.0)

    def start(self) -> None:
        self._start = self._cpu()
        self._busy0, self._steal0 = self._machine()
        self._t0 = clock()

    def stop(self) -> dict[str, Any]:
        end, wall = self._cpu(), clock() - self._t0
        used = {k: round(end[k] - self._start.get(k, 0.0), 3) for k in end}
        busy, steal = self._machine()
        if psutil is not None:
            # Everything else the machine did meanwhile (other people's tests, py-spy, ...).
            used["other processes"] = round(max(0.0, busy - self._busy0 - sum(used.values())), 3)
        return {"wall_s": round(wall, 3), "cpu_s": used, "cpu_total_s": round(sum(used.values()), 3),
                "cores": os.cpu_count(), "steal_s": round(steal - self._steal0, 3)}


def cpu_lines(cpu: dict[str, Any], per: int, what: str = "press") -> str:
    if not cpu.get("cpu_s"):
        return "  (psutil not installed: no CPU accounting)"
    wall = cpu["wall_s"]
    rows = [[k, v, v / wall * 100, v / per * 1000] for k, v in cpu["cpu_s"].items()]
    rows.append(["total", cpu["cpu_total_s"], cpu["cpu_total_s"] / wall * 100, cpu["cpu_total_s"] / per * 1000])
    text = table(rows, ["process", "cpu s", "% of 1 core", f"cpu ms/{what}"]) + \
        f"\n  over {wall:.2f} s of wall time on {cpu['cores']} cores ({cpu['cores'] * 100}% = all busy); " \
        f"hypervisor steal {cpu.get('steal_s', 0.0) / wall * 100:.0f}% of a core"
    other = cpu["cpu_s"].get("other processes", 0.0) / wall * 100
    if other > 10:
        text += (f"\n  WARNING: other processes used {other:.0f}% of a core meanwhile: "
                 "this run's figures are disturbed")
    return text


class PartsMeter(CpuMeter):
    """A :class:`CpuMeter` over any processes by name (``{"server": pid}``), each with its children."""

    def __init__(self, parts: dict[str, int]):
        self.parts = {**parts, "benchmark": os.getpid()}
        self.profiler = None
        self._start = {}
        self._t0 = self._busy0 = self._steal0 = 0.0


def quiet(cpu: dict[str, Any]) -> bool:
    wall = max(cpu.get("wall_s", 1.0), 1e-9)
    return (cpu.get("cpu_s", {}).get("other processes", 0.0) / wall <= 0.10
            and cpu.get("steal_s", 0.0) / wall <= 0.10)


def disturbance_line(cpu: dict[str, Any]) -> str:
    """One line on what else ran on the machine during the whole measurement."""
    if not cpu.get("cpu_s"):
        return ""
    wall = cpu["wall_s"]
    other = cpu["cpu_s"].get("other processes", 0.0) / wall * 100
    steal = cpu.get("steal_s", 0.0) / wall * 100
    verdict = "quiet" if quiet(cpu) else "DISTURBED: repeat on a quiet machine"
    return (f"machine during all phases ({wall:.0f} s): other processes {other:.0f}% of a core, "
            f"hypervisor steal {steal:.0f}% ({verdict})")


# ---------------------------------------------------------------- py-spy


def find_py_spy() -> str | None:
    here = Path(sys.executable).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


class Profiler:
    """``py-spy record`` attached to the server and the bridge for one phase."""

    def __init__(self, stack: Any, out_dir: Path, rate: int = 200):
        self.exe = find_py_spy()
        if self.exe is None:
            raise SystemExit("--profile needs py-spy: /tmp/venv/bin/pip install py-spy")
        self.out_dir = out_dir
        out_dir.mkdir(parents=True, exist_ok=True)
        self.targets = {"server": stack.server.proc.pid, "bridge": stack.bridge.proc.pid}
        self.rate = rate
        self.procs: dict[str, subprocess.Popen] = {}
        self._cpu_at_stop: float | None = None

    def cpu(self) -> float:
        """CPU seconds py-spy itself has used (it competes with the stack for the 2 cores)."""
        if self._cpu_at_stop is not None:
            return self._cpu_at_stop
        total = 0.0
        for popen in self.procs.values():
            try:
                t = psutil.Process(popen.pid).cpu_times() if psutil else None
                total += (t.user + t.system) if t else 0.0
            except psutil.Error:
                pass
        return total

    def start(self) -> None:
        for name, pid in self.targets.items():
            out = self.out_dir / f"{name}.raw.txt"
            # --idle: every thread, idle or not (sorted out below); --nonblocking: never pause the target.
            argv = [self.exe, "record", "--pid", str(pid), "--subprocesses", "--rate", str(self.rate),
                    "--format", "raw", "--threads", "--idle", "--nonblocking", "--output", str(out)]
            with open(self.out_dir / f"{name}.py-spy.log", "wb") as log:
                self.procs[name] = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=log)
        time.sleep(1.0)  # let py-spy attach before the load starts

    def stop(self) -> dict[str, Path]:
        self._cpu_at_stop = self.cpu()
        for p in self.procs.values():
            p.send_signal(signal.SIGINT)
        out = {}
        for name, p in self.procs.items():
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
            path = self.out_dir / f"{name}.raw.txt"
            if path.exists():
                out[name] = path
        return out


# ---------------------------------------------------------------- profile analysis
#
# py-spy samples every thread (``--idle``: its own idle detection is not
# reliable here), so a sample is first sorted into "idle" (a thread waiting for
# work) or busy, then the busy ones by what the thread was doing. Sums are
# thread-seconds (samples / rate), not CPU seconds: a thread waiting on a lock,
# on the disk or for the GIL counts, which is what a press waits for too.

IDLE_LEAVES = ("EpollSelector.select", "PollSelector.select", "Arbiter.wait_for_signals", "Condition.wait",
               "Event.wait", "_worker (concurrent/futures/thread.py", "Thread._wait_for_tstate_lock", "sleep",
               "Client._loop (paho/", "Client.loop_forever (paho/", "wait_for_data (gunicorn", "poll2 (waitress/",
               "thread (")

# The leaf-most frame matching one of these files decides the category of a busy sample.
LIBRARIES = [
    ("SQLAlchemy (Python layer)", ("sqlalchemy/",)),
    ("validation/serialisation (marshmallow, webargs, apiflask)", ("marshmallow/", "webargs/", "apiflask/")),
    ("JSON encode/decode", ("json/",)),
    ("Flask/Werkzeug", ("flask/", "werkzeug/", "flask_httpauth")),
    ("waitress (HTTP parse/respond)", ("waitress/", "gunicorn/")),
    ("HTTP client (requests, urllib3, http.client)", ("requests/", "urllib3/", "http/client.py", "email/")),
    ("paho-mqtt", ("paho/",)),
    ("outbox (SQLite)", ("broker_bridge/outbox.py",)),
    ("dashdesk wire (parse/format)", ("dashdesk/wire.py",)),
    ("dashdesk server code", ("server/",)),
    ("dashdesk bridge code", ("broker_bridge/",)),
    ("sockets", ("socket.py", "selectors.py", "ssl.py")),
]


def _library(frames: list[str]) -> str:
    for frame in reversed(frames):
        for name, files in LIBRARIES:
            if any(f in frame for f in files):
                return name
    return "other (stdlib, interpreter)"


def _thread(frames: list[str]) -> str:
    name = next((f for f in frames if f.startswith("thread ")), "thread (?): ?")
    return name.split(":", 1)[-1].strip()


def _idle(frames: list[str]) -> bool:
    leaf = frames[-1]
    return any(leaf.startswith(x) or x in leaf for x in IDLE_LEAVES)


def classify_server(frames: list[str]) -> tuple[str, str] | None:
    """(endpoint, what) for a busy sample of the server, None for an idle one."""
    joined = ";".join(frames)
    if "WSGITask.execute (waitress/" not in joined and "handle_request (gunicorn" not in joined:
        if _idle(frames):
            return None
        return "(outside a view: waitress's I/O loop, HTTP parsing, cut-off stacks)", _library(frames)
    endpoint = "(around the view: HTTP parse, auth, validation, serialisation)"
    for f in frames:
        if "(server/api.py" in f or f.startswith("create_app.<locals>.healthz"):
            endpoint = f.split(" (")[0].rsplit(".", 1)[-1]
            break
    leaf = frames[-1]
    if leaf.startswith("Database.write (server/db.py"):
        what = "waiting for the server's in-process write lock (another thread's transaction)"
    elif "_on_begin (server/db.py" in joined:
        what = "SQLite: waiting for the write lock (BEGIN IMMEDIATE, busy_timeout sleeps)"
    elif "do_commit" in joined and "sqlalchemy/engine/default.py" in leaf:
        what = "SQLite: COMMIT (WAL append + fsync)"
    elif leaf.startswith(("DefaultDialect.do_execute", "CursorFetchStrategy.fetch", "DefaultDialect.do_executemany")):
        what = "SQLite: running statements (C)"
    else:
        what = _library(frames)
    return endpoint, what


def classify_bridge(frames: list[str]) -> tuple[str, str] | None:
    """(thread role, what) for a busy sample of the bridge, None for an idle one."""
    thread = _thread(frames)
    role = ("press workers" if thread.startswith("bridge-press") else
            "MQTT network thread" if thread.startswith("paho-mqtt") else
            "feed tail (tickets topics)" if thread.startswith("bridge-feed") else thread)
    if _idle(frames):
        return None
    joined = ";".join(frames)
    leaf = frames[-1]
    if "ServerClient.request" in joined and (leaf.startswith(("SocketIO.readinto", "poll_wait_for_socket"))
                                             or "do_poll" in leaf):
        return role, "waiting for the server's HTTP answer"
    return role, _library(frames)


def analyse_profile(path: Path, kind: str) -> dict[str, Any]:
    """Sum a py-spy raw (collapsed stacks) file by (group, what); ``kind`` is "server" or "bridge"."""
    classify = classify_server if kind == "server" else classify_bridge
    busy: Counter[tuple[str, str]] = Counter()
    idle = total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames, n = stack.split(";"), int(count)
        total += n
        label = classify(frames)
        if label is None:
            idle += n
        else:
            busy[label] += n
    groups: Counter[str] = Counter()
    for (group, _what), n in busy.items():
        groups[group] += n
    return {"samples": total, "idle": idle, "busy": sum(busy.values()),
            "groups": groups.most_common(),
            "items": [[g, w, n] for (g, w), n in busy.most_common()]}


def profile_report(name: str, a: dict[str, Any], rate: int, presses: int) -> str:
    per = 1000 / rate / max(1, presses)  # ms of thread time per press for one sample
    lines = [f"  {name}: {a['busy']} busy samples of {a['samples']} "
             f"(= {a['busy'] / rate:.1f} thread-s, {a['busy'] * per:.2f} ms per press)"]
    for group, g in a["groups"]:
        if g * per < 0.01:
            continue
        lines.append(f"    {group}: {g * per:.2f} ms/press ({g / max(1, a['busy']) * 100:.0f}% of busy)")
        for gg, what, n in a["items"]:
            if gg == group and n / max(1, g) >= 0.02:
                lines.append(f"      {n / max(1, g) * 100:5.1f}%  {what}")
    return "\n".join(lines)


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


def print_cpu(title: str, cpu: dict[str, Any], whole: dict[str, Any], per: int, what: str = "press") -> None:
    """The CPU each part used in the timed phase (``cpu``, per ``what``), and what else ran on the machine
    over the whole measurement (``whole``)."""
    print()
    print(title)
    print(cpu_lines(cpu, max(1, per), what))
    print(disturbance_line(whole))


def add_profiles(out: dict[str, Any], profiles: dict[str, Path]) -> None:
    """Put the analysis of py-spy's files (:meth:`Profiler.stop`) into ``out``, if there are any."""
    if profiles:
        out["profile"] = {name: analyse_profile(path, name) for name, path in profiles.items()}
        out["profile_files"] = {name: str(path) for name, path in profiles.items()}


def print_profile(out: dict[str, Any], phase: str, rate: int, presses: int) -> None:
    """Where the server's and the bridge's time went during ``phase``, if it ran under py-spy."""
    if "profile" not in out:
        return
    print()
    print(f"py-spy during {phase} ({rate} samples/s per thread; 'busy' = a thread not "
          "waiting for work; thread time, so lock, disk and GIL waits count):")
    for name, a in out["profile"].items():
        print(profile_report(name, a, rate, max(1, presses)))
    print(f"  raw stacks: {out['profile_files']}")


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


def close_all(*clients: Any) -> None:
    """Close each client that was made (``None`` for one that was not)."""
    for x in clients:
        if x is not None:
            x.close()


def run_id() -> str:
    return uuid.uuid4().hex[:6]


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
