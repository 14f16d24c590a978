"""The phone app (``/app``): a page that is a button, its enrolment by a one-time link, and its small API
(``/app/api/...``), all in ``views``."""

from server.phone.views import phone


__all__ = ["phone"]
