"""Business-day arithmetic and review slots in a team's time zone."""

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from config import TeamConfig
from domain.scheduling import (
    WorkingHours,
    add_business_days,
    due_instant,
    is_business_day,
    local_instant,
    next_business_day,
    plan_review,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def test_weekends_are_not_business_days():
    assert is_business_day(date(2026, 11, 27))  # Friday
    assert not is_business_day(date(2026, 11, 28))  # Saturday
    assert not is_business_day(date(2026, 11, 29))  # Sunday


def test_next_business_day_skips_weekend_and_holidays():
    assert next_business_day(date(2026, 11, 27)) == date(2026, 11, 30)
    assert next_business_day(date(2026, 12, 24), {date(2026, 12, 25)}) == date(2026, 12, 28)


def test_add_business_days():
    assert add_business_days(date(2026, 11, 20), 0) == date(2026, 11, 20)
    assert add_business_days(date(2026, 11, 20), 5) == date(2026, 11, 27)  # Fri + 5 = Fri
    assert add_business_days(date(2026, 12, 23), 3, {date(2026, 12, 25)}) == date(2026, 12, 29)
    with pytest.raises(ValueError):
        add_business_days(date(2026, 1, 1), -1)


def test_working_hours_parse_and_refuse():
    assert WorkingHours.parse("09:30-17:30") == WorkingHours(time(9, 30), time(17, 30))
    with pytest.raises(ValueError, match="HH:MM-HH:MM"):
        WorkingHours.parse("nine to five")
    with pytest.raises(ValueError, match="end before they start"):
        WorkingHours.parse("17:00-09:00")


def test_local_instant_across_dst():
    # Berlin: CET (+1) in winter, CEST (+2) in summer.
    assert local_instant(date(2026, 1, 15), time(9), BERLIN) == datetime(2026, 1, 15, 8, tzinfo=UTC)
    assert local_instant(date(2026, 7, 15), time(9), BERLIN) == datetime(2026, 7, 15, 7, tzinfo=UTC)


def test_due_date_is_end_of_working_day_in_team_zone():
    assert due_instant(date(2027, 2, 15), NEW_YORK, WorkingHours(time(9), time(17, 30))) == (
        datetime(2027, 2, 15, 22, 30, tzinfo=UTC)
    )


def test_review_slot_is_next_business_morning_inside_window():
    resolved = datetime(2026, 11, 24, 15, tzinfo=UTC)  # Tuesday afternoon
    slot = plan_review(resolved_at=resolved, now=resolved, tz=BERLIN, window_business_days=5)
    assert slot.start == datetime(2026, 11, 25, 8, tzinfo=UTC)  # Wed 09:00 Berlin
    assert slot.window_end == datetime(2026, 12, 1, 16, tzinfo=UTC)  # Tue +5 bd, 17:00
    assert not slot.outside_window


def test_friday_evening_resolution_reviews_on_monday():
    resolved = datetime(2026, 11, 27, 21, tzinfo=UTC)  # Friday 22:00 Berlin
    slot = plan_review(resolved_at=resolved, now=resolved, tz=BERLIN, window_business_days=3)
    assert slot.start == datetime(2026, 11, 30, 8, tzinfo=UTC)  # Monday 09:00 Berlin
    assert slot.window_end == datetime(2026, 12, 2, 16, tzinfo=UTC)


def test_review_across_dst_change_keeps_local_hour():
    # US DST ends Sunday 2026-11-01: 09:30 New York is 13:30 UTC before, 14:30 UTC after.
    resolved = datetime(2026, 10, 30, 20, tzinfo=UTC)  # Friday 16:00 New York
    slot = plan_review(
        resolved_at=resolved,
        now=resolved,
        tz=NEW_YORK,
        window_business_days=3,
        hours=WorkingHours(time(9, 30), time(17, 30)),
    )
    assert slot.start == datetime(2026, 11, 2, 14, 30, tzinfo=UTC)


def test_holiday_moves_the_slot_and_the_window():
    resolved = datetime(2026, 12, 24, 12, tzinfo=UTC)  # Thursday
    slot = plan_review(
        resolved_at=resolved,
        now=resolved,
        tz=BERLIN,
        window_business_days=1,
        holidays={date(2026, 12, 25)},
    )
    assert slot.start == datetime(2026, 12, 28, 8, tzinfo=UTC)
    assert slot.window_end == datetime(2026, 12, 28, 16, tzinfo=UTC)


def test_window_already_over_gives_first_slot_after_now_and_says_so():
    resolved = datetime(2026, 11, 2, 12, tzinfo=UTC)
    now = datetime(2026, 11, 25, 12, tzinfo=UTC)  # Wednesday, weeks later
    slot = plan_review(resolved_at=resolved, now=now, tz=BERLIN, window_business_days=3)
    assert slot.outside_window
    assert slot.start == datetime(2026, 11, 26, 8, tzinfo=UTC)
    assert "3-business-day review window ended" in slot.reason


JERUSALEM = ZoneInfo("Asia/Jerusalem")


def test_a_team_s_weekend_is_its_country_s():
    """Israel rests Friday and Saturday: a Thursday-evening resolution is reviewed on
    Sunday, and the window counts Sunday to Thursday."""
    weekend = team_config(country="IL").weekend_days()
    assert weekend == {4, 5}
    resolved = datetime(2026, 11, 26, 17, tzinfo=UTC)  # Thursday 19:00 in Jerusalem
    slot = plan_review(
        resolved_at=resolved, now=resolved, tz=JERUSALEM, window_business_days=3, weekend=weekend
    )
    assert slot.start == datetime(2026, 11, 29, 7, tzinfo=UTC)  # Sunday 09:00
    assert slot.window_end == datetime(2026, 12, 1, 15, tzinfo=UTC)  # Tuesday 17:00
    # A Monday-to-Friday week would have put it on Friday, a day off there.
    friday = plan_review(resolved_at=resolved, now=resolved, tz=JERUSALEM, window_business_days=3)
    assert friday.start == datetime(2026, 11, 27, 7, tzinfo=UTC)


def test_the_weekend_comes_from_the_country_unless_the_team_sets_it():
    assert team_config().weekend_days() == {5, 6}  # no country: Saturday and Sunday
    assert team_config(country="DE").weekend_days() == {5, 6}
    assert team_config(country="IR").weekend_days() == {4}  # Friday alone
    assert team_config(country="IL", weekend=["sat", "sun"]).weekend_days() == {5, 6}
    assert not is_business_day(date(2026, 11, 27), weekend={4, 5})  # a Friday in Israel
    assert is_business_day(date(2026, 11, 29), weekend={4, 5})  # a Sunday there
    with pytest.raises(ValueError, match="no business day"):
        next_business_day(date(2026, 11, 27), weekend=range(7))
    with pytest.raises(ValidationError):
        team_config(weekend=["someday"])


def team_config(**fields: object) -> TeamConfig:
    return TeamConfig.model_validate({"manager": "lee@example.com", **fields})
