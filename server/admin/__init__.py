"""The admin pages (``/admin``): sites, devices and their buttons, categories, the audit log.

Server-rendered like the desk (``server.desk``: same sign-in, layout and CSRF-protected
forms), for admins only: an agent gets 403, the signed-out the sign-in page. Each form
runs one write transaction with its audit row (``server.domain.audit``); the rules live in
``server.domain``, which the API uses too.
A change to a mapping or a category takes effect on the next press.
"""

from server.admin import accounts, audit, categories, config, devices, enrolments, home, sites  # noqa: F401
from server.admin.blueprint import admin
from server.admin.enrolments import admin_pages as enrolment_pages


__all__ = ["admin", "enrolment_pages"]
