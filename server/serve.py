"""Serve the ticket server with waitress: one process, the app built once.

Waitress's I/O thread reads each whole request (headers and body) into a buffer
before a worker thread is given it, and buffers the answer, so a client that
sends or reads slowly, or connects and sends nothing, holds a connection, never
a thread. What waitress lacks is added here: a deadline for a request's headers
and for its body (the connection is closed with a 408), an idle timeout, per-line
header limits (414, 431), JSON bodies for every error it answers itself, and a
graceful stop on SIGTERM (``serve``).
"""

from __future__ import annotations

import gc
import json
import logging
import resource
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any

from waitress import wasyncore
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import TcpWSGIServer
from waitress.task import ErrorTask, ThreadedTaskDispatcher
from waitress.utilities import BadRequest, Error, RequestHeaderFieldsTooLarge

from server.domain import inputs
from server.errors import error_code

log = logging.getLogger(__name__)

# ------------------------------------------------------------------ tuning
#
# [server] keys (config/dashdesk.toml, docs/operating.md) override the first four.

# From a request's first byte to the end of its headers. A browser, the bridge or curl sends them
# in one packet; ten seconds is a slow phone link many times over, and an attacker trickling a
# header line every few seconds (slowloris) is cut off after it. [server] header_timeout_s.
HEADER_TIMEOUT_S = 10.0
# A request's body must arrive within this many seconds after its headers, plus one second for
# every BODY_MIN_RATE bytes received: a press (a kilobyte) has ten seconds, an 8 MiB import
# keeps going as long as it arrives at 8 KiB/s on average. [server] body_timeout_s.
BODY_TIMEOUT_S = 10.0
# 64 kbit/s: the slowest link an admin's upload may plausibly come over.
BODY_MIN_RATE = 8 * 1024
# A connection on which nothing is sent (none yet, or none since its last answer) is closed after
# this long. Long enough for a browser or the bridge to reuse its connection between requests
# (the bridge polls the event feed every 0.2 s), short enough that connections opened and left
# idle, by mistake or on purpose, do not pile up. [server] idle_timeout_s.
IDLE_TIMEOUT_S = 10.0
# Connections open at once; beyond it the server stops accepting until some close (waitress's
# default is 100, which 100 idle connections would exhaust). Each costs a file descriptor and a
# few kilobytes, and each pass of the I/O loop looks at every one (about 1 microsecond each), so
# a thousand leave room for hundreds of slow or idle clients besides the desk. [server] connection_limit.
CONNECTION_LIMIT = 1000
# File descriptors besides one per connection: stdio and logs, the listening socket, the loop's
# wake-up pipe, Python's own (FD_BASE); per worker thread its SQLite connection (database, WAL and
# shared-memory files) and a temporary file for a large body or answer (FD_PER_THREAD).
FD_BASE = 64
FD_PER_THREAD = 4
# Threads answering requests. Each open desk page holds one for its live-update stream (at most
# half of them do, see ``stream_slots``); the rest serve the bridge and the pages.
DEFAULT_THREADS = 32
# What the HTTP layer takes before it answers itself (always JSON, see _JSONErrorTask):
# a request line over 4094 bytes is 414, a header line over 8190 bytes is 431 (the limits
# gunicorn, the server dashdesk ran before, had, which clients have met since), all the
# headers over 64 KiB are 431 too (as they arrive: never more than that is buffered).
MAX_REQUEST_LINE = 4094
MAX_HEADER_LINE = 8190
MAX_HEADERS = 64 * 1024
# Bodies over this are refused (413) before they are read. Above the largest body the app takes
# itself (sites and configuration imports, 8 MiB) with room for a form's framing, so that the app
# answers uploads over its own limits (with a page for a form); waitress would take 1 GiB.
MAX_BODY = 9 * 1024 * 1024
# Connections accepted at most in one pass of the I/O loop (see _Server.handle_accept).
ACCEPT_BATCH = 64
# How often the I/O loop wakes at the least: deadlines are checked, and a stop noticed, this often.
TICK_S = 0.5
# After SIGTERM or SIGINT: answers under way get this long to finish (live-update streams end at once).
STOP_GRACE_S = 10.0


@dataclass(frozen=True)
class Limits:
    header_timeout_s: float = HEADER_TIMEOUT_S
    body_timeout_s: float = BODY_TIMEOUT_S
    idle_timeout_s: float = IDLE_TIMEOUT_S
    connection_limit: int = CONNECTION_LIMIT

    @classmethod
    def from_config(cls, server_cfg: dict[str, Any]) -> "Limits":
        """The ``[server]`` settings; ``ValueError`` naming the one that is no number of seconds (0.1 s to a day:
        never ``nan`` or ``inf``, which would turn a deadline off) or of connections."""

        def seconds(key: str, default: float) -> float:
            value = server_cfg.get(key, default)
            parsed = inputs.parse_decimal(str(value).strip(), low=0.1, high=86400.0)
            if parsed is None:
                raise ValueError(f"[server] {key} must be a number of seconds from 0.1 to 86400, not "
                                 f"{str(value)[:40]!r}")
            return parsed

        value = server_cfg.get("connection_limit", CONNECTION_LIMIT)
        connections = inputs.parse_int(str(value).strip(), low=10, high=1_000_000)
        if connections is None:
            raise ValueError(f"[server] connection_limit must be a number from 10 to 1000000, not {str(value)[:40]!r}")
        return cls(header_timeout_s=seconds("header_timeout_s", HEADER_TIMEOUT_S),
                   body_timeout_s=seconds("body_timeout_s", BODY_TIMEOUT_S),
                   idle_timeout_s=seconds("idle_timeout_s", IDLE_TIMEOUT_S), connection_limit=connections)


def stream_slots(threads: int, configured: int) -> int:
    """How many live-update streams the server may hold open: never more than half its threads."""
    return max(1, min(configured, threads // 2))


# ------------------------------------------------------------------ the HTTP layer's own answers


class URITooLong(Error):
    code = 414
    reason = "URI Too Long"


class RequestTimeout(Error):
    code = 408
    reason = "Request Timeout"


# ``error_code`` (the app's names) for what only the HTTP layer answers.
_LAYER_CODES = {408: "request_timeout"}


def _message(error: Error) -> str:
    if error.code == 431:
        return (f"the request's headers are too large (at most {MAX_HEADER_LINE} bytes a line, "
                f"{MAX_HEADERS} in all)")
    if error.code == 414:
        return f"the request line is too long (at most {MAX_REQUEST_LINE} bytes)"
    if error.code == 413:
        return f"the request's body is too large (at most {MAX_BODY} bytes)"
    if error.code == 400:
        return f"malformed request: {error.body}"
    if error.code == 500:
        return "the server failed to answer"
    return error.body or error.reason


def _json_body(error: Error) -> bytes:
    code = _LAYER_CODES.get(error.code) or error_code(error.code)
    return json.dumps({"error": {"code": code, "message": _message(error)}}).encode()


class _JSONErrorTask(ErrorTask):  # type: ignore[misc]
    """Waitress's answer to a request it does not hand to the app, as the app's ``{"error": ...}`` JSON."""

    def execute(self) -> None:
        error = self.request.error
        if error.code == 501:
            # A Transfer-Encoding other than chunked: bad input, which never gets a 5xx.
            error = BadRequest(f"Transfer-Encoding not supported: {error.body}")
        body = _json_body(error)
        self.status = f"{error.code} {error.reason}"
        self.response_headers.append(("Content-Type", "application/json"))
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


def _timeout_answer(message: str) -> bytes:
    """A whole 408 answer, written by the I/O thread itself (no worker thread needed for it)."""
    body = _json_body(RequestTimeout(message))
    return (b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body))


class _Request(HTTPRequestParser):  # type: ignore[misc]
    """A request as it arrives: when it started and when its body did; the per-line limits."""

    def __init__(self, adj: Adjustments):
        super().__init__(adj)
        self.started = time.monotonic()
        self.body_started: float | None = None

    def received(self, data: bytes) -> int:
        consumed = super().received(data)
        if self.headers_finished and self.body_started is None:
            self.body_started = time.monotonic()
        return consumed

    def parse_header(self, header_plus: bytes) -> None:
        lines = header_plus.split(b"\r\n")
        too_large: Error
        if len(lines[0]) > MAX_REQUEST_LINE:
            too_large = URITooLong(f"request line of {len(lines[0])} bytes")
        elif any(len(line) > MAX_HEADER_LINE for line in lines[1:]):
            too_large = RequestHeaderFieldsTooLarge("a header line is too long")
        else:
            super().parse_header(header_plus)
            return
        # As waitress does for headers too large in all: a request it can answer, with the error.
        super().parse_header(b"GET / HTTP/1.0\r\n")
        self.error = too_large


class _Channel(HTTPChannel):  # type: ignore[misc]
    """One client connection, with deadlines for a request's headers and body and an idle timeout."""

    parser_class = _Request
    error_task_class = _JSONErrorTask

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        # Since when no request of this connection is being answered (a pipelined request's clock
        # starts when the one before it is answered).
        self.free_since = time.monotonic()

    def service(self) -> None:
        super().service()
        self.free_since = time.monotonic()

    def enforce(self, limits: Limits, now: float, wall: float) -> None:
        """Time out a request that arrives too slowly, or close a connection idle too long.

        Runs in the I/O thread, as reading does."""
        if self.will_close:
            return
        with self.requests_lock:
            if self.requests:
                return  # being answered: the app's time, not the client's
            request = self.request
            if request is not None and not request.completed:
                if request.body_started is None:
                    late = now - max(request.started, self.free_since) > limits.header_timeout_s
                    what = f"the request's headers did not arrive within {limits.header_timeout_s:g} s"
                else:
                    allowed = limits.body_timeout_s + request.body_bytes_received / BODY_MIN_RATE
                    late = now - max(request.body_started, self.free_since) > allowed
                    what = (f"the request's body did not arrive in time ({limits.body_timeout_s:g} s, "
                            f"and at least {BODY_MIN_RATE} bytes a second)")
                if late:
                    request.close()
                    self.request = None
                    answer = _timeout_answer(what)
                    with self.outbuf_lock:
                        self.outbufs[-1].append(answer)
                        self.current_outbuf_count += len(answer)
                        self.total_outbufs_len += len(answer)
                    self.close_when_flushed = True  # reads nothing more; closed once the answer is sent
                return
        if wall - self.last_activity > limits.idle_timeout_s:
            self.will_close = True


class _Server(TcpWSGIServer):  # type: ignore[misc]
    channel_class = _Channel
    limits = Limits()

    def handle_accept(self) -> None:
        """Accept every connection waiting (waitress takes one per pass of its loop, and each pass
        looks at every connection: a burst of new ones would keep the next request waiting)."""
        for _ in range(ACCEPT_BATCH):
            if len(self._map) >= self.adj.connection_limit:
                return
            before = len(self._map)
            super().handle_accept()
            if len(self._map) == before:
                return  # none waiting (or one that failed: the next pass tries again)

    def maintenance(self, now: float) -> None:
        mono = time.monotonic()
        for channel in list(self.active_channels.values()):
            try:
                channel.enforce(self.limits, mono, now)
            except Exception:  # the I/O loop must go on whatever one connection did
                log.exception("checking a connection's deadlines failed")
                channel.will_close = True


# ------------------------------------------------------------------ the process


class NewestFirst(threading.Condition):
    """A condition whose ``notify`` wakes the thread that began to wait last, not first.

    Waitress's threads wait on one condition for requests, and ``threading.Condition`` wakes the
    longest waiting, so one request after another goes round all 32 threads. Waking the newest
    keeps requests on the few threads that ran last (as gunicorn's thread pool did); the others
    still take requests that arrive together. Presses one at a time, alternating with gunicorn's
    server at the same moments on a busy 2-core machine: median 1.6x gunicorn's before, 1.2x
    with this, 90th and 99th percentiles level.
    """

    def notify(self, n: int = 1) -> None:
        if not self._is_owned():  # type: ignore[attr-defined]
            raise RuntimeError("cannot notify on un-acquired lock")
        waiters = self._waiters  # type: ignore[attr-defined]
        while waiters and n > 0:
            waiter = waiters.pop()
            try:
                waiter.release()
            except RuntimeError:  # already released
                continue
            n -= 1


def _open_files(wanted: int) -> int:
    """Raise the soft limit of open files towards ``wanted`` (up to the hard limit); the limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return wanted
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-file limit from %d to %d: %s", soft, target, exc)
    return soft


def _stop(servers: list[_Server], socket_map: dict[int, Any], dispatcher: ThreadedTaskDispatcher) -> None:
    """Stop accepting, let the answers under way finish (STOP_GRACE_S at most), close the rest."""
    for server in servers:
        wasyncore.dispatcher.close(server)  # the listening socket (its wake-up pipe stays for the rest)
    deadline = time.monotonic() + STOP_GRACE_S
    while time.monotonic() < deadline:
        channels = [c for server in servers for c in list(server.active_channels.values())]
        if not channels:
            break
        for channel in channels:
            with channel.requests_lock:
                if not channel.requests:
                    channel.close_when_flushed = True  # takes no new request; closed once its answer is sent
        wasyncore.loop(timeout=0.1, map=socket_map, use_poll=True, count=1)
    dispatcher.shutdown(cancel_pending=True, timeout=1)


class Listening:
    """The server's listening sockets, threads and connections, before its loop runs (see ``serve``)."""

    def __init__(self, app: Any, host: str, port: int, threads: int, limits: Limits):
        self.limits = limits
        self.adj = Adjustments(
            listen=f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}",
            threads=threads, connection_limit=limits.connection_limit,
            max_request_header_size=MAX_HEADERS, max_request_body_size=MAX_BODY,
            # Deadlines and idle connections are ours (_Channel.enforce), checked every tick.
            cleanup_interval=TICK_S, channel_timeout=limits.idle_timeout_s, asyncore_loop_timeout=TICK_S,
            # poll(), not select(): select() fails on descriptors past 1023.
            asyncore_use_poll=True,
            # A client that goes away is no error of the server's.
            log_socket_errors=False,
            # (Each write of the app goes out at once: waitress's default send_bytes = 1, a setting it now
            # deprecates. The desk's live updates need it; tests/integration/test_slow_clients.py checks.)
            # X-Forwarded-* reach the app, whose [server] proxy_fix decides whom to trust (waitress would
            # drop them all unless it is told of the proxy itself).
            clear_untrusted_proxy_headers=False,
            ident="dashdesk",
        )
        self.map: dict[int, Any] = {}
        self.dispatcher = ThreadedTaskDispatcher()
        self.dispatcher.queue_cv = NewestFirst(self.dispatcher.lock)
        self.dispatcher.set_thread_count(threads)
        self.servers = []
        for sockinfo in self.adj.listen:
            server = _Server(app, map=self.map, dispatcher=self.dispatcher, adj=self.adj, sockinfo=sockinfo)
            server.limits = limits
            self.servers.append(server)

    @property
    def urls(self) -> list[str]:
        return [f"http://{s.effective_host}:{s.effective_port}" for s in self.servers]

    def run(self, stopping: threading.Event) -> None:
        """Serve until ``stopping`` is set, then stop (``_stop``)."""
        while not stopping.is_set():
            wasyncore.loop(timeout=TICK_S, map=self.map, use_poll=True, count=1)
        _stop(self.servers, self.map, self.dispatcher)


def serve(cfg: dict[str, Any], host: str = "127.0.0.1", port: int = 8080, workers: int | None = None,
          threads: int = DEFAULT_THREADS) -> int:
    """Migrate, build the app once, then serve it until SIGINT or SIGTERM.

    One process: ``workers`` may only be None or 1 (``dashdesk server --workers`` says what to do instead).
    """
    from server.app import create_app
    from server.domain.users import unknown_user_hash
    from server.desk.stream import STOPPING

    if workers not in (None, 1):
        raise ValueError(f"the server runs as one process, not {workers}")
    app = create_app(cfg)
    unknown_user_hash()  # made once here, so that no sign-in pays for it
    # Everything built so far (the app, its models, SQLAlchemy's and the templates' machinery) lives as
    # long as the process: leave it out of the garbage collector's full passes. Without this a full
    # pass walks it all every few hundred requests, an 80-100 ms stall that was the desk's whole p99
    # (benchmarks/desk.py; benchmarks/README.md, "The desk with 100,000 tickets").
    gc.collect()
    gc.freeze()
    app.config["DASHDESK_SSE_MAX_STREAMS"] = stream_slots(threads, app.config["DASHDESK_SSE_MAX_STREAMS"])

    limits = Limits.from_config(cfg.get("server", {}))
    reserve = FD_BASE + FD_PER_THREAD * threads
    available = _open_files(limits.connection_limit + reserve)
    if available - reserve < limits.connection_limit:
        connections = max(10, available - reserve)
        log.warning("the open-file limit (%d) allows %d connections, not %d: raise it (ulimit -n, LimitNOFILE=)",
                     available, connections, limits.connection_limit)
        limits = Limits(limits.header_timeout_s, limits.body_timeout_s, limits.idle_timeout_s, connections)
    listening = Listening(app, host, port, threads, limits)
    logging.getLogger("waitress").setLevel(logging.WARNING)  # not a line per client that goes away

    # Live-update streams end as soon as a stop is asked for (server.desk), the rest in STOP_GRACE_S.
    def on_stop(_sig: int, _frame: Any) -> None:
        STOPPING.set()

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    log.info("serving on %s with %d threads, at most %d connections", ", ".join(listening.urls), threads,
             limits.connection_limit)
    listening.run(STOPPING)
    return 0
