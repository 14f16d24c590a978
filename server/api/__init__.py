"""The JSON API (``/api/v1``): one APIBlueprint ``api`` whose endpoints sit in a module per resource, with their
schemas (``schemas``, ``fields``), the bearer tokens (``auth``), the OpenAPI document (``openapi``) and its page
(``docs``). Enrolments keep their own blueprint (``enrolments_api``), as their endpoint names always had."""

from server.api import accounts, admin_core, core  # noqa: F401  (each adds its endpoints to the blueprint)
from server.api.core import api
from server.api.docs import api_docs
from server.api.enrolments import api as enrolments_api


__all__ = ["api", "api_docs", "enrolments_api"]
