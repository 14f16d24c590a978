"""The bridge's pure parts: enrichment, in-order acknowledgement, the outbox, the queue of presses waiting for
a worker, and what an HTTP status means for a press."""

import threading

import pytest

from broker_bridge.acks import InOrderAcker
from broker_bridge.enrich import enrich
from broker_bridge.outbox import PRESS, Outbox, press_key
from broker_bridge.presses import PressQueue
from broker_bridge.server_client import Refused, ServerDown, TokenRefused, refusal


def test_press_snapshot_wins_over_retained_telemetry_and_probes_merge():
    latest = {"battery_pct": 50, "ip": "10.0.0.5", "probes": {"printer": {"ok": True}, "till": {"ok": True}}}
    press = {"battery_pct": 48, "probes": {"printer": {"ok": False, "detail": "jam"}}}
    out = enrich(press, latest)
    assert out["battery_pct"] == 48 and out["ip"] == "10.0.0.5"
    assert out["probes"] == {"printer": {"ok": False, "detail": "jam"}, "till": {"ok": True}}
    assert enrich({"a": 1}, None) == {"a": 1}


def test_acks_go_out_in_arrival_order_once_each_is_safe():
    sent = []
    acker = InOrderAcker(sent.append)
    gens = {mid: acker.received(mid) for mid in (1, 2, 3)}
    acker.done(3, gens[3])
    acker.done(2, gens[2])
    assert sent == []
    acker.done(1, gens[1])
    assert sent == [1, 2, 3]
    assert len(acker) == 0


def test_acks_of_an_old_connection_are_never_sent():
    sent = []
    acker = InOrderAcker(sent.append)
    gen = acker.received(7)
    acker.reset()  # reconnected: the broker will hand message 7 over again
    acker.done(7, gen)
    assert sent == []


def test_outbox_keeps_items_across_reopen_and_ignores_duplicates(tmp_path):
    box = Outbox(tmp_path / "o.sqlite3")
    assert box.put(PRESS, "e1", {"event_id": "e1"}, "d1")
    assert not box.put(PRESS, "e1", {"event_id": "e1"}, "d1")
    box.set_state("cursor", "12")
    box.close()
    box.close()  # safe twice
    box = Outbox(tmp_path / "o.sqlite3")
    items = box.oldest()
    assert [(i.kind, i.key, i.device_id) for i in items] == [(PRESS, "e1", "d1")]
    assert box.get_state("cursor") == "12"
    box.remove(items[0].id)
    assert box.count() == 0
    box.close()


def test_outbox_keeps_one_event_id_of_two_devices_as_two_presses(tmp_path):
    box = Outbox(tmp_path / "o.sqlite3")
    for device in ("d1", "d2", "d1"):
        box.put(PRESS, press_key(device, "e1"), {"event_id": "e1", "device_id": device}, device)
    assert [(i.key, i.device_id) for i in box.oldest()] == [("d1/e1", "d1"), ("d2/e1", "d2")]
    box.close()


def test_outbox_puts_many_in_one_go_and_says_which_were_there_already(tmp_path):
    box = Outbox(tmp_path / "o.sqlite3")
    assert box.put(PRESS, "e2", {"event_id": "e2"}, "d1")
    rows = box.put_many(PRESS, [("e1", {"event_id": "e1"}, "d1"), ("e2", {"event_id": "e2"}, "d1"),
                                ("e3", {"event_id": "e3"}, "d2")])
    assert rows[1] is None and None not in (rows[0], rows[2])
    assert [(i.id, i.key) for i in box.oldest()][1:] == [(rows[0], "e1"), (rows[2], "e3")]
    box.remove_many([rows[0], rows[2]])
    box.remove_many([])
    assert [i.key for i in box.oldest()] == ["e2"]
    box.close()


def _press(n: int, arrived: float):
    return ({"event_id": f"e{n}"}, lambda: None, arrived)


def test_press_queue_gives_the_presses_that_waited_too_long_oldest_first_and_leaves_the_rest():
    q = PressQueue()
    for n, arrived in enumerate([1.0, 1.5, 2.0, 2.5]):
        q.put(_press(n, arrived))
    assert [b["event_id"] for b, _, _ in q.take_late(2.0)] == ["e0", "e1", "e2"]
    assert q.take_late(2.0) == []
    assert [b["event_id"] for b, _, _ in q.take(50)] == ["e3"]


def test_press_queue_takes_batches_in_order_and_gives_back_to_the_front():
    q = PressQueue()
    for n in range(5):
        q.put(_press(n, float(n)))
    first = q.take(3)
    assert [b["event_id"] for b, _, _ in first] == ["e0", "e1", "e2"]
    q.give_back(first[1:])
    assert [b["event_id"] for b, _, _ in q.take(50)] == ["e1", "e2", "e3", "e4"]
    assert q.take(50) == []


def test_press_queue_closed_lets_workers_take_what_is_left_then_tells_them_to_stop():
    q = PressQueue()
    q.put(_press(0, 0.0))
    q.close()
    assert q.wait() is True and len(q.take(50)) == 1
    assert q.wait() is False
    # A worker waiting on an empty queue is woken by close.
    waiting = PressQueue()
    result = []
    t = threading.Thread(target=lambda: result.append(waiting.wait()))
    t.start()
    waiting.close()
    t.join(5)
    assert result == [False]


@pytest.mark.parametrize("status", [408, 425, 429])
def test_a_transient_4xx_is_the_server_not_taking_the_press_now_never_its_refusal(status):
    """408 (the HTTP layer timed out a slow body), 425 and 429 say nothing about the press: it waits in the
    outbox (`queued`) and goes again, never `rejected`."""
    with pytest.raises(ServerDown, match=f"HTTP {status}"):
        refusal(status, "request timeout")


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_token_is_the_server_taking_nothing_now(status):
    with pytest.raises(TokenRefused):
        refusal(status, "no")


@pytest.mark.parametrize("status", [400, 404, 409, 413, 422])
def test_other_4xx_are_the_press_own_answer(status):
    answer = refusal(status, "bad press")
    assert isinstance(answer, Refused) and answer.status == status and "bad press" in answer.reason


@pytest.fixture
def answering():
    """A real HTTP server on loopback that answers every POST with the status and body the test sets."""
    import http.server

    said = {"status": 200, "body": b"<html>a proxy's page</html>"}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(said["status"])
            self.send_header("Content-Length", str(len(said["body"])))
            self.end_headers()
            self.wfile.write(said["body"])

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", said
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("body", [b"<html>a proxy's page</html>", b'{"items": [', b'{"items": [{"result": "created"}]}',
                                  b'["not", "an", "object"]'])
def test_an_answer_that_is_not_the_servers_is_the_server_down_not_a_crash(answering, body):
    """A 2xx whose body is no answer to the presses (a proxy's page, a body cut short, a batch answering fewer
    presses than it was given): the presses wait in the outbox (ServerDown), rather than an exception that
    leaves them unanswered and unacked until the bridge reconnects."""
    from broker_bridge.server_client import ServerClient

    url, said = answering
    said["body"] = body
    client = ServerClient(url, "token")
    bodies = [{"event_id": f"e{i}", "device_id": "d1"} for i in range(2)]
    with pytest.raises(ServerDown):
        client.post_incidents(bodies)
