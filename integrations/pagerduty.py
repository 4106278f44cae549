"""PagerDuty as an incident source: the v3 webhook, read leniently."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from domain.intake import EventKind, IncidentEvent
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
            str(a.get("summary")) for a in data.get("assignees") or [] if isinstance(a, dict)
        ),
        priority=_summary(data.get("priority")),
        urgency=_str(data.get("urgency")),
        service=_id(data.get("service")),
        teams=tuple(t for t in (_id(t) for t in data.get("teams") or []) if t),
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
