"""py-spy attached to the server and the bridge, and where their time went.

The classifier sorts samples by the server's and the bridge's functions, named module-qualified
(``server.db.Database.write``); tests/unit/test_benchmark_profiler.py checks that each exists, so
a function moved without this file is found by the test, not by figures filed under the wrong heading.
"""

from __future__ import annotations

import functools
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from .meters import psutil

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

# The project's functions and modules the classifier names, module-qualified (checked to exist by
# tests/unit/test_benchmark_profiler.py). Those of the server:
API_MODULE = "server.api"  # a view of the JSON API: the sample is filed under its function's name
HEALTHZ = "server.app.create_app.<locals>.healthz"
WRITE_LOCK = "server.db.Database.write"  # the server's in-process write lock
BEGIN = "server.db.make_engine.<locals>._on_begin"  # BEGIN (IMMEDIATE): SQLite's write lock
# ... and of the bridge:
SERVER_REQUEST = "broker_bridge.server_client.ServerClient.request"
OUTBOX_MODULE = "broker_bridge.outbox"
WIRE_MODULE = "dashdesk.wire"
# The bridge's threads by the start of their names (broker_bridge.bridge names them).
BRIDGE_THREADS = {"bridge-press": "press workers", "paho-mqtt": "MQTT network thread",
                  "bridge-feed": "feed tail (tickets topics)"}
FUNCTIONS = (HEALTHZ, WRITE_LOCK, BEGIN, SERVER_REQUEST)
MODULES = (API_MODULE, OUTBOX_MODULE, WIRE_MODULE, "server", "broker_bridge")

ROOT = Path(__file__).resolve().parent.parent


@functools.cache
def module_path(module: str) -> str:
    """Where py-spy says a frame of ``module`` is: ``server/db.py``, or ``server/api/`` for a package."""
    path = module.replace(".", "/")
    return path + "/" if (ROOT / path).is_dir() else path + ".py"


@functools.cache
def split_name(name: str) -> tuple[str, str]:
    """``server.db.Database.write`` → (``server.db``, ``Database.write``): the longest prefix that is a
    module of the project, and the function's qualified name in it."""
    parts = name.split(".")
    for i in range(len(parts) - 1, 0, -1):
        if (ROOT / "/".join(parts[:i])).with_suffix(".py").is_file():
            return ".".join(parts[:i]), ".".join(parts[i:])
    raise ValueError(f"{name}: no module of this project holds it")


def frame_of(name: str) -> str:
    """How py-spy names a frame of function ``name``: ``Database.write (server/db.py``."""
    module, qualname = split_name(name)
    return f"{qualname} ({module_path(module)}"


def _is(frame: str, name: str) -> bool:
    """Whether ``frame`` is one of function ``name`` (by its qualified name, or its own name alone)."""
    module, qualname = split_name(name)
    function, _, where = frame.partition(" (")
    return where.startswith(module_path(module)) and function in (qualname, qualname.rsplit(".", 1)[-1])


def _in(frame: str, module: str) -> bool:
    return f"({module_path(module)}" in frame


# The leaf-most frame matching one of these decides the category of a busy sample: files of libraries, or
# modules of the project (module-qualified names).
LIBRARIES = [
    ("SQLAlchemy (Python layer)", ("sqlalchemy/",)),
    ("validation/serialisation (marshmallow, webargs, apiflask)", ("marshmallow/", "webargs/", "apiflask/")),
    ("JSON encode/decode", ("json/",)),
    ("Flask/Werkzeug", ("flask/", "werkzeug/", "flask_httpauth")),
    ("waitress (HTTP parse/respond)", ("waitress/", "gunicorn/")),
    ("HTTP client (requests, urllib3, http.client)", ("requests/", "urllib3/", "http/client.py", "email/")),
    ("paho-mqtt", ("paho/",)),
    ("outbox (SQLite)", (f"({module_path(OUTBOX_MODULE)}",)),
    ("dashdesk wire (parse/format)", (f"({module_path(WIRE_MODULE)}",)),
    ("dashdesk server code", (f"({module_path('server')}",)),
    ("dashdesk bridge code", (f"({module_path('broker_bridge')}",)),
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
        if _in(f, API_MODULE) or _is(f, HEALTHZ):
            endpoint = f.split(" (")[0].rsplit(".", 1)[-1]
            break
    leaf = frames[-1]
    if _is(leaf, WRITE_LOCK):
        what = "waiting for the server's in-process write lock (another thread's transaction)"
    elif any(_is(f, BEGIN) for f in frames):
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
    role = next((r for prefix, r in BRIDGE_THREADS.items() if thread.startswith(prefix)), thread)
    if _idle(frames):
        return None
    leaf = frames[-1]
    if any(_is(f, SERVER_REQUEST) for f in frames) and (leaf.startswith(("SocketIO.readinto", "poll_wait_for_socket"))
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


