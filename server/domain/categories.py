"""Categories as admins edit them: labels per language, SLA targets, dedup scope, reopen window, who is told.

:func:`clean` checks the typed values (the API's JSON, or what the admin pages made of a form)
and raises :class:`CategoryError` naming each wrong field. The press path reads a category's
``dedup_scope`` and ``reopen_window_min`` with the row it reads anyway (``server.domain.incidents``).
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.domain import audit
from server.domain.errors import NotFound
from server.domain.inputs import text_problem
from server.models import DEDUP_SCOPES, Category

LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")
# White space as Python's str.strip() and as JSON Schema's (ECMAScript's) \s see it, spelt out: the two differ.
SPACE = r"\t\n\v\f\r \x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
# Control characters, which no text takes (``server.domain.inputs.text_problem``).
CONTROLS = r"\x00-\x1f\x7f-\x9f"
# A user name (as ``dashdesk user create`` takes it) or an e-mail address.
RECIPIENT = re.compile(rf"^(?:[A-Za-z0-9][A-Za-z0-9_.-]{{0,99}}"
                       rf"|[^@{SPACE}{CONTROLS},;]{{1,64}}@[^@{SPACE}{CONTROLS},;]+\.[^@{SPACE}{CONTROLS},;]+)$")
MAX_RECIPIENTS = 50
MAX_MINUTES = 10**6
MAX_REOPEN_MIN = 60 * 24 * 365
FIELDS = ("name", "icon", "priority", "sla", "labels", "dedup_scope", "reopen_window_min", "notify")
PRIORITIES = ("1", "2", "3", "4")


class CategoryError(ValueError):
    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _sla(value: Any) -> dict[str, dict[str, int]]:
    if not isinstance(value, dict):
        raise ValueError('give targets per priority: {"1": {"respond_min": 15, "resolve_min": 240}, ...}')
    out: dict[str, dict[str, int]] = {}
    for p, targets in value.items():
        if str(p) not in PRIORITIES:
            raise ValueError(f"priority {str(p)[:10]!r} is not 1, 2, 3 or 4")
        if not isinstance(targets, dict) or any(k not in ("respond_min", "resolve_min") for k in targets):
            raise ValueError(f"priority {p}: give respond_min and resolve_min")
        clean_targets: dict[str, int] = {}
        for k, v in targets.items():
            if v is None:
                continue
            if not _int(v) or not 1 <= v <= MAX_MINUTES:
                raise ValueError(f"priority {p}: {k} must be whole minutes from 1 to {MAX_MINUTES}")
            clean_targets[k] = v
        if clean_targets.get("resolve_min", MAX_MINUTES) < clean_targets.get("respond_min", 0):
            raise ValueError(f"priority {p}: resolve within must not be shorter than respond within")
        out[str(p)] = clean_targets
    return out


def _labels(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ValueError('give labels per language: {"en": "Printer", "pl": "Drukarka"}')
    out: dict[str, str] = {}
    for lang, text in value.items():
        if not isinstance(lang, str) or not LANGUAGE.fullmatch(lang):
            raise ValueError(f"{str(lang)[:20]!r} is not a language code (en, pl, pt-BR)")
        if text is None or (isinstance(text, str) and not text.strip()):
            continue
        if not isinstance(text, str) or len(text.strip()) > 200:
            raise ValueError(f"{lang}: a label is text of at most 200 characters")
        out[lang] = _one_line(text.strip(), f"{lang}: the label")
    return out


def _notify(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("give a list of user names or e-mail addresses")
    out: list[str] = []
    for v in (v.strip() for v in value):
        if not v:
            continue
        _one_line(v, "a user name or e-mail address")
        if not RECIPIENT.fullmatch(v):
            raise ValueError(f"'{v[:100]}' is neither a user name nor an e-mail address")
        if v not in out:
            out.append(v)
    if len(out) > MAX_RECIPIENTS:
        raise ValueError(f"at most {MAX_RECIPIENTS} people")
    return out


def _one_line(text: str, what: str) -> str:
    """``text`` if it is one line of text that can be stored (``server.domain.inputs.text_problem``); else ValueError."""
    problem = text_problem(text)
    if problem:
        raise ValueError(f"{what} {problem}")
    return text


def clean(data: Mapping[str, Any]) -> dict[str, Any]:
    """The category fields given in ``data``, checked; raises :class:`CategoryError`."""
    errors: dict[str, str] = {}
    out: dict[str, Any] = {}
    for k in data:
        if k not in FIELDS:
            errors[str(k)[:30]] = f"unknown field; the fields are {', '.join(FIELDS)}"
    for k in FIELDS:
        if k not in data:
            continue
        v = data[k]
        try:
            if k == "name":
                if not isinstance(v, str) or not v.strip() or len(v.strip()) > 200:
                    raise ValueError("required, at most 200 characters")
                v = _one_line(v.strip(), "the name")
            elif k == "icon":
                if not isinstance(v, str) or len(v.strip()) > 32:
                    raise ValueError("at most 32 characters (an emoji is fine)")
                v = _one_line(v.strip(), "the icon")
            elif k == "priority":
                if not _int(v) or not 1 <= v <= 4:
                    raise ValueError("1 (most urgent) to 4")
            elif k == "sla":
                v = _sla(v)
            elif k == "labels":
                v = _labels(v)
            elif k == "dedup_scope":
                if v not in DEDUP_SCOPES:
                    raise ValueError("site (presses at one site merge) or device (each device its own ticket)")
            elif k == "reopen_window_min":
                if v is not None and (not _int(v) or not 0 <= v <= MAX_REOPEN_MIN):
                    raise ValueError(f"whole minutes from 0 (never reopen) to {MAX_REOPEN_MIN}, or empty for "
                                     "the server's default")
            elif k == "notify":
                v = _notify(v)
        except ValueError as exc:
            errors[k] = str(exc)
            continue
        out[k] = v
    if errors:
        raise CategoryError(errors)
    return out


def get(s: Session, slug: str) -> Category:
    """The category of that slug; :class:`NotFound` if there is none."""
    category = s.scalar(select(Category).where(Category.slug == slug))
    if category is None:
        raise NotFound("category", slug[:70])
    return category


def update(s: Session, category: Category, values: dict[str, Any], actor: str,
           action: str = "category.update") -> dict[str, list[Any]]:
    """Apply checked ``values``; return (and audit) what changed. Takes effect on the next press."""
    diff = {k: [getattr(category, k), v] for k, v in values.items() if getattr(category, k) != v}
    for k, (_, v) in diff.items():
        setattr(category, k, v)
    if diff:
        audit.record(s, actor, action, f"category:{category.slug}", changes=diff)
    return diff


def as_dict(c: Category) -> dict[str, Any]:
    return {"slug": c.slug, "name": c.name, "icon": c.icon, "priority": c.priority, "sla": c.sla,
            "labels": c.labels or {}, "dedup_scope": c.dedup_scope, "reopen_window_min": c.reopen_window_min,
            "notify": c.notify or []}
