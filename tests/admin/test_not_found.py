"""A look-up that finds nothing (``server.domain.errors.NotFound``) is 404 everywhere: the API says it in its
JSON error body, a page on the HTML error page, each in its own words."""

from __future__ import annotations

import pytest

from .conftest import api, post


@pytest.mark.parametrize("method, path, message", [
    ("GET", "/api/v1/devices/ghost-1", "no device ghost-1"),
    ("POST", "/api/v1/devices/ghost-1/credentials", "no device ghost-1"),
    ("DELETE", "/api/v1/devices/ghost-1/credentials", "no device ghost-1"),
    ("GET", "/api/v1/sites/nowhere", "no site nowhere"),
    ("PATCH", "/api/v1/categories/nope", "no category nope"),
    ("GET", "/api/v1/users/nobody", "no user nobody"),
    ("PATCH", "/api/v1/users/nobody", "no user nobody"),
    ("POST", "/api/v1/users/nobody/password", "no user nobody"),
    ("GET", "/api/v1/tickets/999", "no ticket 999"),
    ("DELETE", "/api/v1/tokens/999", "no token 999"),
])
def test_the_api_answers_what_it_did_not_find_as_a_404_json_error(app, method, path, message):
    r = api(app, method, path, json={} if method in ("PATCH", "POST") else None)
    assert r.status_code == 404, r.text
    assert r.get_json() == {"error": {"code": "not_found", "message": message}}


@pytest.mark.parametrize("method, path, sentence", [
    ("GET", "/admin/devices/ghost-1", "There is no device ghost-1."),
    ("POST", "/admin/devices/ghost-1/credentials", "There is no device ghost-1."),
    ("POST", "/admin/devices/ghost-1/test-mode", "There is no device ghost-1."),
    ("GET", "/admin/sites/nowhere", "There is no site nowhere."),
    ("GET", "/admin/categories/nope", "There is no category nope."),
    ("GET", "/admin/users/nobody", "There is no user nobody."),
    ("POST", "/admin/users/nobody/role", "There is no user nobody."),
    ("POST", "/admin/users/nobody/password", "There is no user nobody."),
    ("POST", "/admin/tokens/999/revoke", "There is no token 999."),
    ("GET", "/tickets/999", "There is no ticket INC-000999."),
])
def test_a_page_says_what_it_did_not_find_on_the_404_page(admin, method, path, sentence):
    r = admin.c.get(path) if method == "GET" else post(admin, path, role="agent", password="a-long-password-1")
    assert r.status_code == 404, r.text
    assert sentence in r.text and "Not found" in r.text
    assert r.headers["Content-Type"].startswith("text/html")


def test_an_action_on_an_unknown_device_is_refused_as_the_device_actions_are(admin):
    # Refused (devices.AdminError 404) and said on the page it was asked from: the device's, which is 404 itself.
    r = post(admin, "/admin/devices/ghost-1/reject")
    assert r.status_code == 303 and r.headers["Location"] == "/admin/devices/ghost-1"
    page = admin.c.get(r.headers["Location"])
    assert page.status_code == 404 and "No device ghost-1" in page.text and "There is no device ghost-1." in page.text
