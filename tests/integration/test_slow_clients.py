"""Slow and idle HTTP clients against the real server: they hold connections, never the desk or the presses.

A crowd of 200 connections that trickle a header line every 2 s (slowloris) and 200 that connect and send
nothing, opened again as soon as the server closes them (as an attacker would), while `/healthz`, `/login`,
the API and a press through Mosquitto and the bridge must each answer within a second. And each kind of
slow client is cut off on time: headers after their deadline (408), a body after its own (408), an idle
connection after the idle timeout; a live-update stream, which sends nothing for long stretches, is not.
What the HTTP layer refuses itself (malformed, too large) is answered with the API's JSON error at once.
"""

from __future__ import annotations

import json
import re
import selectors
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psutil
import pytest
import requests
import urllib3

from tests.stack import ADMIN_PASSWORD, ADMIN_TOKEN, Stack

pytestmark = pytest.mark.integration

# Short deadlines, so that the crowd is cut off and comes back during the checks, and the cut-offs can be timed.
HEADER_TIMEOUT_S = 4.0
BODY_TIMEOUT_S = 4.0
IDLE_TIMEOUT_S = 3.0
# The server checks its deadlines twice a second (server.serve.TICK_S); a loaded 2-core machine adds more.
LATE_MARGIN_S = 2.5
SLOW, IDLE = 200, 200
LINE_EVERY_S = 2.0
ANSWER_WITHIN_S = 1.0
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    s = Stack(tmp_path_factory.mktemp("slow-clients"), env={
        "DASHDESK_SERVER__HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S),
        "DASHDESK_SERVER__BODY_TIMEOUT_S": str(BODY_TIMEOUT_S),
        "DASHDESK_SERVER__IDLE_TIMEOUT_S": str(IDLE_TIMEOUT_S),
    }).start()
    yield s
    s.stop()


class Crowd:
    """``slow`` connections that send a request line, then one header line every ``every`` s and never
    finish; ``idle`` ones that send nothing. One closed by the server is opened again at once (counted)."""

    def __init__(self, port: int, slow: int, idle: int, every: float):
        self.port, self.every = port, every
        self.sel = selectors.DefaultSelector()
        self.open = {"slow": 0, "idle": 0}
        self.cut = {"slow": 0, "idle": 0}
        self.answers: list[bytes] = []  # what the server said before closing a connection
        self._stop = threading.Event()
        self._lock = threading.Lock()
        for _ in range(slow):
            self._connect("slow")
        for _ in range(idle):
            self._connect("idle")
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _connect(self, kind: str) -> None:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        sock.setblocking(False)
        state = {"kind": kind, "next": time.monotonic() + self.every, "got": b""}
        if kind == "slow":
            sock.send(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        self.sel.register(sock, selectors.EVENT_READ, state)
        with self._lock:
            self.open[kind] += 1

    def _closed(self, sock: socket.socket, state: dict[str, Any]) -> None:
        self.sel.unregister(sock)
        sock.close()
        with self._lock:
            self.open[state["kind"]] -= 1
            self.cut[state["kind"]] += 1
            if state["got"]:
                self.answers.append(state["got"])
        if not self._stop.is_set():
            self._connect(state["kind"])

    def _run(self) -> None:
        while not self._stop.is_set():
            for key, _ in self.sel.select(0.1):
                try:
                    data = key.fileobj.recv(65536)
                except OSError:
                    data = b""
                if data:
                    key.data["got"] += data
                else:
                    self._closed(key.fileobj, key.data)
            now = time.monotonic()
            for key in list(self.sel.get_map().values()):
                state = key.data
                if state["kind"] == "slow" and now >= state["next"]:
                    state["next"] = now + self.every
                    try:
                        key.fileobj.send(b"X-Slow: one line at a time\r\n")
                    except OSError:
                        self._closed(key.fileobj, state)

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self.open)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for key in list(self.sel.get_map().values()):
            key.fileobj.close()
        self.sel.close()


def server_connections(stack: Stack) -> int:
    """Connections the server's processes have accepted (not those waiting in its listen backlog)."""
    server = psutil.Process(stack.server.proc.pid)
    conns = [c for p in [server, *server.children(recursive=True)] for c in p.net_connections(kind="tcp")]
    return sum(1 for c in conns if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == stack.http_port)


def timed(call: Any) -> tuple[float, Any]:
    start = time.monotonic()
    try:
        result = call()
    except requests.RequestException as exc:
        result = exc
    return time.monotonic() - start, result


def test_the_desk_and_presses_answer_within_a_second_while_slow_and_idle_clients_hold_connections(stack, presser):
    stack.map_button("slow-shop", "b1", "printer")
    presser.final_ack(presser.press("slow-shop", "b1"))  # the device's ticket exists: the presses below merge
    crowd = Crowd(stack.http_port, SLOW, IDLE, LINE_EVERY_S)
    until = time.monotonic() + HEADER_TIMEOUT_S + LATE_MARGIN_S
    try:
        time.sleep(1.0)  # all accepted
        held = server_connections(stack)
        assert held >= SLOW + IDLE, f"the server holds {held} connections, not the crowd's {SLOW + IDLE}"
        slowest: dict[str, float] = {}
        events: list[str] = []
        # Rounds until the whole crowd has been cut off (3 s idle, 4 s headers) and come back at least once.
        while time.monotonic() < until or len(events) < 5:
            assert min(crowd.counts().values()) >= 0.9 * SLOW, crowd.counts()
            for name, call in [
                ("/healthz", lambda: requests.get(stack.base + "/healthz", timeout=5)),
                ("/login", lambda: requests.get(stack.base + "/login", timeout=5)),
                ("API with a token", lambda: requests.get(stack.base + "/api/v1/tickets?limit=5", headers=AUTH,
                                                          timeout=5)),
            ]:
                took, r = timed(call)
                assert not isinstance(r, Exception), f"{name}: {r!r} after {took:.1f} s; crowd {crowd.counts()}"
                assert r.status_code == 200, f"{name}: {r.status_code} {r.text[:200]}"
                assert took < ANSWER_WITHIN_S, f"{name} took {took:.2f} s; crowd {crowd.counts()}"
                slowest[name] = max(slowest.get(name, 0.0), took)
            start = time.monotonic()
            event = presser.press("slow-shop", "b1")
            ack = presser.final_ack(event, timeout=5)
            took = time.monotonic() - start
            events.append(event)
            assert ack["result"] == "merged", ack
            assert took < ANSWER_WITHIN_S, f"the press's final ack took {took:.2f} s; crowd {crowd.counts()}"
            slowest["press -> final ack"] = max(slowest.get("press -> final ack", 0.0), took)
            time.sleep(0.3)
        assert server_connections(stack) >= 0.9 * (SLOW + IDLE)
        cut = dict(crowd.cut)
    finally:
        crowd.close()
    # No press waited in the bridge's outbox for a server that did not answer.
    assert all(presser.ack_results(e) == ["merged"] for e in events), [presser.ack_results(e) for e in events]
    # The crowd was cut off by the deadlines while the checks ran, and came back.
    assert cut["slow"] >= SLOW and cut["idle"] >= IDLE, cut
    assert any(b" 408 " in a for a in crowd.answers), crowd.answers[:3]
    print("slowest answers while held:", {k: round(v, 3) for k, v in slowest.items()}, "cut off:", cut)


def _read_until_closed(sock: socket.socket, limit_s: float) -> tuple[float, bytes]:
    """Seconds until the server closed ``sock`` (measured from now), and what it sent."""
    start = time.monotonic()
    sock.settimeout(limit_s)
    got = b""
    try:
        while chunk := sock.recv(65536):
            got += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    return time.monotonic() - start, got


def _trickle(port: int, head: bytes, drip: bytes, within_s: float) -> tuple[float, bytes]:
    """Send ``head``, then ``drip`` about once a second, reading what the server answers, until it closes the
    connection or ``within_s`` passes: how long that took, and what it answered."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(head)
    start = time.monotonic()
    sock.settimeout(1.0)
    got = b""
    while time.monotonic() - start < within_s:
        try:
            sock.sendall(drip)
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except (BrokenPipeError, ConnectionResetError):
            break
        if not chunk:
            break
        got += chunk
    sock.close()
    return time.monotonic() - start, got


def _slow_headers(port: int) -> tuple[float, bytes]:
    return _trickle(port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n", b"X-Slow: one line a second\r\n",
                    HEADER_TIMEOUT_S + LATE_MARGIN_S + 5)


def _slow_body(port: int) -> tuple[float, bytes]:
    # One byte a second: far below any rate the server accepts.
    return _trickle(port, b"POST /api/v1/incidents HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                          b"Content-Length: 400\r\n\r\n{", b" ", BODY_TIMEOUT_S + LATE_MARGIN_S + 5)


def _idle(port: int) -> tuple[float, bytes]:
    sock = socket.create_connection(("127.0.0.1", port))
    took, got = _read_until_closed(sock, IDLE_TIMEOUT_S + LATE_MARGIN_S + 5)
    sock.close()
    return took, got


def _keep_alive(port: int) -> int:
    """A client that reuses its connection every second, past the idle timeout: never cut off."""
    pool = urllib3.HTTPConnectionPool("127.0.0.1", port, maxsize=1, retries=False)
    for _ in range(int(IDLE_TIMEOUT_S) + 3):
        assert pool.request("GET", "/healthz", timeout=5).status == 200
        time.sleep(1.0)
    return pool.num_connections  # 1: the one connection served every request


def test_slow_and_idle_clients_are_cut_off_on_time_and_busy_ones_are_not(stack):
    with ThreadPoolExecutor(4) as pool:
        headers = pool.submit(_slow_headers, stack.http_port)
        body = pool.submit(_slow_body, stack.http_port)
        idle = pool.submit(_idle, stack.http_port)
        keep_alive = pool.submit(_keep_alive, stack.http_port)
        (headers_s, headers_got), (body_s, body_got), (idle_s, idle_got) = (
            headers.result(), body.result(), idle.result())
        assert keep_alive.result() == 1

    assert HEADER_TIMEOUT_S <= headers_s < HEADER_TIMEOUT_S + LATE_MARGIN_S, headers_s
    assert headers_got.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), headers_got
    assert b"Content-Type: application/json" in headers_got and b'"code": "request_timeout"' in headers_got

    assert BODY_TIMEOUT_S <= body_s < BODY_TIMEOUT_S + LATE_MARGIN_S, body_s
    assert body_got.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), body_got
    assert b'"code": "request_timeout"' in body_got and b"body" in body_got

    assert IDLE_TIMEOUT_S <= idle_s < IDLE_TIMEOUT_S + LATE_MARGIN_S, idle_s
    assert idle_got == b""  # nothing was asked: nothing to answer


def _signed_in(stack: Stack) -> requests.Session:
    web = requests.Session()
    page = web.get(stack.base + "/login", timeout=10)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.text) or re.search(
        r'value="([^"]+)"[^>]*name="csrf_token"', page.text)
    assert token, page.text[:300]
    r = web.post(stack.base + "/login", data={"csrf_token": token.group(1), "username": "admin",
                                              "password": ADMIN_PASSWORD}, timeout=10)
    assert r.status_code == 200 and "/login" not in r.url, r.url
    return web


def test_a_live_update_stream_quiet_for_longer_than_the_idle_timeout_stays_and_gets_each_event(stack, presser):
    stack.map_button("stream-shop", "b1", "printer")
    web = _signed_in(stack)
    with web.get(stack.base + "/events/stream", stream=True, timeout=30) as r:
        assert r.status_code == 200
        lines = r.iter_lines()
        assert next(lines).startswith(b": dashdesk events")
        time.sleep(IDLE_TIMEOUT_S + LATE_MARGIN_S)  # nothing sent either way meanwhile
        start = time.monotonic()
        presser.final_ack(presser.press("stream-shop", "b1"))
        seen = next((line for line in lines if line.startswith(b"data: ") and b"stream-shop" in line), None)
        took = time.monotonic() - start
    assert seen, "the stream ended without the press's event"
    assert took < ANSWER_WITHIN_S, f"the press reached the open stream after {took:.2f} s"


# What the HTTP layer refuses itself, before the app sees it: the API's JSON error all the same.
RAW_REFUSALS = [
    ("malformed-request-line", b"GARBAGE\r\n\r\n", 400, "bad_request"),
    ("lowercase-method", b"get /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad_request"),
    ("bad-content-length", b"POST /api/v1/incidents HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\n{}", 400,
     "bad_request"),
    ("transfer-encoding-gzip", b"POST /api/v1/incidents HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 400,
     "bad_request"),
    ("body-over-9-mib", b"POST /api/v1/incidents HTTP/1.1\r\nHost: x\r\nContent-Length: 20000000\r\n\r\n", 413,
     "payload_too_large"),
    ("request-line-over-4094", b"GET /healthz?" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "uri_too_long"),
    ("header-line-over-8190", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n", 431,
     "headers_too_large"),
]


@pytest.mark.parametrize("raw, status, code", [r[1:] for r in RAW_REFUSALS], ids=[r[0] for r in RAW_REFUSALS])
def test_the_http_layer_answers_what_it_refuses_with_the_apis_json_error(stack, raw, status, code):
    sock = socket.create_connection(("127.0.0.1", stack.http_port))
    sock.sendall(raw)
    took, got = _read_until_closed(sock, 10)
    sock.close()
    head, _, body = got.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == str(status).encode(), got[:300]
    assert b"\r\nContent-Type: application/json" in head and b"\r\nConnection: close" in head, head
    error = json.loads(body)["error"]
    assert error["code"] == code and error["message"], error
    assert took < 5, took  # answered and closed at once, not left to a deadline


def test_sigterm_ends_the_live_update_streams_and_closes_slow_and_idle_clients_at_once(stack):
    """Last in this module: it stops the server (and starts it again for the stack's teardown)."""
    web = _signed_in(stack)
    idle = socket.create_connection(("127.0.0.1", stack.http_port))
    slow = socket.create_connection(("127.0.0.1", stack.http_port))
    slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    try:
        with web.get(stack.base + "/events/stream", stream=True, timeout=30) as r:
            lines = r.iter_lines()
            assert next(lines).startswith(b": dashdesk events")
            start = time.monotonic()
            stack.server.proc.send_signal(signal.SIGTERM)
            rest = list(lines)  # the stream ends, as a whole chunked answer (no error)
            ended = time.monotonic() - start
        code = stack.server.proc.wait(10)
        exited = time.monotonic() - start
        assert code == 0, stack.logs("server")
        assert ended < 2 and exited < 3, (ended, exited)  # not the 10 s grace: nothing was under way
        assert all(not line.startswith(b"data:") for line in rest), rest
        assert _read_until_closed(idle, 1)[1] == b"" and _read_until_closed(slow, 1)[1] == b""
    finally:
        idle.close()
        slow.close()
        stack.start_server()
