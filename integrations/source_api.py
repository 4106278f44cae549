"""One GET against an incident tool's REST API, its failures mapped to our typed errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import requests
from pydantic import BaseModel, Field

from domain import limits
from domain.models import TimelineEntry
from integrations.errors import SourceRejected, SourceUnavailable


class LogProgress(BaseModel):
    """How far an import of an incident's log got: the next page's cursor (an offset, an
    `after` id) and the entries read before it. A 429 or an outage mid-way carries it on
    LogInterrupted.progress; the next try starts from it, not from the first page."""

    cursor: str = ""
    entries: list[TimelineEntry] = Field(default_factory=list)


class LogInterrupted(SourceUnavailable):
    """A log import cut off mid-way (a 429, an outage): retry later, from `progress`."""

    def __init__(self, cause: SourceUnavailable, progress: LogProgress) -> None:
        super().__init__(str(cause), retry_after=cause.retry_after)
        self.progress = progress


def interrupted(exc: SourceUnavailable, progress: LogProgress) -> LogInterrupted:
    return LogInterrupted(exc, progress)


def clipped_note(source: str, entries: list[TimelineEntry], total: int | None) -> TimelineEntry:
    """The last entry of a log imported in part: what was left out, and where it is."""
    of = f"{total:,}" if total else "more"
    return TimelineEntry(
        at=max(e.at for e in entries),
        text=(
            f"The {source} log was imported in part: {len(entries):,} of {of} entries (an "
            f"import takes at most {limits.IMPORTED_ENTRIES:,} entries and "
            f"{limits.TIMELINE_BYTES / 1e3:.0f} kB); the rest is in {source}."
        ),
        source=source,
    )


def within_import(entries: list[TimelineEntry]) -> tuple[list[TimelineEntry], bool]:
    """The entries an import keeps, in the order read: at most limits.IMPORTED_ENTRIES and
    limits.TIMELINE_BYTES (what the timeline could hold), so the activity's result and its
    heartbeat stay far under Temporal's payload limit. True when some were left out."""
    kept: list[TimelineEntry] = []
    size = 2
    for entry in entries[: limits.IMPORTED_ENTRIES]:
        size += limits.json_bytes(entry) + 1
        if size > limits.TIMELINE_BYTES:
            break
        kept.append(entry)
    return kept, len(kept) < len(entries) or len(kept) >= limits.IMPORTED_ENTRIES


def get_json(
    url: str,
    *,
    where: str,
    params: dict[str, Any],
    headers: dict[str, str],
    timeout: float,
    reason: Callable[[Any], str] = lambda body: "",
) -> dict[str, Any]:
    """The JSON object answered, or SourceUnavailable (429, 5xx, connection: retry later) /
    SourceRejected (other 4xx; `reason` reads the tool's own message from the body)."""
    try:
        response = requests.get(url, params=params, headers=headers, timeout=timeout)
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise SourceUnavailable(f"{where}: {type(exc).__name__}") from None
    except (requests.RequestException, ValueError) as exc:
        # An unsendable request (a token with a newline, a bad URL): its text may quote the
        # header, so only the kind is kept. No retry fixes it: the configuration must.
        raise SourceRejected(
            f"{where}: the request could not be sent ({type(exc).__name__})"
        ) from None
    if response.status_code == 429 or response.status_code >= 500:
        retry = response.headers.get("Retry-After")
        raise SourceUnavailable(
            f"{where}: HTTP {response.status_code}",
            retry_after=float(retry) if retry and retry.isdigit() else None,
        )
    if response.status_code >= 400:
        try:
            message = reason(response.json())
        except (ValueError, AttributeError):
            message = ""
        raise SourceRejected(f"{where}: HTTP {response.status_code}: {message or 'refused'}")
    try:
        body = response.json()
    except ValueError:  # cut off on the way (a proxy, a restart): the next try may be whole
        raise SourceUnavailable(f"{where}: the answer is not JSON") from None
    return body if isinstance(body, dict) else {}
