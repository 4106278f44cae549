"""PagerDuty as an incident source: the v3 webhook, read leniently."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from domain import limits
from domain.intake import EventKind, IncidentEvent
from domain.models import TimelineEntry
from integrations.errors import SourceUnavailable
from integrations.payload import items
from integrations.source_api import (
    LogProgress,
    clipped_note,
    get_json,
    interrupted,
    within_import,
)
from integrations.timestamps import parse_timestamp

KINDS = {"incident.resolved": EventKind.RESOLVED, "incident.reopened": EventKind.REOPENED}


def parse_webhook(payload: dict[str, Any]) -> IncidentEvent:
    """`{"event": {...}}` -> our event. Fields may be missing or null: nothing is assumed."""
    event = payload.get("event")
    if not isinstance(event, dict):
        raise ValueError("no `event` object")
    event_type = str(event.get("event_type") or "")
    raw = event.get("data")
    data: dict[str, Any] = raw if isinstance(raw, dict) else {}
    incident_id = str(data.get("id") or "")
    kind = KINDS.get(event_type, EventKind.OTHER)
    if kind is not EventKind.OTHER and not incident_id:
        raise ValueError("`event.data.id` is missing")
    occurred = _time(event.get("occurred_at"))
    return IncidentEvent(
        source="pagerduty",
        kind=kind,
        incident_id=incident_id or "-",
        title=str(data.get("title") or ""),
        started_at=_time(data.get("created_at")),
        resolved_at=occurred if kind is EventKind.RESOLVED else None,
        occurred_at=occurred,
        url=_str(data.get("html_url")),
        summary=_str(data.get("resolve_reason")) or "",
        responders=tuple(
            str(a.get("summary")) for a in items(data.get("assignees")) if isinstance(a, dict)
        ),
        priority=_summary(data.get("priority")),
        urgency=_str(data.get("urgency")),
        service=_id(data.get("service")),
        service_name=_summary(data.get("service")),
        teams=tuple(t for t in (_id(t) for t in items(data.get("teams"))) if t),
        detail="" if kind is not EventKind.OTHER else f"event type {event_type!r} is not followed",
    )


def _str(value: Any) -> str | None:
    return str(value) if isinstance(value, str) and value else None


def _id(ref: Any) -> str | None:
    return _str(ref.get("id")) if isinstance(ref, dict) else None


def _summary(ref: Any) -> str | None:
    return _str(ref.get("summary")) if isinstance(ref, dict) else None


def _time(value: Any) -> datetime | None:
    return parse_timestamp(value) if value else None


# PagerDuty's classic pagination answers only while offset + limit <= 10,000.
OFFSET_CAP = 10_000


class PagerDutyClient:
    """The REST API calls the engine makes: an incident's log, for its timeline."""

    def __init__(self, api_url: str, token: str, timeout: float = 10.0) -> None:
        self._url = api_url.rstrip("/")
        self._token = token
        self._timeout = timeout

    def log_entries(
        self, incident_id: str, limit: int = 100, resume: LogProgress | None = None
    ) -> list[TimelineEntry]:
        """The incident's log entries, oldest first: who did what, and when. At most
        limits.IMPORTED_ENTRIES and limits.TIMELINE_BYTES, with a last entry saying what was
        left out; never past PagerDuty's cap on classic pagination (offset + limit <=
        10,000)."""
        entries = list(resume.entries) if resume else []
        offset = int(resume.cursor or 0) if resume else 0
        total: int | None = None
        while True:
            entries, full = within_import(entries)
            if full or offset + limit > OFFSET_CAP:
                entries.sort(key=lambda e: e.at)
                return [*entries, clipped_note("pagerduty", entries, total)]
            try:
                page = self._get(
                    f"/incidents/{incident_id}/log_entries",
                    {"limit": limit, "offset": offset, "is_overview": "false", "total": "true"},
                )
            except SourceUnavailable as exc:
                raise interrupted(exc, LogProgress(cursor=str(offset), entries=entries)) from None
            total = page.get("total") if isinstance(page.get("total"), int) else total
            for item in items(page.get("log_entries")):
                entry = _log_entry(item)
                if entry is not None:
                    entries.append(entry)
            if not page.get("more"):
                return sorted(entries, key=lambda e: e.at)
            offset += limit

    def _get(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        return get_json(
            self._url + path,
            where=f"pagerduty ({self._url})",
            params=params,
            headers={
                "Authorization": f"Token token={self._token}",
                "Accept": "application/vnd.pagerduty+json;version=2",
            },
            timeout=self._timeout,
            reason=lambda body: str(body.get("error", {}).get("message") or ""),
        )


def _log_entry(item: Any) -> TimelineEntry | None:
    if not isinstance(item, dict) or not item.get("created_at"):
        return None
    summary = _str(item.get("summary")) or str(item.get("type") or "log entry").replace("_", " ")
    channel = _summary(item.get("channel"))
    return TimelineEntry(
        at=parse_timestamp(item["created_at"]),
        text=limits.clip(summary, limits.TEXT),
        known=limits.clip(f"via {channel}", limits.NOTE) if channel else "",
        source="pagerduty",
    )
