"""Timestamps as incident tools write them: ISO 8601, with or without zone, epoch numbers,
nanoseconds, and `2023-07-25 13:34:49 UTC`. Always an aware UTC instant, or ValueError."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_UTC_SUFFIX = re.compile(r"^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2}(?:\.\d+)?) ?(UTC|GMT|Z)$")
_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_timestamp(value: object) -> datetime:
    try:
        return _parse(value)
    except (OverflowError, OSError) as exc:  # 1e30, Infinity: no calendar holds it
        raise ValueError(f"{str(value)[:40]!r} is not a time we can read") from exc


def _parse(value: object) -> datetime:
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a time")
    if isinstance(value, int):
        return _from_epoch_int(value)
    if isinstance(value, float):
        return _from_epoch(value)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{value!r} is not a time")
    text = value.strip()
    if re.fullmatch(r"\d+", text):
        return _from_epoch_int(int(text))
    if re.fullmatch(r"\d+\.\d+", text):
        return _from_epoch(float(text))
    match = _UTC_SUFFIX.match(text)
    if match:
        text = f"{match.group(1)}T{match.group(2)}+00:00"
    text = _FRACTION.sub(r"\1", text.replace("Z", "+00:00"))  # ns precision: keep µs
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{value!r} is not a time we can read") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _from_epoch(number: float) -> datetime:
    """Seconds, milliseconds or nanoseconds since the epoch, by magnitude."""
    if number > 1e17:
        number /= 1e9
    elif number > 1e11:
        number /= 1e3
    return datetime.fromtimestamp(number, tz=UTC)


def _from_epoch_int(number: int) -> datetime:
    """Integer arithmetic: a 19-digit nanosecond count is beyond a float's precision."""
    if number > 10**17:
        seconds, nanos = divmod(number, 10**9)
    elif number > 10**11:
        seconds, nanos = divmod(number * 10**6, 10**9)
    else:
        seconds, nanos = number, 0
    return datetime.fromtimestamp(seconds, tz=UTC) + timedelta(microseconds=nanos // 1000)
