"""Every HTML page carries a Content-Security-Policy (and has nothing inline that it would block), ``nosniff`` and a
referrer policy; the session cookie is ``Secure`` over https, behind a trusted proxy, or when configured."""

from __future__ import annotations

import re

import pytest

from server.app import create_app
from server.phone.views import CSP as PHONE_CSP
from server.pages.security import CSP, secure_cookies_setting

from .conftest import ADMIN_PASSWORD, AGENT_PASSWORD, TOKEN, Desk, api, csrf_of, press

COOKIE = "dashdesk_session"
# What a CSP without 'unsafe-inline' blocks: a script in the page (a JSON data block is no script), an event
# handler attribute, a style attribute or element, a javascript: URL.
INLINE = [re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>", re.I),
          re.compile(r"<[^>]+\son[a-z]+\s*=", re.I), re.compile(r"<[^>]+\sstyle\s*=", re.I),
          re.compile(r"<style\b", re.I), re.compile(r"javascript:", re.I)]


def inline_parts(html: str) -> list[str]:
    return [m.group(0)[:80] for pattern in INLINE for m in pattern.finditer(html)]


def check_page(r, path: str, csp: str = CSP) -> None:
    assert r.mimetype == "text/html", path
    assert r.headers.get("Content-Security-Policy") == csp, path
    assert r.headers.get("X-Content-Type-Options") == "nosniff", path
    assert r.headers.get("Referrer-Policy") in ("same-origin", "no-referrer"), path
    assert inline_parts(r.get_data(as_text=True)) == [], path


def test_the_policy_is_strict():
    rules = dict(part.strip().split(" ", 1) for part in CSP.split(";"))
    assert rules["default-src"] == "'self'" and rules["script-src"] == "'self'" and rules["style-src"] == "'self'"
    assert rules["object-src"] == "'none'" and rules["base-uri"] == "'none'"
    assert rules["frame-ancestors"] == "'none'" and rules["form-action"] == "'self'"
    assert "unsafe" not in CSP and "unsafe" not in PHONE_CSP and "object-src 'none'" in PHONE_CSP


def test_every_page_of_every_kind_has_the_policy_and_nothing_inline_it_would_block(app, admin):
    ticket_id = press(app, "shop-1")["ticket"]["id"]
    assert api(app, "POST", "/api/v1/sites", json={"code": "hs-01", "name": "High Street"}).status_code == 201
    values = {"ticket_id": ticket_id, "device_id": "shop-1", "slug": "printer", "username": "ann"}
    checked = set()
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods or rule.endpoint.startswith(("api.", "openapi.", "enrolments_api.")) \
                or rule.endpoint in ("static", "phone.static", "web.event_stream"):
            continue
        args = {name: values.get(name, "hs-01" if rule.endpoint == "admin.site" else "unknown-code")
                for name in rule.arguments}
        path = rule.rule
        for name, value in args.items():
            path = re.sub(rf"<(?:[a-z]+:)?{name}>", str(value), path)
        r = admin.c.get(path, headers={"Authorization": f"Bearer {TOKEN}"} if path.startswith("/app/api") else {})
        assert r.status_code < 500, path
        assert r.headers.get("X-Content-Type-Options") == "nosniff", path
        if r.mimetype == "text/html" and r.status_code not in (301, 302, 303, 308):
            check_page(r, path, PHONE_CSP if path.startswith("/app") else CSP)
            checked.add(rule.endpoint)
    # the pages of each kind were there to check: the desk, sign-in, admin, phone enrolments, phone app, API docs
    assert {"web.queue", "web.ticket", "admin.index", "admin.device", "admin.user", "admin.site",
            "admin.category", "enrolments.enrolment_list", "phone.app_page", "phone.enroll_page",
            "api_docs.docs"} <= checked, checked
    check_page(app.test_client().get("/login"), "/login")


@pytest.mark.parametrize("path, status", [("/nowhere", 404), ("/tickets/99999", 404), ("/tickets/1/take", 405),
                                          ("/admin", 403)])
def test_error_pages_have_the_policy(app, ann, path, status):
    r = ann.c.get(path)
    assert r.status_code == status
    check_page(r, path)


def test_the_form_expired_page_and_a_server_failure_have_the_policy(app, ann, monkeypatch):
    r = ann.c.post("/logout")  # no CSRF token
    assert r.status_code == 400
    check_page(r, "/logout")
    from server.desk import queue as web

    def broken(*_a, **_k):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(web, "queue_rows", broken)
    r = ann.c.get("/")
    assert r.status_code == 500 and "Something went wrong" in r.text
    check_page(r, "/ (500)")


def test_the_api_answers_json_with_nosniff_and_no_page_policy(app):
    r = api(app, "GET", "/api/v1/tickets")
    assert r.is_json and r.headers["X-Content-Type-Options"] == "nosniff"
    assert "Content-Security-Policy" not in r.headers


# ------------------------------------------------------------------ Secure cookies


def make_app(tmp_path, monkeypatch, **server):
    monkeypatch.setenv("DASHDESK_ADMIN_PASSWORD", ADMIN_PASSWORD)
    return create_app({"data_dir": str(tmp_path), "server": server})


def session_cookie(response) -> str:
    return next(h for h in response.headers.getlist("Set-Cookie") if h.startswith(COOKIE + "="))


def sign_in_over(app, base_url: str, headers: dict[str, str] | None = None,
                 page_url: str | None = None) -> tuple[str, Desk]:
    d = Desk(app)
    page = d.c.get("/login", base_url=base_url, headers=headers)
    # Over https, Flask-WTF also wants the page's own address as the Referer, as browsers send it.
    r = d.c.post("/login", base_url=base_url, headers={**(headers or {}), "Referer": page_url or f"{base_url}/login"},
                 data={"csrf_token": csrf_of(page.text), "username": "admin", "password": ADMIN_PASSWORD})
    assert r.status_code == 302, r.text[:200]
    return session_cookie(r), d


def is_secure(cookie: str) -> bool:
    return "; Secure" in cookie


def test_the_session_cookie_is_secure_over_https_and_not_over_http_by_default(tmp_path, monkeypatch):
    app = make_app(tmp_path, monkeypatch)
    try:
        assert not is_secure(sign_in_over(app, "http://desk.shop.example")[0])
        cookie, d = sign_in_over(app, "https://desk.shop.example")
        assert is_secure(cookie) and "HttpOnly" in cookie and "SameSite=Lax" in cookie
        r = d.c.post("/logout", base_url="https://desk.shop.example", headers={"Referer": "https://desk.shop.example/"},
                     data={"csrf_token": csrf_of(d.c.get("/", base_url="https://desk.shop.example").text)})
        assert is_secure(session_cookie(r))  # the cookie's deletion too
    finally:
        app.extensions["dashdesk"].db.close()


def test_behind_a_proxy_the_forwarded_scheme_counts_only_when_proxy_fix_trusts_it(tmp_path, monkeypatch):
    # What a TLS proxy at https://desk.shop.example adds to each request it passes on to dashdesk over http.
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7",
                 "X-Forwarded-Host": "desk.shop.example"}
    page_url = "https://desk.shop.example/login"
    app = make_app(tmp_path / "a", monkeypatch)
    try:
        assert not is_secure(sign_in_over(app, "http://127.0.0.1:8080", forwarded)[0])  # anyone can send them
    finally:
        app.extensions["dashdesk"].db.close()
    app = make_app(tmp_path / "b", monkeypatch, proxy_fix=1)
    try:
        assert is_secure(sign_in_over(app, "http://127.0.0.1:8080", forwarded, page_url)[0])
        assert not is_secure(sign_in_over(app, "http://127.0.0.1:8080")[0])
    finally:
        app.extensions["dashdesk"].db.close()


@pytest.mark.parametrize("setting, over_http, over_https", [(True, True, True), ("true", True, True),
                                                            (False, False, False), ("false", False, False),
                                                            ("auto", False, True)])
def test_secure_cookies_can_be_forced_on_or_off(tmp_path, monkeypatch, setting, over_http, over_https):
    app = make_app(tmp_path, monkeypatch, secure_cookies=setting)
    try:
        assert is_secure(sign_in_over(app, "http://desk.shop.example")[0]) is over_http
        assert is_secure(sign_in_over(app, "https://desk.shop.example")[0]) is over_https
    finally:
        app.extensions["dashdesk"].db.close()


def test_the_settings_are_read_from_the_environment_and_a_wrong_one_is_refused(tmp_path):
    from dashdesk import config

    cfg = config.load(env={"DASHDESK_CONFIG": str(tmp_path / "none.toml"), "DASHDESK_SERVER__SECURE_COOKIES": "true",
                           "DASHDESK_SERVER__PROXY_FIX": "1"})
    assert secure_cookies_setting(cfg["server"]["secure_cookies"]) == "true" and cfg["server"]["proxy_fix"] == 1
    assert secure_cookies_setting(config.load(env={"DASHDESK_CONFIG": str(tmp_path / "none.toml")})
                                  ["server"]["secure_cookies"]) == "auto"
    with pytest.raises(ValueError, match="secure_cookies must be auto, true or false"):
        create_app({"data_dir": str(tmp_path), "server": {"secure_cookies": "sometimes"}})
    with pytest.raises(ValueError, match="proxy_fix"):
        create_app({"data_dir": str(tmp_path), "server": {"proxy_fix": "all"}})


def test_an_agent_signs_in_over_https_too(app):
    """The usual fixtures' app, reached over https: sign-in, a page, a form."""
    d = Desk(app)
    base = "https://desk.shop.example"
    page = d.c.get("/login", base_url=base)
    r = d.c.post("/login", base_url=base, headers={"Referer": base + "/login"}, data={"csrf_token": csrf_of(page.text), "username": "ann",
                                                "password": AGENT_PASSWORD})
    assert r.status_code == 302 and is_secure(session_cookie(r))
    assert d.c.get("/", base_url=base).status_code == 200


def test_behind_a_trusted_proxy_the_sign_in_limits_count_each_client_not_the_proxy(tmp_path, monkeypatch):
    def failures(app, client_address: str) -> list[int]:
        d = Desk(app)
        headers = {"X-Forwarded-For": client_address}
        page = d.c.get("/login", headers=headers)
        return [d.c.post("/login", headers=headers, data={"csrf_token": csrf_of(page.text), "username": "admin",
                                                           "password": "wrong-password"}).status_code
                for _ in range(3)]

    app = make_app(tmp_path / "a", monkeypatch, proxy_fix=1, login_limit_per_address="2 per minute")
    try:
        assert failures(app, "203.0.113.7") == [401, 401, 429]
        assert failures(app, "203.0.113.8") == [401, 401, 429]  # another client behind the same proxy
    finally:
        app.extensions["dashdesk"].db.close()
    app = make_app(tmp_path / "b", monkeypatch, login_limit_per_address="2 per minute")
    try:
        assert failures(app, "203.0.113.7") == [401, 401, 429]
        assert failures(app, "203.0.113.8") == [429, 429, 429]  # not trusted: all from the proxy's address
    finally:
        app.extensions["dashdesk"].db.close()
