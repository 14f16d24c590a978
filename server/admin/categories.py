"""Categories (``/admin/categories``): what a button reports, its priority, SLA targets and labels."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from sqlalchemy import func, select

from dashdesk import wire

from server.admin.blueprint import LANGUAGES, admin, me, refused, split_ids
from server.context import ext
from server.domain import audit, categories, inputs
from server.models import DEDUP_SCOPES, ButtonMapping, Category


@admin.get("/categories")
def category_list(form: dict[str, Any] | None = None, error: str | None = None, status: int = 200) -> Any:
    with ext().db.read() as s:
        rows = s.scalars(select(Category).order_by(Category.name)).all()
    return render_template("admin/categories.html", rows=rows, form=form or {}, error=error,
                           default_reopen_min=int(ext().settings.reopen_window_s // 60)), status


@admin.post("/categories")
def category_create() -> Any:
    form = {"slug": request.form.get("slug", "").strip(), "name": request.form.get("name", "").strip()}
    if not wire.valid_id(form["slug"]):
        return category_list(form, f"The slug must match {wire.ID_PATTERN.pattern} (e.g. card-reader).", 422)
    try:
        with ext().db.write() as s:
            if s.scalar(select(Category.id).where(Category.slug == form["slug"])) is not None:
                return category_list(form, f"There is already a category {form['slug']}.", 409)
            values = categories.clean({"name": form["name"]})
            row = Category(slug=form["slug"], name=values["name"], icon="", priority=3, sla=ext().default_sla,
                           labels={}, dedup_scope="site", notify=[])
            s.add(row)
            audit.record(s, me(), "category.create", f"category:{row.slug}", name=row.name)
    except categories.CategoryError as exc:
        return category_list(form, refused(exc), 422)
    flash(f"Category {form['slug']} created: set its labels and targets below.", "ok")
    return redirect(url_for("admin.category", slug=form["slug"]), 303)


def category_form(c: Category) -> dict[str, Any]:
    form: dict[str, Any] = {"name": c.name, "icon": c.icon, "priority": str(c.priority),
                            "dedup_scope": c.dedup_scope,
                            "reopen_window_min": "" if c.reopen_window_min is None else str(c.reopen_window_min),
                            "notify": "\n".join(c.notify or [])}
    labels = dict(c.labels or {})
    for lang in LANGUAGES:
        form[f"label_{lang}"] = labels.pop(lang, "")
    form["labels_more"] = "\n".join(f"{k}: {v}" for k, v in labels.items())
    for p in categories.PRIORITIES:
        targets = (c.sla or {}).get(p) or {}
        for k in ("respond_min", "resolve_min"):
            form[f"sla_{p}_{k}"] = "" if targets.get(k) is None else str(targets[k])
    return form


def _values_of(form: dict[str, Any]) -> dict[str, Any]:
    """The typed values of a category's form; raises CategoryError for what is not even a number."""
    errors: dict[str, str] = {}

    def number(key: str, field: str) -> int | None:
        text = str(form.get(key, "")).strip()
        if not text:
            return None
        minutes = inputs.parse_int(text, max_digits=9)
        if minutes is None:
            errors[field] = f"'{text[:20]}' is not a whole number of minutes"
        return minutes

    labels = {lang: form.get(f"label_{lang}", "") for lang in LANGUAGES}
    for line in str(form.get("labels_more", "")).splitlines():
        if line.strip():
            lang, sep, text = line.partition(":")
            if not sep:
                errors["labels"] = f"'{line.strip()[:40]}': write one language per line as code: label (de: Drucker)"
                continue
            labels[lang.strip()] = text.strip()
    sla: dict[str, dict[str, int]] = {}
    for p in categories.PRIORITIES:
        targets = {k: v for k in ("respond_min", "resolve_min")
                   if (v := number(f"sla_{p}_{k}", "sla")) is not None}
        sla[p] = targets
    values = {"name": form.get("name", ""), "icon": form.get("icon", ""),
              "priority": inputs.parse_int(str(form.get("priority", "")), low=1, high=4) or 0,
              "sla": sla, "labels": labels, "dedup_scope": form.get("dedup_scope", ""),
              "reopen_window_min": number("reopen_window_min", "reopen_window_min"),
              "notify": split_ids(str(form.get("notify", "")))}
    try:
        clean = categories.clean(values)
    except categories.CategoryError as exc:
        errors = {**exc.errors, **errors}
        raise categories.CategoryError(errors) from None
    if errors:
        raise categories.CategoryError(errors)
    return clean


@admin.get("/categories/<slug>")
def category(slug: str, form: dict[str, Any] | None = None, errors: dict[str, str] | None = None,
             status: int = 200) -> Any:
    with ext().db.read() as s:
        row = categories.get(s, slug)
        mapped = s.scalar(select(func.count()).select_from(ButtonMapping).where(ButtonMapping.category_id == row.id))
        history = s.scalars(audit.query(audit.AuditFilter(target=f"category:{row.slug}")).limit(20)).all()
    return render_template("admin/category.html", c=row, form=form or category_form(row), errors=errors or {},
                           mapped=mapped, history=history, languages=LANGUAGES, priorities=categories.PRIORITIES,
                           scopes=DEDUP_SCOPES, default_reopen_min=int(ext().settings.reopen_window_s // 60)), status


@admin.post("/categories/<slug>")
def category_update(slug: str) -> Any:
    form = request.form.to_dict()
    try:
        with ext().db.write() as s:
            row = categories.get(s, slug)
            changed = categories.update(s, row, _values_of(form), me())
    except categories.CategoryError as exc:
        return category(slug, form=form, errors=exc.errors, status=422)
    flash(f"Category {slug} saved; the next press uses it." if changed else "Nothing changed.", "ok")
    return redirect(url_for("admin.category", slug=slug), 303)
