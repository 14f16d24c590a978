"""What a look-up raises when there is nothing of that name: :class:`NotFound`, answered 404 by the server
(``server.app``: the JSON error body for the API, the error page for a page)."""

from __future__ import annotations


class NotFound(LookupError):
    """Nothing of that name: ``message`` is the API's words (``no device shop-1``), ``sentence`` a page's
    (``There is no device shop-1.``); ``shown``: the name as a page shows it (a ticket's ``INC-000042``)."""

    status = 404
    detail = None

    def __init__(self, thing: str, name: str, shown: str | None = None):
        self.thing, self.name = thing, name
        self.message = f"no {thing} {name}"
        self.sentence = f"There is no {thing} {shown if shown is not None else name}."
        super().__init__(self.message)
