"""``/api/v1/docs``: the API's OpenAPI document (``/api/v1/openapi.json``) in Swagger UI, served by dashdesk.

Swagger UI is vendored at a pinned version (``static/swagger_ui/``, see its README.md), so that the page
works on a network with no way out and under the pages' Content-Security-Policy (``server.pages.security``): no
inline script (``static/api-docs.js`` starts it), no file from elsewhere. Public, as the document is.
"""

from __future__ import annotations

from flask import Blueprint, render_template, url_for


# swagger-ui-dist from npm; change it with the files (static/swagger_ui/README.md says how).
SWAGGER_UI_VERSION = "5.36.0"

api_docs = Blueprint("api_docs", __name__)
api_docs.enable_openapi = False  # type: ignore[attr-defined]  # APIFlask: this page is not part of the API


def vendored(filename: str) -> str:
    """A vendored Swagger UI file's URL; the version in it makes browsers fetch a new one after an update."""
    return url_for("static", filename=f"swagger_ui/{filename}", v=SWAGGER_UI_VERSION)


@api_docs.get("/api/v1/docs")
def docs() -> tuple[str, int, dict[str, str]]:
    return (render_template("api_docs.html", vendored=vendored, spec_url=url_for("openapi.spec")), 200,
            {"Cache-Control": "no-cache"})

