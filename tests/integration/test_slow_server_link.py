"""A slow or stalling link between the bridge and the server (a real TCP hop, ``SlowLink``): a press is never
`rejected` for the link's fault."""

import time
import uuid

import pytest

from tests.stack import Presser, SlowLink, Stack, counted

# The server's deadline for a request's body (the HTTP layer answers 408 after it).
BODY_TIMEOUT_S = 1.0


@pytest.fixture
def linked(tmp_path):
    """A stack whose bridge (one worker) reaches the server through a SlowLink."""
    stack = Stack(tmp_path / "stack", bridge_workers=1,
                  env={"DASHDESK_SERVER__BODY_TIMEOUT_S": str(BODY_TIMEOUT_S)})
    link = SlowLink(stack.http_port)
    stack.env = {**stack.env, "DASHDESK_SERVER_URL": link.url}  # the bridge's only: the server has its env
    stack.start()
    p = Presser(stack.broker.url)
    yield stack, link, p
    p.close()
    stack.stop()
    link.close()


def test_a_press_whose_body_the_server_timed_out_waiting_for_is_queued_and_handed_over_again(linked):
    """The bridge stalls mid-send (here: the link holds back the body's last byte): the server's HTTP layer
    answers 408. That is the request's fault, not the press's: the press is answered `queued`, kept, and
    handed over again, never `rejected` nor dead-lettered."""
    stack, link, p = linked
    device = f"stall-{uuid.uuid4().hex[:6]}"
    assert p.final_ack(p.press(device, "b1"))["result"] == "created"
    link.stall_next()
    event = p.press(device, "b1")
    assert p.final_ack(event, timeout=30)["result"] == "merged"
    assert link.stalled == 1
    time.sleep(1.0)  # a second final ack, had one been sent, would have come by now
    assert p.ack_results(event) == ["queued", "merged"]
    assert stack.api("GET", "/api/v1/dead-letters").json()["items"] == []
    assert counted(stack, [device])[event] == 1
    assert "HTTP 408" in stack.logs("bridge")
