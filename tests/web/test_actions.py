"""Every desk action: its transition, its history entry on the event feed, and what it refuses."""

from __future__ import annotations

import re
import zoneinfo
from datetime import timedelta

import pytest
from sqlalchemy import select

from dashdesk import wire
from server.domain import rules
from server.models import Category, Event, Press, Ticket

from .conftest import api, press


def ticket(app, ticket_id):
    with app.extensions["dashdesk"].db.read() as s:
        return s.get(Ticket, ticket_id)


def events(app, ticket_id):
    with app.extensions["dashdesk"].db.read() as s:
        return s.scalars(select(Event).where(Event.ticket_id == ticket_id).order_by(Event.id)).all()


def new_ticket(app, device="shop-1", **kw):
    return press(app, device_id=device, **kw)["ticket"]["id"]


def last_change(app, ticket_id):
    e = events(app, ticket_id)[-1]
    return e.kind, e.actor, e.data, e.devices


def test_take_assigns_to_me_starts_the_ticket_and_counts_as_the_response(app, ann):
    tid = new_ticket(app)
    r = ann.act(tid, "take")
    assert r.status_code == 303 and r.headers["Location"] == f"/tickets/{tid}"
    t = ticket(app, tid)
    assert (t.status, t.assignee, t.touched) == ("in_progress", "ann", True)
    assert t.responded_at is not None
    kind, actor, data, devices = last_change(app, tid)
    assert (kind, actor) == ("ticket.updated", "ann")
    assert data["changes"] == {"status": ["new", "in_progress"], "assignee": [None, "ann"]}
    assert devices == ["shop-1"]  # the bridge refreshes this device's tickets topic
    assert "You took INC-" in ann.c.get(f"/tickets/{tid}").text


def test_a_double_press_cannot_cancel_a_taken_ticket(app, ann):
    tid = new_ticket(app)
    ann.act(tid, "take")
    answer = press(app, press="double")
    assert answer["result"] == "rejected" and "already being handled" in answer["reason"]
    assert ticket(app, tid).status == "in_progress"


def test_assign_to_a_user_and_unassign(app, ann):
    tid = new_ticket(app)
    assert ann.act(tid, "assign", assignee="bob").status_code == 303
    assert ticket(app, tid).assignee == "bob"
    assert last_change(app, tid)[2]["changes"] == {"assignee": [None, "bob"]}
    r = ann.act(tid, "assign", assignee="mallory")
    assert r.status_code == 409 and "no active user mallory" in r.text
    assert ticket(app, tid).assignee == "bob"
    ann.act(tid, "assign", assignee="")
    assert ticket(app, tid).assignee is None


def test_hold_needs_a_reason(app, ann):
    tid = new_ticket(app)
    r = ann.act(tid, "hold", reason="   ")
    assert r.status_code == 409 and "A reason for the hold is required" in r.text
    assert ticket(app, tid).status == "new" and len(events(app, tid)) == 1
    assert ann.act(tid, "hold", reason="waiting for toner").status_code == 303
    assert ticket(app, tid).status == "on_hold"
    kind, actor, data, _ = last_change(app, tid)
    assert data["changes"] == {"status": ["new", "on_hold"]} and data["reason"] == "waiting for toner"
    assert "Reason: waiting for toner" in ann.c.get(f"/tickets/{tid}").text


def test_in_progress_from_hold(app, ann):
    tid = new_ticket(app)
    ann.act(tid, "hold", reason="parts")
    assert ann.act(tid, "start").status_code == 303
    assert ticket(app, tid).status == "in_progress"
    assert last_change(app, tid)[2]["changes"] == {"status": ["on_hold", "in_progress"]}


def test_resolve_needs_a_note_and_sets_resolved_at(app, ann):
    tid = new_ticket(app)
    r = ann.act(tid, "resolve", resolution="")
    assert r.status_code == 409 and "A resolution note is required" in r.text
    assert ticket(app, tid).status == "new"
    assert ann.act(tid, "resolve", resolution="replaced the paper roll").status_code == 303
    t = ticket(app, tid)
    assert t.status == "resolved" and t.resolved_at is not None
    assert last_change(app, tid)[2]["resolution"] == "replaced the paper roll"


def test_close_then_nothing_but_notes(app, ann):
    tid = new_ticket(app)
    ann.act(tid, "resolve", resolution="fixed")
    assert ann.act(tid, "close").status_code == 303
    assert ticket(app, tid).status == "closed"
    n = len(events(app, tid))
    for action, form in (("resolve", {"resolution": "again"}), ("reopen", {}), ("take", {}), ("close", {}),
                         ("priority", {"priority": "1"}), ("cancel", {})):
        r = ann.act(tid, action, **form)
        assert r.status_code == 409, action
        assert 'id="action-error"' in r.text
    assert "INC-%06d is closed; a closed ticket cannot be changed" % tid in ann.act(tid, "resolve",
                                                                                   resolution="x").text
    assert ticket(app, tid).status == "closed" and len(events(app, tid)) == n
    assert ann.act(tid, "note", note="customer called back").status_code == 303
    assert last_change(app, tid)[0] == "ticket.note"


def test_cancel_and_reopen(app, ann):
    tid = new_ticket(app)
    assert ann.act(tid, "cancel").status_code == 303
    assert ticket(app, tid).status == "cancelled"
    assert ann.act(tid, "reopen").status_code == 303
    t = ticket(app, tid)
    assert (t.status, t.reopen_count) == ("new", 1)
    assert last_change(app, tid)[2]["changes"] == {"status": ["cancelled", "new"]}
    r = ann.act(tid, "reopen")
    assert r.status_code == 409 and "only a resolved or cancelled ticket can be reopened" in r.text


def test_reopen_a_resolved_ticket(app, ann):
    tid = new_ticket(app)
    ann.act(tid, "resolve", resolution="fixed")
    ann.act(tid, "reopen")
    t = ticket(app, tid)
    assert t.status == "new" and t.resolved_at is None


def test_change_priority_recomputes_the_deadlines(app, ann):
    tid = new_ticket(app)  # "other": priority 4
    before = ticket(app, tid)
    assert before.priority == 4
    assert ann.act(tid, "priority", priority="1").status_code == 303
    after = ticket(app, tid)
    assert after.priority == 1
    assert after.respond_by - after.created_at == (before.respond_by - before.created_at) / 32  # 15 min vs 8 h
    assert last_change(app, tid)[2]["changes"] == {"priority": [4, 1]}
    assert ann.act(tid, "priority", priority="9").status_code == 409


def test_add_note(app, ann):
    tid = new_ticket(app)
    assert ann.act(tid, "note", note="").status_code == 409
    assert ann.act(tid, "note", note="called the shop").status_code == 303
    kind, actor, data, _ = last_change(app, tid)
    assert (kind, actor, data["note"]) == ("ticket.note", "ann", "called the shop")
    assert ticket(app, tid).touched


def test_merge_moves_presses_and_occurrences_and_closes_the_duplicate(app, ann):
    api(app, "PUT", "/api/v1/devices/shop-2/buttons/b1", json={"category": "printer"})
    target = new_ticket(app, device="shop-1")
    press(app, device_id="shop-1")  # merged: 2 occurrences
    source = new_ticket(app, device="shop-2")  # another device and category
    assert source != target
    r = ann.act(source, "merge", target=f"INC-{target:06d}")
    assert r.status_code == 303
    t, s_ = ticket(app, target), ticket(app, source)
    assert t.occurrences == 3 and sorted(t.devices) == ["shop-1", "shop-2"]
    assert (s_.status, s_.merged_into_id) == ("closed", target)
    with app.extensions["dashdesk"].db.read() as s:
        assert s.scalar(select(Press.id).where(Press.ticket_id == source)) is None
        assert len(s.scalars(select(Press.id).where(Press.ticket_id == target)).all()) == 3
    src_event, tgt_event = events(app, source)[-1], events(app, target)[-1]
    assert src_event.data["merged_into"] == target and src_event.data["resolution"] == "duplicate"
    assert tgt_event.data["merged_from"] == source and tgt_event.data["changes"]["occurrences"] == [2, 3]
    page = ann.c.get(f"/tickets/{source}").text
    assert f'Closed as a duplicate of <a href="/tickets/{target}">INC-{target:06d}</a>' in page
    assert f"<li>INC-{source:06d} merged into this ticket (1 press)</li>" in ann.c.get(f"/tickets/{target}").text
    # closed as a duplicate, not resolved; the merge holds: shop-2's next press joins the target
    assert s_.resolved_at is None
    assert press(app, device_id="shop-2")["ticket"]["id"] == target
    # two presses merged: "presses"
    other = new_ticket(app, device="shop-3")
    press(app, device_id="shop-3")
    ann.act(other, "merge", target=f"INC-{target:06d}")
    assert f"<li>INC-{other:06d} merged into this ticket (2 presses)</li>" in ann.c.get(f"/tickets/{target}").text
    # the devices of the merged tickets now see the target among their open tickets
    for device in ("shop-2", "shop-3"):
        open_ = api(app, "GET", f"/api/v1/devices/{device}/tickets").get_json()["tickets"]
        assert [x["id"] for x in open_] == [target]


@pytest.mark.parametrize("target, message", [("INC-999999", "there is no ticket INC-999999"),
                                             ("self", "cannot be merged into itself"),
                                             ("", "there is no ticket (none given)")])
def test_merge_refusals(app, ann, target, message):
    tid = new_ticket(app)
    r = ann.act(tid, "merge", target=str(tid) if target == "self" else target)
    assert r.status_code == 409 and message.lower() in r.text.replace("&#39;", "'").lower()
    assert ticket(app, tid).status == "new"


def test_merge_into_a_closed_ticket_is_refused(app, ann):
    api(app, "PUT", "/api/v1/devices/shop-2/buttons/b1", json={"category": "printer"})
    a = new_ticket(app, device="shop-1")
    b = new_ticket(app, device="shop-2")
    ann.act(a, "cancel")
    r = ann.act(b, "merge", target=str(a))
    assert r.status_code == 409 and "merge into an open ticket" in r.text


def test_unknown_action_and_ticket(app, ann):
    tid = new_ticket(app)
    assert ann.act(tid, "explode").status_code == 404
    assert ann.c.get("/tickets/999").status_code == 404
    assert "There is no ticket INC-000999" in ann.c.get("/tickets/999").text


def test_take_from_the_queue_goes_back_to_the_queue(app, ann):
    tid = new_ticket(app)
    r = ann.c.post(f"/tickets/{tid}/take", data={"csrf_token": ann.token(), "next": "/?status=new"})
    assert r.status_code == 303 and r.headers["Location"] == "/?status=new"
    assert ticket(app, tid).assignee == "ann"
    r = ann.c.post(f"/tickets/{tid}/reopen", data={"csrf_token": ann.token(), "next": "/"})
    assert r.status_code == 303  # refused: the message is flashed on the queue
    assert "only a resolved or cancelled ticket can be reopened" in ann.c.get("/").text


# ------------------------------------------------------------- the API goes through the same rules


def test_api_patch_uses_the_same_transitions(app):
    tid = new_ticket(app)
    r = api(app, "PATCH", f"/api/v1/tickets/{tid}", json={"status": "closed"})
    assert r.status_code == 200 and r.get_json()["status"] == "closed"
    r = api(app, "PATCH", f"/api/v1/tickets/{tid}", json={"status": "resolved"})
    assert r.status_code == 409
    assert r.get_json()["error"]["code"] == "conflict"
    assert "is closed" in r.get_json()["error"]["message"]
    r = api(app, "PATCH", f"/api/v1/tickets/{tid}", json={"note": "still allowed"})
    assert r.status_code == 200
    assert ticket(app, tid).responded_at is not None


def _sla(app, t):
    with app.extensions["dashdesk"].db.read() as s:
        return s.get(Category, t.category_id).sla


def test_on_hold_stops_the_sla_clock_and_leaving_it_moves_the_deadlines(app, ann):
    tid = new_ticket(app)
    assert ann.act(tid, "hold", reason="waiting for the supplier").status_code == 303
    held = ticket(app, tid)
    assert held.on_hold_since is not None and held.held_s == 0
    assert "paused (on hold)" in ann.c.get("/").text
    # An hour on hold, as if the hold began an hour ago.
    with app.extensions["dashdesk"].db.write() as s:
        s.get(Ticket, tid).on_hold_since = held.on_hold_since - timedelta(hours=1)
    assert ann.act(tid, "start").status_code == 303
    after = ticket(app, tid)
    assert after.on_hold_since is None and 3600 <= after.held_s <= 3605
    assert after.resolve_by - held.resolve_by == timedelta(seconds=after.held_s)
    assert after.respond_by - held.respond_by == timedelta(seconds=after.held_s)
    assert last_change(app, tid)[2]["sla_paused_s"] == after.held_s
    # A later priority change counts the deadlines from creation plus the time held.
    ann.act(tid, "priority", priority="2")
    moved = ticket(app, tid)
    plain = rules.sla_deadlines(moved.created_at, 2, _sla(app, moved))
    assert moved.resolve_by - plain.resolve_by == timedelta(seconds=after.held_s)
    body = api(app, "GET", f"/api/v1/tickets/{tid}").get_json()
    assert body["held_s"] == after.held_s and body["on_hold_since"] is None and body["responded_at"]


def test_a_long_press_on_a_held_ticket_keeps_the_time_held_out_of_its_deadlines(app, ann):
    tid = new_ticket(app)
    ann.act(tid, "hold", reason="parts")
    with app.extensions["dashdesk"].db.write() as s:
        t = s.get(Ticket, tid)
        t.on_hold_since -= timedelta(hours=2)
    assert press(app, press="long")["ticket"]["id"] == tid  # merged, one priority step up
    t = ticket(app, tid)
    plain = rules.sla_deadlines(t.created_at, t.priority, _sla(app, t))
    assert t.status == "on_hold" and timedelta(hours=2) <= t.resolve_by - plain.resolve_by <= timedelta(hours=2,
                                                                                                           seconds=5)


def test_a_priority_raised_during_a_hold_counts_the_hold_once_when_it_ends(app, ann):
    """By a long press and by an agent: the deadlines end up counted from creation plus the whole hold."""
    for device in ("shop-1", "shop-2"):  # printer, P3; a long press reports P2
        api(app, "PUT", f"/api/v1/devices/{device}/buttons/b1", json={"category": "printer"})
    by_press, by_agent = new_ticket(app), new_ticket(app, device="shop-2")
    for tid in (by_press, by_agent):
        ann.act(tid, "hold", reason="parts")
        with app.extensions["dashdesk"].db.write() as s:
            s.get(Ticket, tid).on_hold_since -= timedelta(hours=2)  # on hold for two hours now
    assert press(app, press="long")["ticket"]["id"] == by_press
    ann.act(by_agent, "priority", priority="2")
    for tid in (by_press, by_agent):
        with app.extensions["dashdesk"].db.write() as s:
            s.get(Ticket, tid).on_hold_since -= timedelta(hours=1)  # and another hour before it ends
        assert ann.act(tid, "start").status_code == 303
        t = ticket(app, tid)
        assert t.priority == 2 and t.on_hold_since is None and 3 * 3600 <= t.held_s <= 3 * 3600 + 5
        whole = rules.sla_deadlines(t.created_at + timedelta(seconds=t.held_s), 2, _sla(app, t))
        assert (t.respond_by, t.resolve_by) == (whole.respond_by, whole.resolve_by), tid


def test_the_sla_warning_counts_its_window_from_when_the_clock_started(app, ann):
    """Two hours to respond, started an hour ago after six hours on hold: an hour left is no warning."""
    api(app, "PUT", "/api/v1/devices/shop-1/buttons/b1", json={"category": "printer"})
    tid = new_ticket(app)  # P3: 120 minutes to respond
    with app.extensions["dashdesk"].db.write() as s:
        t = s.get(Ticket, tid)
        now = t.created_at
        t.created_at = t.first_reported_at = now - timedelta(hours=7)
        t.held_s = 6 * 3600
        t.respond_by = now + timedelta(hours=1)
    row = re.search(rf'<tr[^>]*data-id="{tid}".*?</tr>', ann.c.get("/").text, re.S).group(0)
    assert "sla-ok" in row and "to respond" in row, row
    page = ann.c.get(f"/tickets/{tid}").text
    assert re.search(r'class="sla sla-ok">(59|60) min to respond<', page)
    # the same ticket without the hold: an hour left of an eight-hour window... a warning, as before
    with app.extensions["dashdesk"].db.write() as s:
        s.get(Ticket, tid).held_s = 0
    assert "sla-warn" in re.search(rf'<tr[^>]*data-id="{tid}".*?</tr>', ann.c.get("/").text, re.S).group(0)


def test_the_ticket_page_shows_the_shop_an_agent_would_call(app, ann):
    site = {"code": "hs-07", "name": "High Street", "address": "1 High St, Leeds", "timezone": "Asia/Tokyo",
            "hours": "Mon-Sat 05:00-18:00", "contact": "Ann, +44 113 000 0001"}
    assert api(app, "POST", "/api/v1/sites", json=site).status_code == 201
    assert api(app, "POST", "/api/v1/devices", json={"device_id": "hs-07-front", "site": "hs-07"}).status_code in (200, 201)
    tid = new_ticket(app, "hs-07-front")
    for path in (f"/tickets/{tid}", f"/tickets/{tid}?partial=1"):  # the page, and its live update
        page = ann.c.get(path).text
        card = page[page.index('id="site-details"'):]
        card = re.sub(r"\s+", " ", card[:card.index("</dl>")])
        for shown in ("<dd>High Street <small>(hs-07)</small></dd>", "<dd>1 High St, Leeds</dd>",
                      "<dd>Ann, +44 113 000 0001</dd>", "<dd>Mon–Sat 05:00–18:00; Sun closed</dd>"):
            assert shown in card, (shown, card)
        now = wire.utcnow().astimezone(zoneinfo.ZoneInfo("Asia/Tokyo"))
        assert re.search(r"<dd>Asia/Tokyo \(there now: \w{3} \d\d:\d\d\)</dd>", card), card
        assert now.strftime("%a") in card or (now - timedelta(minutes=1)).strftime("%a") in card
    # a device placed nowhere: the card says so
    page = ann.c.get(f"/tickets/{new_ticket(app, 'nowhere-1')}").text
    assert "The device is not placed in a site." in page and 'id="site-details"' not in page
