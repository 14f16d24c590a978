"""The one JSON error body of the API and the phone app: ``{"error": {"code": ..., "message": ...}}``."""

from __future__ import annotations

from typing import Any

CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
         409: "conflict", 413: "payload_too_large", 415: "unsupported_media_type", 414: "uri_too_long",
         422: "invalid", 429: "too_many_requests", 431: "headers_too_large", 500: "internal_error",
         503: "unavailable"}


def error_code(status: int) -> str:
    """The ``code`` of an error body for an HTTP status."""
    return CODES.get(status, f"http_{status}")


def error_body(status: int, message: str, *, code: str | None = None, detail: Any = None) -> dict[str, Any]:
    """The body of an error answer: ``code`` (by default the status's name), ``message`` for people, ``detail``
    when there is more."""
    body: dict[str, Any] = {"code": code or error_code(status), "message": message}
    if detail:
        body["detail"] = detail
    return {"error": body}
