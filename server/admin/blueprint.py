"""The admin pages' blueprint ``admin``: for admins only, with the helpers every admin page uses."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, redirect, request
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.domain import devices, inputs, sites
from server.models import Site
from server.pages.formatting import details_text
from server.pages.session import admins_only, no_store


admin = Blueprint("admin", __name__, url_prefix="/admin")
admin.enable_openapi = False  # type: ignore[attr-defined]  # APIFlask: pages are not part of the API document
admin.before_request(admins_only)
admin.after_request(no_store)


PAGE_SIZE = 50


PENDING_SHOWN = 50


STATUS_LABELS = {"pending": "Pending", "active": "Active", "retired": "Retired", "rejected": "Rejected"}


PRESS_LABELS = devices.PRESS_LABELS


LANGUAGES = {"en": "English", "pl": "Polish"}


@admin.url_value_preprocessor
def _bigger_uploads(endpoint: str | None, values: Any) -> None:
    # Runs before CSRFProtect reads the form: a chain's CSV file may be larger than the app's limit.
    if endpoint == "admin.site_import":
        request.max_content_length = sites.IMPORT_MAX_BYTES




@admin.context_processor
def _helpers() -> dict[str, Any]:
    return {"details_text": details_text, "labels": STATUS_LABELS, "query": query}


def me() -> str:
    return current_user.username


@dataclass
class Pages:
    page: int
    total: int
    size: int = PAGE_SIZE

    @property
    def last(self) -> int:
        return max(0, (self.total - 1) // self.size)

    @property
    def more(self) -> bool:
        return self.page < self.last


def page_arg() -> int:
    return inputs.page_number(request.args.get("page", "0"))


def query(**values: Any) -> str:
    return urlencode({k: v for k, v in values.items() if v not in ("", None, 0)})


def refused(exc: Exception) -> str:
    """A refusal as a sentence for the page: its first letter a capital, unless the sentence starts with a
    name the request gave (a user name, a device id: ``jkowalski is the last active admin``), kept as it is."""
    message = getattr(exc, "message", None) or str(exc)
    if not message:
        return "Refused."
    first = message.split(" ", 1)[0].rstrip(".,;:")
    names = {str(v) for v in (request.view_args or {}).values()} | {v.strip() for v in request.form.values()}
    return message if first in names else message[0].upper() + message[1:]


def back(default: str) -> Any:
    target = request.form.get("next") or ""
    if not target.startswith("/admin") or target.startswith("//") or "\\" in target:
        target = default
    return redirect(target, 303)


def site_choices(s: Session, limit: int = 5000) -> list[tuple[str, str]]:
    return [tuple(r) for r in s.execute(select(Site.code, Site.name).order_by(Site.code).limit(limit)).all()]


def split_ids(text: str) -> list[str]:
    return [t for t in re.split(r"[\s,;]+", text or "") if t]
