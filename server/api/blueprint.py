"""The API's blueprint ``api`` (``/api/v1``) and what its endpoints share: path converters, times, the caller."""

from __future__ import annotations

import re
from datetime import datetime

from apiflask import APIBlueprint, abort
from werkzeug.routing import BaseConverter

from dashdesk import wire

from server.api import schemas
from server.api.auth import auth
from server.domain import audit, devices


api = APIBlueprint("api", __name__, url_prefix="/api/v1", tag="API")


def _name_but(*words: str) -> type[BaseConverter]:
    """A path segment that names a thing (a device, a site), except ``words``: at that place they are the
    API's own paths (``POST /api/v1/devices/register``), so ``GET /api/v1/devices/register`` is 405 (with
    ``Allow: POST``), not a device of that name, as the document has it."""
    return type("NameBut", (BaseConverter,), {"regex": rf"(?!(?:{'|'.join(map(re.escape, words))})(?![^/]))[^/]+"})


# A device id or a site code in a path (`<device:device_id>`, `<site:code>`): registered before the routes use them.
api.record_once(lambda state: state.app.url_map.converters.update(
    {name: _name_but(*words) for name, (_, words) in schemas.RESERVED_IN_PATH.items()}))


def time_or_none(value: datetime | None) -> str | None:
    return wire.format_time(value) if value else None


def caller_actor() -> str:
    """The audit log's name for the token calling. Which roles may call an endpoint at all is
    ``auth.allowed``'s to say, before the view runs: a bridge token gets no further than there."""
    return audit.token_actor(auth.current_user.name)


def admin_abort(exc: Exception) -> None:
    """Answer an admin action's refusal (devices.AdminError, or a field check) as a 4xx JSON error: the
    error's own ``status`` if it has one (409 for a site code taken), else 422."""
    if isinstance(exc, devices.AdminError):
        abort(exc.status, exc.message, detail=exc.detail)
    errors = getattr(exc, "errors", None)
    abort(getattr(exc, "status", 422), str(exc), detail={"fields": errors} if errors else None)
