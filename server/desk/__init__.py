"""The service desk's web pages: sign-in, the queue, a ticket, live updates.

Server-rendered (Jinja); the only script is ``static/desk.js`` (keyboard,
live updates). Signed-in users are ``agent`` or ``admin`` (``server.domain.users``);
each sign-in is a row of ``web_sessions`` (``server.domain.web_sessions``) whose key
Flask's signed cookie carries (Flask-Login), every form carries a CSRF token
(Flask-WTF), and the bearer-token API (``/api/v1``) is exempt.

Paths (a public contract): ``/login``, ``/`` (the queue), ``/tickets/<id>``.
"""

from server.desk import account, queue, stream, ticket  # noqa: F401  (each adds its pages to the blueprint)
from server.desk.blueprint import web


__all__ = ["web"]
