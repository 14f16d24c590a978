"""Serve the ticket server with gunicorn (threads per worker, the app built once)."""

from __future__ import annotations

import gc
import json
import signal
from typing import Any

from gunicorn import util as gunicorn_util
from gunicorn.app.base import BaseApplication

from .app import error_code


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    def __init__(self, app: Any, options: dict[str, Any]):
        self.application = app
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return self.application


def _write_json_error(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    """Gunicorn's answer to a request it cannot parse (a header too large, a bad request line), as JSON.

    Gunicorn writes these itself, before the app sees the request, as an HTML page;
    API clients get the same ``{"error": ...}`` body as from the app instead.
    """
    body = json.dumps({"error": {"code": error_code(status_int), "message": mesg or reason}}).encode()
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode("latin-1")
    gunicorn_util.write_nonblock(sock, head + body)


# Gunicorn calls util.write_error for every error it answers itself; it has no setting for the format.
gunicorn_util.write_error = _write_json_error


def _post_fork(_server: Any, worker: Any) -> None:
    # Connections opened in the master before the fork must not be shared.
    worker.app.application.extensions["dashdesk"].db.engine.dispose(close=False)


def _post_worker_init(worker: Any) -> None:
    """End the desk's live-update streams as soon as the worker is asked to stop.

    Each stream holds a thread for up to a minute; gunicorn would otherwise wait
    for them (``graceful_timeout``) before it stops.
    """
    from .web import STOPPING

    previous = signal.getsignal(signal.SIGTERM)

    def on_term(sig: int, frame: Any) -> None:
        STOPPING.set()
        if callable(previous):
            previous(sig, frame)

    signal.signal(signal.SIGTERM, on_term)


# Threads per worker. Each open desk page holds one for its live-update stream
# (at most half of them do, see ``stream_slots``); the rest serve the bridge and the pages.
DEFAULT_THREADS = 32


def stream_slots(threads: int, configured: int) -> int:
    """How many live-update streams a worker may hold open: never more than half its threads."""
    return max(1, min(configured, threads // 2))


def serve(cfg: dict[str, Any], host: str = "127.0.0.1", port: int = 8080, workers: int | None = None,
          threads: int = DEFAULT_THREADS) -> int:
    """Migrate, build the app once, then serve it until SIGINT or SIGTERM."""
    from .app import create_app

    from .users import unknown_user_hash

    app = create_app(cfg)
    unknown_user_hash()  # made once here, before the workers fork, so that no sign-in pays for it
    # Everything built so far (the app, its models, SQLAlchemy's and the templates' machinery) lives as
    # long as the process: leave it out of the garbage collector's full passes. Without this a full
    # pass walks it all every few hundred requests, an 80-100 ms stall that was the desk's whole p99
    # (benchmarks/desk.py; benchmarks/README.md, "The desk with 100,000 tickets").
    gc.collect()
    gc.freeze()
    if workers is None:
        workers = 1 if app.extensions["dashdesk"].db.url.startswith("sqlite") else 2
    app.config["DASHDESK_SSE_MAX_STREAMS"] = stream_slots(threads, app.config["DASHDESK_SSE_MAX_STREAMS"])
    _Gunicorn(app, {
        "bind": f"{host}:{port}", "workers": workers, "threads": threads, "worker_class": "gthread",
        "post_fork": _post_fork, "post_worker_init": _post_worker_init,
        "accesslog": None, "errorlog": "-", "loglevel": "warning",
        # Keep-alive lets the bridge reuse its connections press after press.
        "keepalive": 30, "graceful_timeout": 10, "timeout": 60,
    }).run()
    return 0
