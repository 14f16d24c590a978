"""The Flask application factory of the ticket server."""

from __future__ import annotations

import os
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Any

from apiflask import APIFlask, abort
from apiflask.exceptions import HTTPError
from flask import request
from sqlalchemy import select, text
from werkzeug.exceptions import HTTPException
from werkzeug.routing import IntegerConverter, ValidationError

from dashdesk import config as dd_config
from dashdesk import wire

from server import migrate
from server.admin import admin, enrolment_pages
from server.api import api, api_docs, enrolments_api, openapi
from server.context import KEY, Extension
from server.db import Database, DatabaseBusy
from server.desk import web
from server.domain import inputs, users
from server.domain.broker_accounts import BrokerAccounts
from server.domain.errors import NotFound
from server.domain.incidents import Settings
from server.domain.tokens import TokenCache, create_token
from server.errors import error_body
from server.models import Category
from server.pages.errors import is_page_request, page_error
from server.pages.security import init_security
from server.pages.session import csrf, init_pages
from server.phone import phone


# A press is at most 16 KiB on the wire; an enriched one stays well below this.
MAX_BODY_BYTES = 256 * 1024
# Objects and arrays inside one another in a JSON body: a press with its telemetry has some ten levels. Deeper
# ones are refused before anything reads them (past some hundreds they would exhaust Python's stack).
MAX_JSON_DEPTH = 32
# Where a JSON body may carry a lone surrogate: in telemetry, where it is replaced (``schemas.Telemetry``), as the
# bridge does with what devices publish; anywhere else it is refused. By endpoint: the paths of telemetry (``int``:
# any index of a list).
TELEMETRY_PATHS: dict[str, tuple[tuple[Any, ...], ...]] = {
    "api.post_incident": (("telemetry",),),
    "api.post_incident_batch": (("items", int, "telemetry"),),
    "api.post_telemetry": (("telemetry",),),
}


class AsciiIntConverter(IntegerConverter):
    """``<int:...>`` in a path: 1-18 ASCII digits, read by :func:`server.domain.inputs.parse_int` (Werkzeug's own takes any
    Unicode digit: ``/tickets/١`` was ticket 1)."""

    regex = r"[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        number = inputs.parse_int(value)
        if number is None:
            raise ValidationError()
        return number


def _under(path: tuple[Any, ...], prefixes: tuple[tuple[Any, ...], ...]) -> bool:
    return any(len(path) >= len(p) and all(want is int and isinstance(got, int) or want == got
                                           for want, got in zip(p, path)) for p in prefixes)


def database_url(cfg: dict[str, Any]) -> str:
    url = cfg.get("server", {}).get("database_url") or ""
    if url:
        return url
    data_dir = Path(cfg.get("data_dir") or ".").resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{data_dir / 'dashdesk.sqlite3'}"


def load_categories(path: Path | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    data = tomllib.loads((path or dd_config.default_file("categories.toml")).read_text())
    return data.get("category", []), {str(k): v for k, v in data.get("default_sla", {}).items()}


def seed(db: Database, categories: list[dict[str, Any]], default_sla: dict[str, Any]) -> bool:
    """Give a database without categories (a new one) the shipped ones; True if it did.

    Once a database has categories they are the admins': one they deleted (``config import
    --prune``) stays deleted, and one they changed stays as they left it, restart after restart.
    """
    with db.write() as s:
        if s.scalar(select(Category.id).limit(1)) is not None:
            return False
        for c in categories:
            s.add(Category(slug=c["slug"], name=c["name"], icon=c.get("icon", ""),
                           priority=c.get("priority", 3), sla={**default_sla, **c.get("sla", {})}))
    return True


def bootstrap(db: Database, env: dict[str, str] | os._Environ[str]) -> None:
    """Turn ``DASHDESK_ADMIN_TOKEN`` into an admin API token (once; a stored one is kept), and
    ``DASHDESK_ADMIN_PASSWORD`` into the password of web user ``admin`` if there is no such user yet."""
    token = env.get("DASHDESK_ADMIN_TOKEN")
    if token:
        create_token(db, "admin (bootstrap)", "admin", token)
    users.bootstrap_admin(db, env.get("DASHDESK_ADMIN_PASSWORD"))


def data_dir(cfg: dict[str, Any]) -> Path:
    return Path(cfg.get("data_dir") or ".").resolve()


def create_app(cfg: dict[str, Any] | None = None, *, upgrade: bool = True) -> APIFlask:
    """Build the server for configuration ``cfg`` (``dashdesk.config.load()`` if None)."""
    cfg = cfg if cfg is not None else dd_config.load()
    # /api/v1/docs is a page of dashdesk's own (server.api.docs): APIFlask's loads Swagger UI from a CDN.
    app = APIFlask("server", title="dashdesk", version="1", spec_path="/api/v1/openapi.json", docs_path=None)
    app.url_map.converters["int"] = AsciiIntConverter
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.config["SYNC_LOCAL_SPEC"] = False
    app.config["VALIDATION_ERROR_STATUS_CODE"] = 400
    app.config["AUTH_ERROR_STATUS_CODE"] = 401
    app.json.sort_keys = False  # type: ignore[attr-defined]
    openapi.init(app)
    server_cfg = cfg.get("server", {})
    # The web desk's sessions: a signed cookie that expires, never readable by scripts, Secure over https
    # (server.pages.security); the session itself is a row of web_sessions (server.domain.web_sessions).
    app.config["SECRET_KEY"] = users.secret_key(server_cfg.get("secret_key") or None, data_dir(cfg))
    lifetime = timedelta(hours=float(server_cfg.get("session_lifetime_h", 12)))
    app.config.update(PERMANENT_SESSION_LIFETIME=lifetime, SESSION_COOKIE_HTTPONLY=True,
                      SESSION_COOKIE_SAMESITE="Lax", SESSION_COOKIE_NAME="dashdesk_session",
                      # The lifetime counts from the sign-in, not from the last page seen.
                      SESSION_REFRESH_EACH_REQUEST=False,
                      # A form's token lasts as long as the session it belongs to.
                      WTF_CSRF_TIME_LIMIT=int(lifetime.total_seconds()),
                      DASHDESK_SSE_LIFETIME_S=float(server_cfg.get("sse_lifetime_s", 60)),
                      DASHDESK_SSE_MAX_STREAMS=int(server_cfg.get("sse_max_streams", 16)),
                      DASHDESK_LOGIN_LIMIT_PER_USER=str(server_cfg.get("login_limit_per_user", "5 per minute")),
                      DASHDESK_LOGIN_LIMIT_PER_ADDRESS=str(server_cfg.get("login_limit_per_address",
                                                                          "30 per 10 minutes")),
                      RATELIMIT_STORAGE_URI=str(server_cfg.get("rate_limit_storage", "memory://")),
                      RATELIMIT_HEADERS_ENABLED=True)
    url = database_url(cfg)
    if upgrade:
        migrate.upgrade(url)
    db = Database(url, fast_sql=bool(server_cfg.get("sqlite_fast_path", True)))
    categories, default_sla = load_categories()
    seed(db, categories, default_sla)
    bootstrap(db, os.environ)
    app.extensions[KEY] = Extension(
        db=db,
        settings=Settings(reopen_window_s=float(server_cfg.get("reopen_window_s", 86400)),
                          cancel_window_s=float(server_cfg.get("cancel_window_s", 120)),
                          late_after_s=float(server_cfg.get("late_after_s", 30))),
        tokens=TokenCache(),
        default_sla=default_sla,
        broker=BrokerAccounts.from_config(cfg),
    )

    # The whole configuration, for parts that read their own section (the phone app's [app]).
    app.config["DASHDESK_CONFIG"] = cfg

    init_security(app, server_cfg)
    app.register_blueprint(api)
    app.register_blueprint(api_docs)
    init_pages(app, exempt=[api, enrolments_api])
    app.register_blueprint(web)
    app.register_blueprint(admin)
    # The phone app: no sign-in, no CSRF (nothing there rides on a cookie).
    csrf.exempt(phone)
    app.register_blueprint(phone)
    app.register_blueprint(enrolment_pages)
    app.register_blueprint(enrolments_api)

    @app.before_request
    def strict_json() -> None:
        """Refuse what Python's parser takes but JSON is not (NaN, 1e999), or what breaks it (deep nesting:
        more than MAX_JSON_DEPTH levels), and text that is not Unicode: a lone surrogate (``"\\ud800"``), outside
        telemetry (see TELEMETRY_PATHS).

        Only for requests that carry credentials: one without gets its 401 first. (The only JSON body read without
        them, the phone app's enrolment, is ignored whatever it holds.)
        """
        if request.is_json and "Authorization" in request.headers:
            body = request.get_data(cache=True)
            if body:
                try:
                    data = wire.loads_strict(body)
                except ValueError as exc:
                    abort(400, f"body is not valid JSON: {str(exc)[:100]}")
                if wire.nesting_depth(data, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
                    abort(400, f"body is nested deeper than {MAX_JSON_DEPTH} levels")
                telemetry = TELEMETRY_PATHS.get(request.endpoint or "", ())
                where = (inputs.lone_surrogate_at(data, lambda path: _under(path, telemetry))
                         if inputs.may_hold_lone_surrogate(body) else None)
                if where is not None:
                    abort(400, f"{inputs.path_text(where)} contains a lone surrogate (a \\ud800-\\udfff escape on "
                               "its own): it is not Unicode text")

    @app.before_request
    def plain_requests() -> None:
        """A path, a query or a form that carries what no page or API takes: a path with a control character is no
        page (404); a query parameter is one line of text (``server.domain.inputs.text_problem``); no form field may
        hold NUL (each field's own rules say the rest)."""
        if inputs.has_control(request.path):
            abort(404)
        for key, value in request.args.items(multi=True):
            problem = inputs.text_problem(key) or inputs.text_problem(value)
            if problem:
                abort(400, f"query parameter {inputs.path_text((key,))} {problem}")
        if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            for key, value in request.form.items(multi=True):
                if "\x00" in key or "\x00" in value:
                    abort(400, f"form field {inputs.path_text((key,))} contains NUL (U+0000), which cannot be "
                               "stored")

    @app.get("/healthz")
    @app.doc(summary="200 while the database answers", tags=["Health"])
    def healthz() -> tuple[dict[str, str], int]:
        try:
            with db.read() as s:
                s.execute(text("SELECT 1"))
        except Exception as exc:  # any database failure is what this endpoint reports
            return {"status": "error", "detail": type(exc).__name__}, 503
        return {"status": "ok"}, 200

    # Every error of a page (the desk's, the admin pages') is the HTML error page; the API's are JSON.
    @app.error_processor
    def error_response(error: HTTPError) -> Any:
        if is_page_request():
            body, code = page_error(error.status_code, error.message)
            return body, code, error.headers
        return error_body(error.status_code, error.message, detail=error.detail), error.status_code, error.headers

    @app.errorhandler(DatabaseBusy)
    def database_busy(exc: DatabaseBusy) -> Any:
        # Another process holds the database's write lock: nothing was written; a retry soon will do.
        retry = {"Retry-After": "1"}
        if is_page_request():
            body, code = page_error(503, None)
            return body, code, retry
        return error_body(503, str(exc)), 503, retry

    @app.errorhandler(NotFound)
    def not_found(exc: NotFound) -> Any:
        # A look-up (server.domain) found nothing of that name: a page says it in a sentence, the API as its error.
        if is_page_request():
            return page_error(404, exc.sentence)
        return error_body(404, exc.message), 404

    @app.errorhandler(HTTPException)
    def http_exception(exc: HTTPException) -> Any:
        code = exc.code or 500
        if is_page_request():
            body, code = page_error(code, exc.description, exc)
            return body, code, _error_headers(exc)
        return error_body(code, exc.description or exc.name), code, _error_headers(exc)

    return app


def _error_headers(exc: HTTPException) -> dict[str, str]:
    """The headers an error keeps on its HTML page: which methods a 405 allows, when to retry a 429 or 503."""
    keep = ("Allow", "Retry-After")
    return {k: v for k, v in exc.get_headers() if k in keep}
