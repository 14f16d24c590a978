"""The whole pipe with MQTT 3.1.1 on every client, the bridge included."""

import uuid

from tests.stack import Presser, Stack


def test_bridge_on_mqtt_311_keeps_its_session_and_answers(tmp_path):
    stack = Stack(tmp_path / "stack", env={"DASHDESK_MQTT__PROTOCOL": "4"}).start()
    p = Presser(stack.broker.url, protocol=4)
    try:
        device = f"v311-{uuid.uuid4().hex[:6]}"
        assert p.final_ack(p.press(device, "b1"))["result"] == "created"
        # clean_session=False: presses published while the bridge is away wait for it.
        stack.bridge.stop()
        waiting = [p.press(device, "b1") for _ in range(3)]
        stack.start_bridge()
        assert [p.final_ack(e)["result"] for e in waiting] == ["merged"] * 3
        assert stack.tickets(device_id=device)[0]["occurrences"] == 4
    finally:
        p.close()
        stack.stop()
