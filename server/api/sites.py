"""Sites: the shops, with time zones and service hours, and a CSV import (``/api/v1/sites``)."""

from __future__ import annotations

from typing import Any

from apiflask import abort
from flask import request

from server.api import schemas
from server.api.auth import auth
from server.api.blueprint import admin_abort, api, caller_actor
from server.context import ext
from server.domain import sites
from server.models import Site


# What a site's fields must be beyond what the schema says.
SITE_RULES = ("the time zone is not one the server knows, or the hours do not read as days then hours, or a span "
              "closes before it opens or overlaps another")


@api.get("/sites")
@api.auth_required(auth)
@api.input(schemas.SiteQuery, location="query", arg_name="q", unknown=None)
@api.output(schemas.SitePage)
@api.doc(summary="List sites by code; `q` searches code, name and address", tags=["Admin"])
def list_sites(q: dict[str, Any]) -> dict[str, Any]:
    stmt = sites.search(q.get("q") or "")
    if "cursor" in q:
        stmt = stmt.where(Site.code > q["cursor"])
    limit = q["limit"]
    with ext().db.read() as s:
        rows = s.scalars(stmt.limit(limit + 1)).all()
        counts = sites.device_counts(s, rows[:limit])
        items = [sites.as_dict(r, counts.get(r.id, 0)) for r in rows[:limit]]
    return {"items": items, "next": rows[limit - 1].code if len(rows) > limit else None}


@api.post("/sites")
@api.auth_required(auth)
@api.input(schemas.SiteIn, arg_name="body")
@api.output(schemas.SiteOut, status_code=201)
@api.doc(summary="Create a site", responses={409: "a site with that code exists", 422: SITE_RULES},
         tags=["Admin"])
def post_site(body: dict[str, Any]) -> tuple[dict[str, Any], int]:
    actor = caller_actor()
    with ext().db.write() as s:
        try:
            site = sites.create(s, sites.clean(body), actor)
        except sites.SiteError as exc:
            admin_abort(exc)
        s.flush()
        return sites.as_dict(site, 0), 201


@api.get("/sites/<site:code>")
@api.auth_required(auth)
@api.output(schemas.SiteOut)
@api.doc(summary="One site", tags=["Admin"])
def get_site(code: str) -> dict[str, Any]:
    with ext().db.read() as s:
        site = sites.get(s, code)
        return sites.as_dict(site, sites.device_count(s, site))


@api.patch("/sites/<site:code>")
@api.auth_required(auth)
@api.input(schemas.SitePatch, arg_name="body")
@api.output(schemas.SiteOut)
@api.doc(summary="Change a site's fields (its code too, if the new one is free); `{}` changes nothing",
         responses={409: "the new code is another site's", 422: SITE_RULES}, tags=["Admin"])
def patch_site(code: str, body: dict[str, Any]) -> dict[str, Any]:
    actor = caller_actor()
    with ext().db.write() as s:
        site = sites.get(s, code)
        try:
            sites.update(s, site, sites.clean(body, partial=True), actor)
        except sites.SiteError as exc:
            admin_abort(exc)
        return sites.as_dict(site, sites.device_count(s, site))


@api.post("/sites/import")
@api.auth_required(auth)
@api.output(schemas.ImportOut)
@api.doc(summary="Create or update sites from a CSV file (the request body), all or nothing",
         description="The body is CSV text (UTF-8; `Content-Type: text/csv`). The first line names the columns: "
                     "`code` and `name` are required, `address`, `timezone`, `hours`, `contact` optional, in any "
                     "order. Sites are matched by `code`: new ones are created, others updated. One transaction: "
                     "any bad line rejects the whole file with `422` and "
                     "`detail.lines`: `[{\"line\": 7, \"message\": \"timezone: ...\"}, ...]`, and nothing changes.",
         responses={422: "some lines are wrong; nothing was imported"}, tags=["Admin"])
def import_sites() -> dict[str, Any]:
    actor = caller_actor()
    request.max_content_length = sites.IMPORT_MAX_BYTES
    body = request.get_data(cache=False)
    if request.mimetype not in ("text/csv", "text/plain", "application/csv", "application/octet-stream", ""):
        abort(415, "send the CSV file as the body, with Content-Type: text/csv")
    try:
        text = sites.decode(body)
        with ext().db.write() as s:
            result = sites.import_csv(s, text, actor)
    except sites.ImportRejected as exc:
        abort(422, str(exc), detail={"lines": exc.listed(), "problems": len(exc.errors)})
    return result.as_dict()
