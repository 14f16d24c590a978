"""/api/v1/docs is dashdesk's own page: Swagger UI vendored at a pinned version, served by the server itself, with
no inline script (tests/web/test_browser_pages.py opens it in Chromium with the internet out of reach)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from server.api.docs import SWAGGER_UI_VERSION
from server.pages.security import CSP

VENDOR = Path(__file__).resolve().parents[2] / "server" / "static" / "swagger_ui"


def test_the_vendored_files_are_the_ones_the_readme_records():
    readme = (VENDOR / "README.md").read_text()
    assert f"version **{SWAGGER_UI_VERSION}**" in readme and f"swagger-ui-dist@{SWAGGER_UI_VERSION}" in readme
    for name in ("swagger-ui-bundle.js", "swagger-ui.css"):
        recorded = re.search(rf"sha256\s+([0-9a-f]{{64}})\s+{re.escape(name)}\n", readme).group(1)
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == recorded, name
    assert "Apache License" in (VENDOR / "LICENSE").read_text()
    assert (VENDOR / "NOTICE").read_text().startswith("swagger-ui")


def test_the_docs_page_loads_only_this_servers_files_and_they_are_served(client):
    r = client.get("/api/v1/docs")
    assert r.status_code == 200 and r.mimetype == "text/html"
    assert r.headers["Content-Security-Policy"] == CSP
    page = r.text
    assert "cdn." not in page and "https://" not in page and "http://" not in page
    assert 'data-spec-url="/api/v1/openapi.json"' in page
    sources = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert {s.split("?")[0] for s in sources} >= {"/static/swagger_ui/swagger-ui-bundle.js",
                                                  "/static/swagger_ui/swagger-ui.css", "/static/api-docs.js"}
    types = {}
    for source in sources:
        if source.startswith("/static/"):
            served = client.get(source)
            assert served.status_code == 200, source
            types[source.split("?")[0].rsplit(".", 1)[1]] = served.mimetype
            served.close()
    assert types["js"] == "text/javascript" and types["css"] == "text/css"
    assert all(f"v={SWAGGER_UI_VERSION}" in s for s in sources if "swagger_ui" in s)
    # the document it shows, public as the page is
    spec = client.get("/api/v1/openapi.json", headers={"Authorization": ""})
    assert spec.status_code == 200 and spec.get_json()["info"]["title"] == "dashdesk"
