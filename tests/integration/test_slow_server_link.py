"""A slow or stalling link between the bridge and the server (a real TCP hop, ``SlowLink``): a press is never
`rejected` for the link's fault, and every press still gets an ack within 2 s, in order per device."""

import time
import uuid

import pytest

from tests.stack import Presser, SlowLink, Stack, counted, wait_until

# The contract: an ack within 2 s while dashdesk is up.
ACK_WITHIN_S = 2.0
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


def test_presses_waiting_for_a_busy_worker_are_queued_within_2_s_and_reach_the_server_in_order(linked):
    """Every request takes 0.75 s (never the 1 s after which the bridge calls the server slow), and its one
    worker is busy: the backlog waits for it in the bridge's queue, 50 presses a request. Those that waited
    1 s are answered `queued` from the outbox, later ones queue behind them, and the server takes them in the
    order they came: each device's double press withdraws the report just before it."""
    stack, link, p = linked
    fillers = [f"fill-{i}-{uuid.uuid4().hex[:6]}" for i in range(10)]
    cancellers = [f"undo-{i}-{uuid.uuid4().hex[:6]}" for i in range(5)]
    for d in fillers + cancellers:
        stack.map_button(d, "b1", "printer")
    warm_up = p.press(fillers[0], "b1")
    assert p.final_ack(warm_up)["result"] == "created"  # the bridge's connections are made
    link.delay_s = 0.75

    sent: dict[str, float] = {}
    order: list[tuple[str, str]] = []  # (device, event_id) as published
    reports: dict[str, tuple[str, str]] = {}  # canceller -> (its report, its double press)

    def press(device: str, kind: str = "single") -> str:
        event = p.press(device, "b1", press=kind)
        sent[event] = time.monotonic()
        order.append((device, event))
        return event

    for i in range(190):
        press(fillers[i % len(fillers)])
        if i % 40 == 39:  # a report and its withdrawal, one after the other, all along the backlog
            c = cancellers[i // 40]
            reports[c] = (press(c), press(c, "double"))
    events = [e for _, e in order]
    wait_until(lambda: all(p.ack_results(e) for e in events), timeout=30, what="a first ack for every press")
    late = {e: round(p.first_ack_at[e] - sent[e], 2) for e in events if p.first_ack_at[e] - sent[e] > ACK_WITHIN_S}
    print("first ack after (s): max", round(max(p.first_ack_at[e] - sent[e] for e in events), 2),
          "queued:", sum(1 for e in events if p.ack_results(e)[0] == "queued"))
    assert not late, f"{len(late)} presses got their first ack later than {ACK_WITHIN_S} s: {late}"

    finals = {e: p.final_ack(e, timeout=60)["result"] for e in events}
    time.sleep(1.0)  # a second final ack, had one been sent, would have come by now
    assert all(len([r for r in p.ack_results(e) if r != "queued"]) == 1 for e in events)
    for c, (report, undo) in reports.items():
        assert (finals[report], finals[undo]) == ("created", "cancelled"), (c, finals[report], finals[undo])
    assert counted(stack, fillers + cancellers) == {e: 1 for e in [warm_up, *events]}
    assert "waited 1 s for a worker" in stack.logs("bridge")
