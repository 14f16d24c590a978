"""The published JSON Schema agrees with the bridge's own validation."""

import json
from importlib import resources

import jsonschema
import pytest

from dashdesk import wire

SCHEMA = json.loads(resources.files("dashdesk").joinpath("press.schema.json").read_text())
VALID = {"event_id": "e-1", "device_id": "shop-1", "button": "b1", "press": "long",
         "pressed_at": "2026-11-23T08:15:02.120Z", "seq": 3, "telemetry": {"battery_pct": 80}}


@pytest.mark.parametrize("change", [
    {}, {"press": "double"}, {"seq": 0}, {"telemetry": {}}, {"pressed_at": "2026-11-23T09:15:02+01:00"},
], ids=str)
def test_valid_presses_pass_both(change):
    body = {**VALID, **change}
    jsonschema.validate(body, SCHEMA)
    assert wire.parse_press("shop-1", json.dumps(body).encode()).event_id == "e-1"


@pytest.mark.parametrize("change", [
    {"event_id": 5}, {"event_id": ""}, {"event_id": "x" * 65}, {"device_id": "Shop-1"}, {"button": "-b"},
    {"button": "B1"}, {"press": "triple"}, {"seq": -1}, {"seq": "3"}, {"telemetry": []},
    {"pressed_at": "2026-11-23T08:15:02"},
], ids=str)
def test_invalid_presses_fail_both(change):
    body = {**VALID, **change}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(body, SCHEMA)
    with pytest.raises(wire.Rejected):
        wire.parse_press(body["device_id"] if isinstance(body["device_id"], str) else "shop-1",
                         json.dumps(body).encode())


@pytest.mark.parametrize("missing", ["event_id", "device_id", "button", "pressed_at"])
def test_required_fields_are_required_by_both(missing):
    body = {k: v for k, v in VALID.items() if k != missing}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(body, SCHEMA)
    with pytest.raises(wire.Rejected):
        wire.parse_press("shop-1", json.dumps(body).encode())
