"""Merges hold for later presses, and a double press withdraws its own button's report. Through the API on a
real SQLite database, on both press paths (sqlite3's cursor and the session)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import update

from dashdesk import wire
from server.models import Ticket

from .test_incidents import app, press  # noqa: F401  (the app fixture: both press paths)
from .test_presses_per_device import place, ticket


def merge(client: Any, source: int, target: int) -> dict[str, Any]:
    """Merge ``source`` into ``target`` through the API, as a script does (the desk's "Merge" does the same)."""
    r = client.patch(f"/api/v1/tickets/{source}", json={"merged_into": f"INC-{target:06d}"})
    assert r.status_code == 200, r.get_json()
    return r.get_json()


# ---------------------------------------------------------------- merges hold


def test_after_a_merge_the_sources_presses_join_the_target_until_it_is_resolved_and_then_reopen_it(app, client):
    place(client, "north-1", "north", b1="printer")
    place(client, "south-1", "south", b1="printer")
    source = press(client, device="north-1")["ticket"]["id"]
    target = press(client, device="south-1")["ticket"]["id"]
    merged = merge(client, source, target)
    # closed as a duplicate, not resolved: nothing counts it as resolved
    assert (merged["status"], merged["merged_into"], merged["resolved_at"]) == ("closed", f"INC-{target:06d}", None)

    joined = press(client, device="north-1")
    assert (joined["result"], joined["ticket"]["id"], joined["ticket"]["category"]) == ("merged", target, "printer")
    t = ticket(client, target)
    assert t["occurrences"] == 3 and sorted({p["device_id"] for p in t["presses"]}) == ["north-1", "south-1"]
    assert ticket(client, source)["occurrences"] == 1  # its press moved; it counts no more
    assert client.get("/api/v1/devices/north-1/tickets").get_json()["tickets"][0]["id"] == target

    # resolved: a press within the reopen window reopens it, as it would have reopened the merged ticket
    assert client.patch(f"/api/v1/tickets/{target}", json={"status": "resolved"}).status_code == 200
    again = press(client, device="north-1")
    assert (again["result"], again["ticket"]["id"]) == ("reopened", target)
    # closed for good: the next press of north makes a ticket of its own, where later presses merge
    assert client.patch(f"/api/v1/tickets/{target}", json={"status": "closed"}).status_code == 200
    fresh = press(client, device="north-1")
    assert fresh["result"] == "created" and fresh["ticket"]["id"] not in (source, target)
    assert press(client, device="north-1")["ticket"]["id"] == fresh["ticket"]["id"]


def test_merges_of_merges_are_followed_and_a_target_of_another_category_takes_the_press(app, client):
    place(client, "a-1", "site-a", b1="printer")
    place(client, "b-1", "site-b", b1="printer")
    place(client, "c-1", "site-c", b1="till")
    a = press(client, device="a-1")["ticket"]["id"]
    b = press(client, device="b-1")["ticket"]["id"]
    c = press(client, device="c-1")["ticket"]["id"]
    merge(client, a, b)
    merge(client, b, c)
    answer = press(client, device="a-1", kind="long")
    # c took it, as a ticket of its own category (till, priority 2: the long press of a printer is 2 too)
    assert (answer["result"], answer["ticket"]["id"], answer["ticket"]["category"]) == ("merged", c, "till")
    assert press(client, device="b-1")["ticket"]["id"] == c
    assert ticket(client, c)["occurrences"] == 5


def test_the_scopes_own_newer_resolved_ticket_wins_over_an_older_merge(app, client):
    place(client, "n-1", "n", b1="printer")
    place(client, "s-1", "s", b1="printer")
    old = press(client, device="n-1")["ticket"]["id"]
    target = press(client, device="s-1")["ticket"]["id"]
    merge(client, old, target)
    client.patch(f"/api/v1/tickets/{target}", json={"status": "resolved"})
    with app.extensions["dashdesk"].db.write() as s:
        s.execute(update(Ticket).where(Ticket.id == target).values(resolved_at=wire.utcnow() - timedelta(hours=2)))
    own = press(client, device="n-1")["ticket"]["id"]  # the target was resolved too long ago: a ticket of n's
    assert own not in (old, target)
    client.patch(f"/api/v1/tickets/{own}", json={"status": "resolved"})
    client.patch(f"/api/v1/tickets/{target}", json={"status": "in_progress"})  # an agent reopens the target
    answer = press(client, device="n-1")
    assert (answer["result"], answer["ticket"]["id"]) == ("reopened", own)


def test_a_ticket_of_the_scopes_own_since_the_merge_ends_it_whatever_became_of_that_ticket(app, client):
    place(client, "n-3", "n3", b1="printer")
    place(client, "s-3", "s3", b1="printer")
    old = press(client, device="n-3")["ticket"]["id"]
    target = press(client, device="s-3")["ticket"]["id"]
    merge(client, old, target)
    client.patch(f"/api/v1/tickets/{target}", json={"status": "resolved"})
    with app.extensions["dashdesk"].db.write() as s:
        s.execute(update(Ticket).where(Ticket.id == target).values(resolved_at=wire.utcnow() - timedelta(hours=2)))
    own = press(client, device="n-3")["ticket"]["id"]
    assert client.patch(f"/api/v1/tickets/{own}", json={"status": "closed"}).status_code == 200
    client.patch(f"/api/v1/tickets/{target}", json={"status": "in_progress"})  # an agent reopens the target
    answer = press(client, device="n-3")
    assert answer["result"] == "created" and answer["ticket"]["id"] not in (old, target, own)


def test_a_press_that_follows_a_merge_too_late_makes_a_ticket_of_its_own_category_and_says_so(app, client):
    place(client, "p-1", "p", b1="printer")
    place(client, "t-1", "t", b1="till")
    source = press(client, device="p-1")["ticket"]["id"]
    target = press(client, device="t-1")["ticket"]["id"]
    merge(client, source, target)
    client.patch(f"/api/v1/tickets/{target}", json={"status": "resolved"})
    with app.extensions["dashdesk"].db.write() as s:
        s.execute(update(Ticket).where(Ticket.id == target).values(resolved_at=wire.utcnow() - timedelta(hours=2)))
    answer = press(client, device="p-1")
    assert answer["result"] == "created" and answer["ticket"]["id"] not in (source, target)
    # the ack, the stored answer a replay gets and the ticket agree: a printer ticket
    assert answer["ticket"]["category"] == ticket(client, answer["ticket"]["id"])["category"] == "printer"


def test_a_merge_that_happened_long_ago_is_not_followed_past_the_reopen_window(app, client):
    place(client, "n-2", "n2", b1="printer")
    place(client, "s-2", "s2", b1="printer")
    source = press(client, device="n-2")["ticket"]["id"]
    target = press(client, device="s-2")["ticket"]["id"]
    merge(client, source, target)
    client.patch(f"/api/v1/tickets/{target}", json={"status": "resolved"})
    with app.extensions["dashdesk"].db.write() as s:
        s.execute(update(Ticket).where(Ticket.id == target).values(resolved_at=wire.utcnow() - timedelta(hours=2)))
    answer = press(client, device="n-2")
    assert answer["result"] == "created" and answer["ticket"]["id"] not in (source, target)


def test_merging_through_the_api_is_refused_with_a_reason(app, client):
    place(client, "m-1", "m", b1="printer")
    tid = press(client, device="m-1")["ticket"]["id"]
    other = press(client, device="m-2")["ticket"]["id"]
    r = client.patch(f"/api/v1/tickets/{tid}", json={"merged_into": "INC-999999"})
    assert r.status_code == 404 and "no ticket INC-999999" in r.get_json()["error"]["message"]
    r = client.patch(f"/api/v1/tickets/{tid}", json={"merged_into": str(other), "note": "dup"})
    assert r.status_code == 409 and "alone" in r.get_json()["error"]["message"]
    assert client.patch(f"/api/v1/tickets/{tid}", json={"merged_into": str(tid)}).status_code == 409
    client.patch(f"/api/v1/tickets/{other}", json={"status": "cancelled"})
    r = client.patch(f"/api/v1/tickets/{tid}", json={"merged_into": str(other)})
    assert r.status_code == 409 and "merge into an open ticket" in r.get_json()["error"]["message"]
    assert ticket(client, tid)["status"] == "new"


# ---------------------------------------------------------------- a double press withdraws its own button's report


def test_a_double_press_withdraws_its_own_buttons_report_not_another_buttons(app, client):
    place(client, "shop-d", "d", b1="printer", b2="till", b3="sales-app")
    till = press(client, device="shop-d", button="b2", kind="long")
    answer = press(client, device="shop-d", button="b3", kind="double")
    assert answer["result"] == "rejected" and answer["ticket"] is None
    assert answer["reason"] == "nothing to cancel: no report from this button in the last 120 s"
    assert ticket(client, till["ticket"]["id"])["status"] == "new"
    # b1 reported before b2: its double press withdraws b1's report, b2's stays
    printer = press(client, device="shop-d", button="b1")
    press(client, device="shop-d", button="b2")  # merged into the till ticket
    withdrawn = press(client, device="shop-d", button="b1", kind="double")
    assert (withdrawn["result"], withdrawn["ticket"]["id"]) == ("cancelled", printer["ticket"]["id"])
    assert ticket(client, printer["ticket"]["id"])["status"] == "cancelled"
    t = ticket(client, till["ticket"]["id"])
    assert (t["status"], t["occurrences"]) == ("new", 2)
    # and b2's double press withdraws b2's last report (the merge), leaving its first
    assert press(client, device="shop-d", button="b2", kind="double")["ticket"]["status"] == "new"
    assert ticket(client, till["ticket"]["id"])["occurrences"] == 1


def test_a_double_press_outside_the_window_of_its_buttons_report_is_refused(app, client):
    place(client, "shop-w", "w", b1="printer", b2="till")
    press(client, device="shop-w", button="b1", pressed_at=wire.utcnow() - timedelta(seconds=200))
    press(client, device="shop-w", button="b2")
    answer = press(client, device="shop-w", button="b1", kind="double")
    assert answer["result"] == "rejected" and "this button in the last 120 s" in answer["reason"]


def test_a_cancel_button_withdraws_the_devices_last_report_and_a_double_mapped_to_cancel_its_own(app, client):
    place(client, "shop-c", "c", b1="printer", b2="till")
    assert client.put("/api/v1/devices/shop-c/buttons/b9", json={"action": "cancel"}).status_code == 200
    assert client.put("/api/v1/devices/shop-c/buttons/b1", json={"action": "cancel", "press": "double"}
                      ).status_code == 200
    printer = press(client, device="shop-c", button="b1")["ticket"]["id"]
    till = press(client, device="shop-c", button="b2")["ticket"]["id"]
    # the cancel button: whatever the device reported last (the till), though b9 itself reported nothing
    answer = press(client, device="shop-c", button="b9")
    assert (answer["result"], answer["ticket"]["id"]) == ("cancelled", till)
    again = press(client, device="shop-c", button="b2")["ticket"]["id"]
    # b1's double press, mapped to "cancel": b1's own last report, not the till's newer one
    answer = press(client, device="shop-c", button="b1", kind="double")
    assert (answer["result"], answer["ticket"]["id"]) == ("cancelled", printer)
    assert ticket(client, again)["status"] == "new"
