"""When an incident can have happened: the rule every boundary (webhooks, the CLI) applies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain.intake import CLOCK_SKEW, EARLIEST, check_times

NOW = datetime(2026, 12, 2, 12, tzinfo=UTC)


def test_times_within_the_floor_and_the_skew_pass():
    check_times(NOW, NOW + CLOCK_SKEW, NOW - timedelta(hours=2))
    check_times(NOW, EARLIEST, None)
    check_times(NOW, None, None)


@pytest.mark.parametrize(
    ("resolved", "started", "words"),
    [
        (NOW + CLOCK_SKEW + timedelta(seconds=1), None, "resolved_at .* is in the future"),
        (datetime(9999, 12, 31, tzinfo=UTC), None, "in the future"),
        (EARLIEST - timedelta(seconds=1), None, "resolved_at .* is before 2000"),
        (NOW, datetime(1900, 1, 1, tzinfo=UTC), "started_at .* is before 2000"),
        (NOW, NOW + timedelta(minutes=1), "started_at is after resolved_at"),
    ],
)
def test_times_outside_are_refused_with_the_reason(resolved, started, words):
    with pytest.raises(ValueError, match=words):
        check_times(NOW, resolved, started)
