"""The HTML error page of every page (desk and admin); the API and the phone app answer JSON (``server.errors``)."""

from __future__ import annotations

from flask import render_template, request
from flask_wtf.csrf import CSRFError
from markupsafe import escape


def _error_page(code: int, title: str, message: str) -> tuple[str, int]:
    return render_template("error.html", code=code, title=title, message=message), code


# The errors of a page, by status: its title and what to say when the error has no words of its own.
PAGE_ERRORS = {
    400: ("Bad request", "The request was not understood."),
    401: ("Signed out", "Sign in again to see this."),
    403: ("Not allowed", "You may not see this page."),
    404: ("Not found", "There is nothing here."),
    405: ("Not a page", "This address takes a page's forms, not a visit: go back and use the page's buttons."),
    413: ("Too large", "What was sent is larger than this page accepts. Go back and send a smaller file."),
    429: ("Too many attempts", "Too many failed sign-ins from here. Wait a minute, then try again."),
    500: ("Something went wrong", "The server could not finish this; it may not have been done. Go back, reload the "
                                  "page and check; if it happens again, tell your admin."),
    503: ("Unavailable", "The service is not available just now. Try again in a minute."),
}


# A form posted without its security token, or with an old one: what the agent can do about it.
FORM_EXPIRED = ("The form has expired",
                "The form was missing its security token or it has expired. Go back, reload the page and try again.")


# The statuses whose page always says its own words: a 401 comes with Werkzeug's, a 429 with the sign-in limit's
# rule ("3 per 1 minute").
_OWN_WORDS = {401, 429}


# Werkzeug's own descriptions, too technical for a page: the titles' texts above say it better.
_GENERIC = ("The method is not allowed", "The data value transmitted exceeds", "The server encountered an internal",
            "The server is temporarily unable")


def is_page_request() -> bool:
    """Whether the request is for a page (the desk's, the admin pages'): its errors get the HTML error page. The
    API (``/api/``), the phone app (``/app/``, which answers its own errors) and ``/healthz`` answer JSON."""
    path = request.path
    return not (path == "/api" or path.startswith(("/api/", "/app/")) or path in ("/app", "/healthz"))


def page_error(code: int, description: str | None, exc: BaseException | None = None) -> tuple[str, int]:
    """The HTML error page for an error of status ``code`` (the exception ``exc``, if there is one) on a page; one
    that fails to render (the error came from the database, say) is plain HTML instead."""
    if code == 413 and request.max_content_length:
        description = (f"What was sent is larger than this page accepts (at most "
                       f"{request.max_content_length / (1024 * 1024):g} MiB). Go back and send a smaller file.")
    if isinstance(exc, CSRFError):
        title, text = FORM_EXPIRED
    else:
        title, text = PAGE_ERRORS.get(code, ("Error", "The request could not be done."))
        if description and code not in _OWN_WORDS and not description.startswith(_GENERIC):
            text = description
    try:
        return _error_page(code, title, text)
    except Exception:  # noqa: BLE001 - the page itself failed: say it all the same
        return (f"<!doctype html><html lang=\"en\"><title>{escape(title)} · dashdesk</title><h1>{escape(title)}"
                f"</h1><p>{escape(text)}</p><p><a href=\"/\">Back to the queue</a></p></html>"), code
