"""Business-day arithmetic in a team's time zone: review windows, slots and due instants."""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from domain.models import ReviewSlot


@dataclass(frozen=True)
class WorkingHours:
    start: time = time(9, 0)
    end: time = time(17, 0)

    @classmethod
    def parse(cls, text: str) -> WorkingHours:
        """'09:00-17:00' -> WorkingHours; raises ValueError with the reason."""
        try:
            first, last = (part.strip() for part in text.split("-"))
            start, end = time.fromisoformat(first), time.fromisoformat(last)
        except ValueError:
            raise ValueError(f"working hours {text!r} are not of the form HH:MM-HH:MM") from None
        if start >= end:
            raise ValueError(f"working hours {text!r} end before they start")
        return cls(start, end)


# Saturday and Sunday (date.weekday() numbers); a team's country may have others
# (Friday and Saturday in Israel, Friday alone in Iran), from the `holidays` package.
WEEKEND: frozenset[int] = frozenset({5, 6})


def is_business_day(
    day: date, holidays: Collection[date] = (), weekend: Collection[int] = WEEKEND
) -> bool:
    return day.weekday() not in weekend and day not in holidays


def next_business_day(
    day: date, holidays: Collection[date] = (), weekend: Collection[int] = WEEKEND
) -> date:
    """The first business day strictly after `day`."""
    if len(set(weekend)) >= 7:
        raise ValueError("a week with no working day has no business day")
    day += timedelta(days=1)
    while not is_business_day(day, holidays, weekend):
        day += timedelta(days=1)
    return day


def add_business_days(
    day: date, count: int, holidays: Collection[date] = (), weekend: Collection[int] = WEEKEND
) -> date:
    """The `count`-th business day after `day` (count >= 0; 0 gives `day` itself)."""
    if count < 0:
        raise ValueError("count must not be negative")
    for _ in range(count):
        day = next_business_day(day, holidays, weekend)
    return day


def local_instant(day: date, at: time, tz: ZoneInfo) -> datetime:
    """A wall-clock time on a day in `tz`, as an aware UTC instant.

    zoneinfo resolves a wall time skipped by a DST jump with the offset before the jump and
    an ambiguous one with its first occurrence (fold=0); both give one defined instant.
    """
    return datetime.combine(day, at, tzinfo=tz).astimezone(UTC)


def due_instant(day: date, tz: ZoneInfo, hours: WorkingHours = WorkingHours()) -> datetime:
    """A due *date* means the end of that working day in the owner's team time zone."""
    return local_instant(day, hours.end, tz)


def plan_review(
    *,
    resolved_at: datetime,
    now: datetime,
    tz: ZoneInfo,
    window_business_days: int,
    hours: WorkingHours = WorkingHours(),
    holidays: Collection[date] = (),
    weekend: Collection[int] = WEEKEND,
) -> ReviewSlot:
    """The first review slot: the start of the first business day after the resolution,
    never in the past, and the window's end (close of the N-th business day after it).

    When no slot fits (resolution long ago), the slot is the first one after `now` and is
    marked outside the window with the reason, so the caller can say so.
    """
    resolved_day = resolved_at.astimezone(tz).date()
    window_end = local_instant(
        add_business_days(resolved_day, window_business_days, holidays, weekend), hours.end, tz
    )
    slot = local_instant(next_business_day(resolved_day, holidays, weekend), hours.start, tz)
    if slot <= now:
        slot = _first_slot_after(now, tz, hours, holidays, weekend)
    if slot > window_end:
        return ReviewSlot(
            start=slot,
            window_end=window_end,
            timezone=str(tz),
            outside_window=True,
            reason=(
                f"the {window_business_days}-business-day review window ended "
                f"{window_end.astimezone(tz):%a %Y-%m-%d %H:%M %Z}; "
                "this is the first slot after it"
            ),
        )
    return ReviewSlot(start=slot, window_end=window_end, timezone=str(tz))


def _first_slot_after(
    now: datetime,
    tz: ZoneInfo,
    hours: WorkingHours,
    holidays: Collection[date],
    weekend: Collection[int],
) -> datetime:
    # Give people at least the rest of today: the next business day's opening.
    day = next_business_day(now.astimezone(tz).date(), holidays, weekend)
    return local_instant(day, hours.start, tz)


def same_person(a: str, b: str) -> bool:
    """'Sam Jones', 'sam.jones@example.com' and 'SAM.JONES@example.com' are one person."""

    def key(who: str) -> str:
        return re.sub(r"[\s._-]+", ".", who.strip().lower().split("@", 1)[0])

    a, b = a.strip().lower(), b.strip().lower()
    if a == b:
        return True
    if "@" in a and "@" in b:
        return False  # two addresses differ, even with the same local part
    return key(a) == key(b)


def choose_facilitator(
    facilitators: Sequence[str], responders: Sequence[str], turn: int
) -> tuple[str | None, str]:
    """The `turn`-th in the rotation, skipping anyone who responded to the incident (they
    were there; someone who was not asks better questions). Returns the choice and a note."""
    if not facilitators:
        return None, "the team has no facilitators configured"
    count = len(facilitators)
    ordered = [facilitators[(turn + i) % count] for i in range(count)]
    for candidate in ordered:
        if not any(same_person(candidate, r) for r in responders):
            return candidate, ""
    return ordered[0], "every facilitator responded to the incident; the rotation's turn applies"


def review_participants(
    responders: Sequence[str], owner: str | None, facilitator: str | None, manager: str
) -> list[str]:
    """Responders, the owner, the facilitator and the manager, each once, in that order."""
    people: list[str] = []
    for who in [*responders, owner, facilitator, manager]:
        if who and who.strip() and not any(same_person(who, p) for p in people):
            people.append(who.strip())
    return people
