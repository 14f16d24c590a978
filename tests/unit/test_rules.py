from datetime import datetime, timedelta, timezone

from server.domain import rules

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=timezone.utc)
SLA = {"1": {"respond_min": 15, "resolve_min": 240}, "3": {"respond_min": 120}}


def test_long_press_is_one_step_more_urgent_but_never_above_one():
    assert rules.press_priority(3, "long") == 2
    assert rules.press_priority(1, "long") == 1
    assert rules.press_priority(3, "single") == 3
    assert rules.press_priority(3, "double") == 3


def test_sla_deadlines_follow_the_priority():
    d = rules.sla_deadlines(T0, 1, SLA)
    assert d.respond_by == T0 + timedelta(minutes=15) and d.resolve_by == T0 + timedelta(hours=4)
    d3 = rules.sla_deadlines(T0, 3, SLA)
    assert d3.respond_by == T0 + timedelta(hours=2) and d3.resolve_by is None
    assert rules.sla_deadlines(T0, 4, SLA) == rules.Deadlines(None, None)


def test_the_sla_clock_starts_at_creation_later_by_the_time_on_hold():
    assert rules.sla_start(T0, 0, None, T0 + timedelta(days=3)) == T0
    assert rules.sla_start(T0, None, None, T0) == T0  # a ticket from before holds were counted
    assert rules.sla_start(T0, 600, None, T0 + timedelta(hours=5)) == T0 + timedelta(minutes=10)


def test_a_hold_still_running_counts_up_to_now_in_whole_seconds():
    since = T0 + timedelta(minutes=30)
    now = since + timedelta(minutes=15, seconds=0.9)
    assert rules.sla_start(T0, 600, since, now) == T0 + timedelta(minutes=25)
    assert rules.sla_start(T0, 0, since, since) == T0
    # a clock that went back (another server's) never moves the start earlier
    assert rules.sla_start(T0, 600, since, since - timedelta(minutes=5)) == T0 + timedelta(minutes=10)


def test_deadlines_count_from_the_sla_start():
    start = rules.sla_start(T0, 3600, None, T0 + timedelta(hours=2))
    d = rules.sla_deadlines(start, 1, SLA)
    assert d.respond_by == T0 + timedelta(hours=1, minutes=15) and d.resolve_by == T0 + timedelta(hours=5)


def test_late_press_is_one_that_waited_longer_than_the_limit():
    assert rules.is_late(T0, T0 + timedelta(seconds=31), 30)
    assert not rules.is_late(T0, T0 + timedelta(seconds=29), 30)


def test_within_counts_only_forward_in_time():
    assert rules.within(T0, T0 + timedelta(seconds=120), 120)
    assert not rules.within(T0, T0 + timedelta(seconds=121), 120)
    assert not rules.within(T0 + timedelta(seconds=5), T0, 120)
    assert not rules.within(None, T0, 120)


def test_dedup_scope_is_the_site_or_else_the_device():
    assert rules.dedup_scope(7, "shop-1") == "site:7"
    assert rules.dedup_scope(None, "shop-1") == "device:shop-1"


def test_ticket_numbers_round_trip():
    assert rules.ticket_number(42) == "INC-000042"
    assert rules.parse_ticket_number("inc-000042") == 42
    assert rules.parse_ticket_number("42") == 42
    assert rules.parse_ticket_number("INC-x") is None
