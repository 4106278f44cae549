"""Scheduling's rules at their edges: the cases mutation testing showed no test pinned down."""

import time as clock
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from domain.scheduling import (
    WorkingHours,
    add_business_days,
    choose_facilitator,
    local_instant,
    plan_review,
    review_participants,
    same_person,
)

BERLIN = ZoneInfo("Europe/Berlin")
AUCKLAND = ZoneInfo("Pacific/Auckland")


@pytest.fixture
def server_in_tokyo(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process's own time zone must never leak into a team's times."""
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    clock.tzset()
    yield
    monkeypatch.undo()
    clock.tzset()


def test_working_hours_that_end_as_they_start_are_refused():
    with pytest.raises(ValueError, match="end before they start"):
        WorkingHours.parse("09:00-09:00")


def test_a_negative_count_says_so():
    with pytest.raises(ValueError, match=r"^count must not be negative$"):
        add_business_days(date(2026, 1, 1), -1)


def test_instants_are_utc_whatever_the_server_zone(server_in_tokyo: None):
    instant = local_instant(date(2026, 1, 15), time(9), BERLIN)
    assert instant.utcoffset() == timedelta(0)
    assert instant.isoformat() == "2026-01-15T08:00:00+00:00"


def test_the_resolution_day_is_the_team_s_day():
    # 20:00 UTC Thursday is 09:00 Friday in Auckland: the review is on Monday there.
    resolved = datetime(2026, 11, 19, 20, tzinfo=UTC)
    slot = plan_review(resolved_at=resolved, now=resolved, tz=AUCKLAND, window_business_days=1)
    assert slot.start == local_instant(date(2026, 11, 23), time(9), AUCKLAND)
    assert slot.window_end == local_instant(date(2026, 11, 23), time(17), AUCKLAND)
    assert slot.timezone == "Pacific/Auckland"
    assert not slot.outside_window


def test_a_slot_starting_right_now_is_not_taken():
    resolved = datetime(2026, 11, 24, 15, tzinfo=UTC)  # Tuesday
    now = datetime(2026, 11, 25, 8, tzinfo=UTC)  # Wednesday 09:00 Berlin: the slot itself
    slot = plan_review(resolved_at=resolved, now=now, tz=BERLIN, window_business_days=5)
    assert slot.start == datetime(2026, 11, 26, 8, tzinfo=UTC)  # Thursday 09:00
    assert not slot.outside_window


def test_a_slot_exactly_at_the_window_end_is_inside_it():
    # Cairo's clocks jump from 00:00 to 01:00 on Friday 2026-04-24: with working hours
    # 00:00-01:00 that day's opening and closing are one instant.
    cairo = ZoneInfo("Africa/Cairo")
    resolved = datetime(2026, 4, 23, 10, tzinfo=UTC)
    slot = plan_review(
        resolved_at=resolved,
        now=resolved,
        tz=cairo,
        window_business_days=1,
        hours=WorkingHours(time(0), time(1)),
    )
    assert slot.start == slot.window_end == datetime(2026, 4, 23, 22, tzinfo=UTC)
    assert not slot.outside_window
    assert slot.reason == ""


def test_outside_the_window_the_reason_is_in_the_team_s_zone(server_in_tokyo: None):
    resolved = datetime(2026, 11, 2, 12, tzinfo=UTC)
    now = datetime(2026, 11, 25, 12, tzinfo=UTC)
    slot = plan_review(resolved_at=resolved, now=now, tz=BERLIN, window_business_days=3)
    assert slot.outside_window
    assert slot.timezone == "Europe/Berlin"
    assert slot.reason == (
        "the 3-business-day review window ended Thu 2026-11-05 17:00 CET; "
        "this is the first slot after it"
    )


def test_the_first_slot_after_now_skips_holidays():
    resolved = datetime(2026, 11, 2, 12, tzinfo=UTC)
    now = datetime(2026, 11, 25, 12, tzinfo=UTC)  # Wednesday
    slot = plan_review(
        resolved_at=resolved,
        now=now,
        tz=BERLIN,
        window_business_days=3,
        holidays={date(2026, 11, 26)},
    )
    assert slot.start == datetime(2026, 11, 27, 8, tzinfo=UTC)  # Friday, not Thursday


def test_the_first_slot_after_now_counts_from_the_team_s_day():
    # 23:30 UTC Wednesday is already Thursday 12:30 in Auckland: the next opening is Friday.
    resolved = datetime(2026, 11, 2, 12, tzinfo=UTC)
    now = datetime(2026, 11, 25, 23, 30, tzinfo=UTC)
    slot = plan_review(resolved_at=resolved, now=now, tz=AUCKLAND, window_business_days=3)
    assert slot.start == local_instant(date(2026, 11, 27), time(9), AUCKLAND)


def test_same_person_across_names_and_addresses():
    assert same_person("Sam Jones", "sam.jones@example.com")
    assert same_person("sam.jones@example.com", "Sam Jones")
    assert same_person("SAM.JONES@example.com", "sam.jones@example.com")
    assert same_person("  sam_jones ", "Sam-Jones")
    assert same_person("Sam  Jones", "sam.jones")
    assert not same_person("sam.jones@example.com", "sam.jones@other.example")
    assert not same_person("Sam Jones", "Sam Jonas")
    assert not same_person("sam.jones@example.com", "jones.sam@example.com")
    # The part after the @ is not the person: a name never matches a domain.
    assert not same_person("example.com", "sam@example.com")
    assert same_person("Sam", "sam@example.com@relay")
    # Words run together are another name, not the same one.
    assert not same_person("samjones", "sam.jones@example.com")


def test_facilitator_rotation_takes_the_turn_and_skips_responders():
    team = ["ana@example.com", "ben@example.com", "cy@example.com"]
    assert choose_facilitator(team, [], 0) == ("ana@example.com", "")
    assert choose_facilitator(team, [], 1) == ("ben@example.com", "")
    assert choose_facilitator(team, [], 5) == ("cy@example.com", "")
    # Ben responded: his turn passes to the next one in the rotation, not the previous one.
    assert choose_facilitator(team, ["Ben"], 1) == ("cy@example.com", "")
    assert choose_facilitator(team, ["ben@example.com", "Cy"], 1) == ("ana@example.com", "")


def test_facilitator_when_everyone_responded_or_nobody_is_configured():
    team = ["ana@example.com", "ben@example.com"]
    assert choose_facilitator(team, ["Ana", "Ben"], 1) == (
        "ben@example.com",
        "every facilitator responded to the incident; the rotation's turn applies",
    )
    assert choose_facilitator([], ["Ana"], 0) == (None, "the team has no facilitators configured")


def test_participants_each_once_in_order_without_blanks():
    people = review_participants(
        [" Kim Lee ", "kim.lee@example.com", "  ", "Ray"],
        "ray@example.com",
        None,
        "dana.manager@example.com",
    )
    assert people == ["Kim Lee", "Ray", "dana.manager@example.com"]
    assert review_participants([], None, "fay@example.com", "Fay") == ["fay@example.com"]
    assert review_participants([], "", "", "dana") == ["dana"]
