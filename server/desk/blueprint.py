"""The desk's blueprint ``web``: every page but the sign-in needs a signed-in user."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request
from flask_login import current_user

from server.pages.session import login_manager, no_store


web = Blueprint("web", __name__)
web.enable_openapi = False  # type: ignore[attr-defined]  # APIFlask: pages are not part of the API document


PUBLIC_ENDPOINTS = {"web.login", "web.favicon"}


@web.before_request
def _require_login() -> Any:
    if request.endpoint not in PUBLIC_ENDPOINTS and not current_user.is_authenticated:
        return login_manager.unauthorized()
    return None


web.after_request(no_store)
