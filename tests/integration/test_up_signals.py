"""`dashdesk up` and its parts: whatever stops `up`, its parts go with it, and one data dir runs one `up`.

Closing the terminal (SIGHUP) stops `up` as SIGTERM does, in order; a SIGKILL of `up` alone (the OOM
killer) takes its parts with it (their parent-death signal); a second `up` on a data dir in use, or a
`dashdesk server` / `dashdesk bridge` on the data of a running one, refuses at once, naming the pid.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest

from dashdesk import wire
from launcher.broker import free_port
from tests.stack import PYTHON, Presser, Up, wait_until

# Generous for a loaded 2-core machine; the parts stop in about a second.
GONE_WITHIN_S = 20


# ---------------------------------------------------------------- processes, from /proc


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time) of ``pid``, None once it is gone (or a zombie: it runs nothing any more)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    if fields[0] == "Z":
        return None
    return int(fields[1]), int(fields[19])


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def descendants(pid: int) -> dict[int, tuple[int, str]]:
    """Every live process below ``pid``: {pid: (start time, command line)}."""
    children: dict[int, list[int]] = {}
    starts: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (st := _stat(int(entry))) is not None:
            children.setdefault(st[0], []).append(int(entry))
            starts[int(entry)] = st[1]
    found, todo = {}, list(children.get(pid, []))
    while todo:
        p = todo.pop()
        found[p] = (starts[p], _cmdline(p))
        todo.extend(children.get(p, []))
    return found


def alive(procs: dict[int, tuple[int, str]]) -> dict[int, str]:
    """Those of ``procs`` still running (the same process: its start time matches)."""
    return {p: cmd for p, (start, cmd) in procs.items() if (st := _stat(p)) is not None and st[1] == start}


def part_pid(procs: dict[int, tuple[int, str]], command: str) -> int:
    """The pid of the part ``launcher.cli <command>`` among ``procs`` (the top one, not a worker of it)."""
    pids = [p for p, (_, cmd) in procs.items() if re.search(rf"launcher\.cli {command}\b", cmd)]
    tops = [p for p in pids if (_stat(p) or (0, 0))[0] not in pids]
    assert len(tops) == 1, (command, procs)
    return tops[0]


@pytest.fixture
def reaper():
    """Processes a test must not leave behind: any of them still running at the end is killed (and the test
    has failed already)."""
    watched: dict[int, tuple[int, str]] = {}
    yield watched
    for pid in alive(watched):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def up_with_parts(data: Path, reaper: dict, *args: str) -> tuple[Up, dict[int, tuple[int, str]]]:
    """`dashdesk up --demo` on ``data``, ready, and its processes (broker, server and its workers, bridge, demo
    device), watched by ``reaper``."""
    up = Up(data, "--demo", "--ws-port", "0", *args)
    try:
        up.wait_ready()
        parts = wait_until(lambda: (d := descendants(up.proc.pid)) and _has_every_part(d) and d, timeout=30,
                           what="every part of `up` running")
    except BaseException:
        reaper.update(descendants(up.proc.pid))
        up.stop()
        raise
    reaper.update(parts)
    return up, parts


def _has_every_part(procs: dict[int, tuple[int, str]]) -> bool:
    cmds = " | ".join(cmd for _, cmd in procs.values())
    return all(re.search(rf"launcher\.cli {part}\b", cmds) for part in ("server", "bridge", "device")) and (
        "mosquitto" in cmds)


def pressed(up: Up, button: str = "b1") -> dict:
    out = up.press("shop-demo", button)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.decode().strip().splitlines()[-1])


def press_counts(up: Up) -> dict[str, int]:
    """{event_id: how many tickets hold it} for the demo device, through the API."""
    seen: dict[str, int] = {}
    for t in up.tickets(device_id="shop-demo", limit=500):
        detail = up.http.get(f"{up.base}/api/v1/tickets/{t['id']}", timeout=10).json()
        for p in detail["presses"]:
            seen[p["event_id"]] = seen.get(p["event_id"], 0) + 1
    return seen


def consistent(data: Path) -> None:
    for name in ("dashdesk.sqlite3", "bridge-outbox.sqlite3"):
        with sqlite3.connect(data / name) as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",), name
    with sqlite3.connect(data / "bridge-outbox.sqlite3") as db:
        assert db.execute("SELECT count(*) FROM outbox WHERE kind = 'press'").fetchone() == (0,)


# ---------------------------------------------------------------- SIGHUP


def test_sighup_stops_up_and_every_part_cleanly(tmp_path, reaper):
    data = tmp_path / "data"
    up, parts = up_with_parts(data, reaper)
    try:
        before = pressed(up)
        assert before["result"] == "created"
        up.proc.send_signal(signal.SIGHUP)  # the terminal that runs `up` was closed
        assert up.proc.wait(60) == 0
        wait_until(lambda: not alive(parts), timeout=GONE_WITHIN_S, what="every part of `up` to stop")
    finally:
        up.stop()
    consistent(data)

    again, _ = up_with_parts(data, reaper)
    try:
        assert press_counts(again) == {before["event_id"]: 1}
        assert pressed(again)["result"] == "merged"
    finally:
        assert again.stop() == 0


# ---------------------------------------------------------------- SIGKILL


def test_sigkill_of_up_alone_takes_every_part_with_it_and_a_new_up_comes_up(tmp_path, reaper):
    data = tmp_path / "data"
    up, parts = up_with_parts(data, reaper)
    presser = Presser(f"mqtt://127.0.0.1:{up.mqtt_port}")
    attempted: list[str] = []  # published, PUBACKed or not
    published: list[str] = []  # PUBACKed by the broker
    stop = threading.Event()

    def publish() -> None:
        # Presses up to the moment the broker goes: each one the broker PUBACKed must become a ticket once.
        while not stop.is_set():
            event = wire.new_press("shop-demo", "b2")
            attempted.append(event.event_id)
            try:
                info = presser.client.publish(presser.topics.press("shop-demo"), event.to_json(), qos=1)
                info.wait_for_publish(5)
            except Exception:  # the broker is gone
                return
            if not info.is_published():
                return
            published.append(event.event_id)
            time.sleep(0.02)

    try:
        first = pressed(up)
        publisher = threading.Thread(target=publish, daemon=True)
        publisher.start()
        wait_until(lambda: len(published) >= 20, timeout=30, what="presses flowing")
        up.proc.kill()  # up alone: the OOM killer's way
        up.proc.wait(10)
        # Started at once, while the parts of the killed one are still stopping: it waits for them.
        again = Up(data, "--demo", "--ws-port", "0", http_port=up.http_port, mqtt_port=up.mqtt_port)
        try:
            gone_after = time.monotonic()
            wait_until(lambda: not alive(parts), timeout=GONE_WITHIN_S, what="every part of the killed `up` gone")
            gone_after = time.monotonic() - gone_after
            stop.set()
            publisher.join(15)
            again.wait_ready()
            reaper.update(descendants(again.proc.pid))
            acked = [e for e in published if presser.ack_results(e)]
            assert acked, "no press was acked before the kill"
            after = pressed(again)
            assert after["result"] in ("created", "merged")
            counts = wait_until(lambda: (c := press_counts(again)) and set(published) <= set(c) and c,
                                timeout=60, what="every press the broker took counted")
            # One the broker took but could not PUBACK before it stopped may be counted too, once.
            assert {first["event_id"], after["event_id"], *published} <= set(counts) <= {
                first["event_id"], after["event_id"], *attempted}
            assert set(counts.values()) == {1}, {e: n for e, n in counts.items() if n != 1}
            print(f"parts of the killed `up` gone {gone_after:.1f} s after the kill; "
                  f"{len(published)} presses published around it, {len(acked)} acked before it")
        finally:
            reaper.update(descendants(again.proc.pid))
            assert again.stop() == 0
    finally:
        stop.set()
        presser.close()
        up.stop()


# ---------------------------------------------------------------- one `up` per data dir


def _refused(argv: list[str], env: dict[str, str], reaper: dict) -> tuple[subprocess.CompletedProcess, float]:
    """Run ``argv``; it must exit by itself within 20 s (otherwise it and its processes are stopped and the
    test fails). Its completed process and how long it took."""
    started = time.monotonic()
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        reaper.update(descendants(proc.pid))
        proc.terminate()
        out, err = proc.communicate(timeout=60)
        pytest.fail(f"{' '.join(argv[2:4])} did not refuse: it ran (stderr: {err.decode()[-2000:]})")
    return subprocess.CompletedProcess(argv, proc.returncode, out, err), time.monotonic() - started


def test_a_second_up_on_the_same_data_dir_refuses_at_once_and_the_first_keeps_working(tmp_path, reaper):
    data = tmp_path / "data"
    up, parts = up_with_parts(data, reaper)
    try:
        second, took = _refused(PYTHON + ["up", "--demo", "--ws-port", "0", "--http-port", str(free_port()),
                                          "--mqtt-port", str(free_port()), "--data-dir", str(data)],
                                up.env, reaper)
        assert second.returncode != 0
        assert f"pid {up.proc.pid}" in second.stderr.decode(), second.stderr
        assert took < 10, took
        assert alive(parts) == {p: cmd for p, (_, cmd) in parts.items()}  # the first one's parts untouched
        assert pressed(up)["result"] == "created"
    finally:
        assert up.stop() == 0


def test_server_and_bridge_refuse_the_data_of_a_running_up(tmp_path, reaper):
    data = tmp_path / "data"
    up, parts = up_with_parts(data, reaper)
    try:
        server, _ = _refused(PYTHON + ["server", "--http-port", str(free_port()), "--data-dir", str(data)],
                             up.env, reaper)
        assert server.returncode != 0
        assert f"pid {part_pid(parts, 'server')}" in server.stderr.decode(), server.stderr
        assert str(data / "dashdesk.sqlite3") in server.stderr.decode(), server.stderr

        bridge_env = {**up.env, "DASHDESK_MQTT_URL": f"mqtt://127.0.0.1:{up.mqtt_port}",
                      "DASHDESK_SERVER_URL": up.base}
        bridge, _ = _refused(PYTHON + ["bridge", "--data-dir", str(data)], bridge_env, reaper)
        assert bridge.returncode != 0
        assert f"pid {part_pid(parts, 'bridge')}" in bridge.stderr.decode(), bridge.stderr
        assert alive(parts) == {p: cmd for p, (_, cmd) in parts.items()}
        assert pressed(up)["result"] == "created"
    finally:
        assert up.stop() == 0


def test_up_refuses_the_data_of_a_server_started_by_hand_before_it_touches_anything(tmp_path, reaper):
    """Found before `up` migrates the database, seeds it or starts its broker: not when its own server fails."""
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASHDESK_")}
    env["DASHDESK_CONFIG"] = str(tmp_path / "none.toml")
    port = free_port()
    server = subprocess.Popen(PYTHON + ["server", "--http-port", str(port), "--data-dir", str(data)], env=env,
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    reaper.update({server.pid: (os.getpid(), "dashdesk server")})
    try:
        import requests

        def healthy() -> bool:
            try:
                return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
            except requests.RequestException:
                return False

        wait_until(healthy, timeout=60, what="the server started by hand")
        mqtt_port = free_port()
        up, took = _refused(PYTHON + ["up", "--ws-port", "0", "--http-port", str(free_port()), "--mqtt-port",
                                      str(mqtt_port), "--data-dir", str(data)], env, reaper)
        assert up.returncode != 0
        assert f"pid {server.pid}" in up.stderr.decode() and "dashdesk server" in up.stderr.decode(), up.stderr
        assert took < 10, took
        assert not (data / "mosquitto.conf").exists() and not (data / "bridge.token").exists()
        assert healthy() and server.poll() is None  # the one started by hand goes on
    finally:
        server.terminate()
        server.wait(30)
