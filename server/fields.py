"""The API's input fields where marshmallow's own take more than a request may carry (``server.inputs``):

- :class:`Integer` and :class:`Float`: a number given as text (a query parameter, or ``"2"`` in a body) is ASCII
  digits only; marshmallow's take ``"١٢"`` and ``"１２"`` (Python's ``int`` and ``float`` do).
- :class:`Regexp`: the pattern must match the whole value; marshmallow's uses ``re.match``, and ``$`` also
  matches before a final line break, so ``"b1\\n"`` passed ``^[a-z0-9][a-z0-9_-]{0,62}$``.
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

class Integer(fields.Integer):
    def _validated(self, value: Any) -> int:
        if isinstance(value, str) and inputs.parse_int(value) is None:
            raise self.make_error("invalid", input=value)
        return super()._validated(value)


class Float(fields.Float):
    def _validated(self, value: Any) -> float:
        if isinstance(value, str) and inputs.parse_decimal(value, high=float("inf")) is None:
            raise self.make_error("invalid", input=value)
        return super()._validated(value)


class Regexp(validate.Regexp):
    def __call__(self, value: Any) -> Any:
        if not isinstance(value, str) or self.regex.fullmatch(value) is None:
            raise ValidationError(self._format_error(value))
        return value


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
