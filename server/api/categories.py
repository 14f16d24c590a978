"""Categories: what a button reports, with priority, SLA targets and labels (``/api/v1/categories``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from server.api import schemas
from server.api.auth import auth
from server.api.blueprint import admin_abort, api, caller_actor
from server.context import ext
from server.domain import categories
from server.models import Category


# What a category's SLA targets must be beyond what the schema says.
SLA_RULE = "an SLA target's `resolve_min` is less than its `respond_min`"


def category_dict(c: Category) -> dict[str, Any]:
    return categories.as_dict(c)


@api.get("/categories")
@api.auth_required(auth)
@api.output(schemas.CategoryList)
def list_categories() -> dict[str, Any]:
    with ext().db.read() as s:
        return {"items": [category_dict(c) for c in s.scalars(select(Category).order_by(Category.slug))]}


@api.post("/categories")
@api.auth_required(auth)
@api.input(schemas.CategoryIn, arg_name="body")
@api.output(schemas.CategoryOut, status_code=201)
@api.doc(summary="Create a category, or replace one with the same slug",
         responses={200: "a category with that slug was replaced", 422: SLA_RULE})
def post_category(body: dict[str, Any]) -> tuple[dict[str, Any], int]:
    actor = caller_actor()
    values = {k: body[k] for k in ("name", "icon", "priority", "labels", "dedup_scope", "reopen_window_min",
                                   "notify") if k in body}
    with ext().db.write() as s:
        cat = s.scalar(select(Category).where(Category.slug == body["slug"]))
        status = 200 if cat else 201
        if cat is None:
            cat = Category(slug=body["slug"], sla=ext().default_sla, labels={}, dedup_scope="site", notify=[])
            s.add(cat)
        if body["sla"] is not None:
            values["sla"] = {**cat.sla, **body["sla"]}
        try:
            values = categories.clean(values)
        except categories.CategoryError as exc:
            admin_abort(exc)
        categories.update(s, cat, values, actor, "category.create" if status == 201 else "category.update")
        return category_dict(cat), status


@api.patch("/categories/<slug>")
@api.auth_required(auth)
@api.input(schemas.CategoryPatch, arg_name="body")
@api.output(schemas.CategoryOut)
@api.doc(summary="Change a category: name, icon, labels, priority, SLA, dedup scope, reopen window, who is told",
         description="Takes effect on the next press; `{}` changes nothing.", responses={422: SLA_RULE},
         tags=["Admin"])
def patch_category(slug: str, body: dict[str, Any]) -> dict[str, Any]:
    actor = caller_actor()
    with ext().db.write() as s:
        category = categories.get(s, slug)
        values = dict(body)
        if "sla" in values:
            values["sla"] = {**(category.sla or {}), **values["sla"]}
        try:
            categories.update(s, category, categories.clean(values), actor)
        except categories.CategoryError as exc:
            admin_abort(exc)
        return category_dict(category)
