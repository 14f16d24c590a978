"""What every response of the server says about itself to browsers: a Content-Security-Policy on every HTML
page, ``nosniff``, a referrer policy; and the session cookie's ``Secure`` flag.

- **CSP.** The pages load scripts, styles and images only from this server, run no inline script (there is
  none: ``static/desk.js``, ``static/api-docs.js`` and the phone app's files), accept no inline style
  attribute, cannot be framed, post forms only to this server. The phone app (``/app``) sets its own, which
  also lets it open the broker's WebSockets (``server.phone.views.CSP``).
- **Secure cookies.** ``[server] secure_cookies``: ``"auto"`` (the default) marks the session cookie
  ``Secure`` when the request came over https; ``true`` always (a server only reached through https);
  ``false`` never. Behind a proxy that ends TLS, the request reaches dashdesk over http: set
  ``[server] proxy_fix`` to the number of proxies in front of it, so that their ``X-Forwarded-For``,
  ``-Proto``, ``-Host`` and ``-Port`` headers are trusted (werkzeug's ``ProxyFix``; 0, the default, trusts
  none, as anyone can send them). The client address the sign-in limits count is then the forwarded one.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, has_request_context, request
from flask.sessions import SecureCookieSessionInterface
from werkzeug.middleware.proxy_fix import ProxyFix

from server.domain import inputs


# Every HTML page but the phone app's. img-src data:: the API docs' stylesheet draws its icons with data: URLs.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "font-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
SECURE_COOKIES = ("auto", "true", "false")


def secure_cookies_setting(value: Any) -> str:
    """``[server] secure_cookies`` as one of ``auto``, ``true``, ``false`` (TOML's booleans, and the strings an
    environment variable gives, are taken); ValueError otherwise."""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str("auto" if value is None else value).strip().lower()
    text = {"1": "true", "yes": "true", "on": "true", "0": "false", "no": "false", "off": "false", "": "auto"}.get(
        text, text)
    if text not in SECURE_COOKIES:
        raise ValueError(f"[server] secure_cookies must be auto, true or false, not {str(value)[:40]!r}")
    return text


def proxy_count(value: Any) -> int:
    """``[server] proxy_fix``: how many proxies in front of the server to trust (0: none)."""
    if isinstance(value, bool):
        return int(value)
    count = inputs.parse_int(str(value if value is not None else 0).strip() or "0", high=10)
    if count is None:
        raise ValueError(f"[server] proxy_fix must be a number of proxies, 0 (none) to 10, not {str(value)[:40]!r}")
    return count


class SessionCookies(SecureCookieSessionInterface):
    """Flask's signed cookie, ``Secure`` as ``[server] secure_cookies`` says: ``auto`` follows the request."""

    def __init__(self, setting: str) -> None:
        self.setting = setting

    def get_cookie_secure(self, app: Flask) -> bool:
        if self.setting == "auto":
            return has_request_context() and request.is_secure
        return self.setting == "true"


def _headers(response: Response) -> Response:
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    if response.mimetype == "text/html":
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
    return response


def init_security(app: Flask, server_cfg: dict[str, Any]) -> None:
    """The headers above on every response, the session cookie's ``Secure`` flag, and trusted proxies."""
    app.session_interface = SessionCookies(secure_cookies_setting(server_cfg.get("secure_cookies", "auto")))
    proxies = proxy_count(server_cfg.get("proxy_fix", 0))
    if proxies:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies,  # type: ignore[method-assign]
                                x_host=proxies, x_port=proxies)
    app.after_request(_headers)
