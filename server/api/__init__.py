"""The JSON API (``/api/v1``): the APIBlueprint ``api`` (``blueprint``) with a module per resource, their schemas
(``schemas``, ``fields``), the bearer tokens (``auth``), the OpenAPI document (``openapi``) and its page
(``docs``). Enrolments keep their own blueprint (``enrolments_api``), as their endpoint names always had.

Every endpoint that changes something needs an admin token (a bridge token reaches only what the bridge calls,
``auth.BRIDGE_ENDPOINTS``) and writes its audit row in its own transaction; the rules are ``server.domain``'s, as
for the admin pages and the command line. Refusals are 4xx JSON errors with the reason (``blueprint.admin_abort``).
"""

# Each module adds its endpoints to the blueprint when it is imported: a new module goes here too
# (tests/unit/test_layout.py checks that none is left out).
from server.api import incidents, tickets, categories, devices, events, dead_letters  # noqa: F401, I001
from server.api import sites, device_actions, audit, config, users, tokens  # noqa: F401, I001
from server.api.blueprint import api
from server.api.docs import api_docs
from server.api.enrolments import api as enrolments_api

__all__ = ["api", "api_docs", "enrolments_api"]
