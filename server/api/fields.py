"""The API's input fields where marshmallow's own take more than a request may carry (``server.domain.inputs``):

- :class:`JsonInteger`, :class:`JsonNumber`, :class:`JsonBoolean`: a JSON body's numbers and booleans as JSON
  writes them (never ``"5"``, ``0`` for false or ``2.6e-42`` for an integer, which marshmallow's would take).
- :class:`QueryInteger`: a number in a query string is ASCII digits only (``inputs.parse_int``); marshmallow's
  take ``"١٢"`` and ``"１２"`` (Python's ``int`` does).
- :class:`Plain`: text that can be stored and shown (``server.domain.inputs.text_problem``): one line unless
  ``multiline``.
- :class:`Telemetry`: an object kept as given, but for lone surrogates, replaced by U+FFFD (the rule of
  ``dashdesk.wire.replace_lone_surrogates``, as for telemetry that comes over MQTT).
"""

from __future__ import annotations

from typing import Any

from apiflask import fields
from marshmallow import ValidationError, validate

from dashdesk import wire

from server.domain import inputs


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


# Characters no text field takes (``inputs.text_problem``), as a JSON Schema character class: C0 controls, DEL,
# C1 controls, line and paragraph separators; text of several lines takes tab, line feed and carriage return.
_NOT_IN_A_LINE = r"\x00-\x1f\x7f-\x9f\u2028\u2029"
_NOT_IN_TEXT = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029"
# White space, as "blank" means it (``server.domain.categories.SPACE``, Python's str.isspace()).
_SPACE = r"\t\n\v\f\r \x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"


class Plain(validate.Regexp):
    """Text that can be stored and shown (``server.domain.inputs.text_problem``): one line unless ``multiline``; with
    ``blank=False`` not blank either (``empty_ok``: but for ""). The rule goes into the OpenAPI document as the
    field's ``pattern``, so that API users (and schemathesis) know it; lone surrogates, which no JSON Schema
    pattern can name, and more than 30 combining marks in a row are refused too, as its description says."""

    def __init__(self, multiline: bool = False, *, blank: bool = True, empty_ok: bool = False):
        self.multiline, self.blank = multiline, blank
        bad = _NOT_IN_TEXT if multiline else _NOT_IN_A_LINE
        pattern = f"^[^{bad}]*$" if blank else f"^[^{bad}]*[^{bad}{_SPACE}][^{bad}]*$"
        if empty_ok and not blank:
            pattern = f"^$|{pattern}"
        super().__init__(pattern)

    def __call__(self, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        problem = inputs.text_problem(value, multiline=self.multiline)
        if problem:
            raise ValidationError(problem[0].upper() + problem[1:] + ".")
        if self.regex.search(value) is None:  # only blank text is left to fail it
            raise ValidationError("must not be blank")
        return value


class Telemetry(fields.Dict):
    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        return wire.replace_lone_surrogates(super()._deserialize(value, attr, data, **kwargs))
