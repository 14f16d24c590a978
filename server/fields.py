"""The API's input fields where marshmallow's own take more than a request may carry (``server.inputs``):

- :class:`JsonInteger`, :class:`JsonNumber`, :class:`JsonBoolean`: a JSON body's numbers and booleans as JSON
  writes them (never ``"5"``, ``0`` for false or ``2.6e-42`` for an integer, which marshmallow's would take).
- :class:`QueryInteger`: a number in a query string is ASCII digits only (``inputs.parse_int``); marshmallow's
  take ``"١٢"`` and ``"１２"`` (Python's ``int`` does).
- :class:`Plain`: text that can be stored and shown (``server.inputs.text_problem``): one line unless
  ``multiline``.
- :class:`Telemetry`: an object kept as given, but for lone surrogates, replaced by U+FFFD (the rule of
  ``dashdesk.wire.replace_lone_surrogates``, as for telemetry that comes over MQTT).
"""

from __future__ import annotations

from typing import Any

from apiflask import fields
from marshmallow import ValidationError, validate

from dashdesk import wire

from . import inputs


class JsonInteger(fields.Integer):
    """An integer in a JSON body: a JSON number with no fraction (``5``, ``5.0``); never a string, a boolean
    or a number that is not whole (``2.6e-42``), which marshmallow's own ``Integer`` would truncate."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.make_error("invalid")
        if isinstance(value, float):
            if not value.is_integer():
                raise self.make_error("invalid")
            value = int(value)
        return super()._deserialize(value, attr, data, **kwargs)


class JsonNumber(fields.Float):
    """A number in a JSON body: never a string (``"1.5"``) or a boolean."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class JsonBoolean(fields.Boolean):
    """A boolean in a JSON body: ``true`` or ``false``, never ``0``, ``1`` or ``"yes"``."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class QueryInteger(fields.Integer):
    """A whole number in a query string: ASCII digits only (``inputs.parse_int``: no sign, spaces, ``_`` or other
    scripts' digits, which Python's ``int()`` would take). Every query number of the API is 0 or more."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        # 19 digits: up to 2**63 - 1, the largest the API takes (an event feed's `after`).
        number = inputs.parse_int(value, max_digits=19) if isinstance(value, str) else None
        if number is None:
            raise self.make_error("invalid")
        return super()._deserialize(number, attr, data, **kwargs)


# A boolean in a query string: true or false, also spelt 1/0, yes/no, on/off, t/f, y/n (`with_tickets=1`).
QueryBoolean = fields.Boolean


class Plain(validate.Validator):
    def __init__(self, multiline: bool = False):
        self.multiline = multiline

    def __call__(self, value: Any) -> Any:
        problem = inputs.text_problem(value, multiline=self.multiline) if isinstance(value, str) else None
        if problem:
            raise ValidationError(problem[0].upper() + problem[1:] + ".")
        return value


class Telemetry(fields.Dict):
    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        return wire.replace_lone_surrogates(super()._deserialize(value, attr, data, **kwargs))
