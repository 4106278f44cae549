"""Alerting tools as incident sources: Prometheus Alertmanager, Grafana OnCall, Opsgenie."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from domain.intake import EventKind, IncidentEvent
from integrations.payload import items
from integrations.timestamps import parse_timestamp

NEVER = "0001-01-01T00:00:00Z"  # Alertmanager's endsAt while an alert fires


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _time(value: Any) -> datetime | None:
    if value in (None, "", NEVER):
        return None
    return parse_timestamp(value)


def _text(value: Any) -> str:
    return str(value) if isinstance(value, str | int) and not isinstance(value, bool) else ""


def alertmanager(
    payload: dict[str, Any], team_label: str = "team", service_label: str = "service"
) -> IncidentEvent:
    """A notification group; resolved only when every alert in it is (Alertmanager's rule)."""
    group_key = _text(payload.get("groupKey"))
    if not group_key:
        raise ValueError("`groupKey` is missing")
    alerts = [a for a in items(payload.get("alerts")) if isinstance(a, dict)]
    labels, annotations = (
        _dict(payload.get("commonLabels")),
        _dict(payload.get("commonAnnotations")),
    )
    resolved = payload.get("status") == "resolved"
    starts = [t for t in (_time(a.get("startsAt")) for a in alerts) if t]
    ends = [t for t in (_time(a.get("endsAt")) for a in alerts) if t]
    team = _text(labels.get(team_label))
    return IncidentEvent(
        source="alertmanager",
        kind=EventKind.RESOLVED if resolved else EventKind.OTHER,
        # The group key holds braces and quotes: a stable digest is the incident's id.
        incident_id="am-" + hashlib.sha256(group_key.encode()).hexdigest()[:16],
        title=_text(annotations.get("summary")) or _text(labels.get("alertname")),
        started_at=min(starts) if starts else None,
        resolved_at=max(ends) if ends and resolved else None,
        occurred_at=max(ends) if ends else None,
        url=_text(payload.get("externalURL")) or None,
        summary=_text(annotations.get("description")),
        severity_name=_text(labels.get("severity")) or None,
        service=_text(labels.get(service_label)) or None,
        teams=(team,) if team else (),
        detail="" if resolved else f"group status {payload.get('status')!r}: only resolved starts",
    )


GRAFANA_KINDS = {"resolve": EventKind.RESOLVED, "unresolve": EventKind.REOPENED}


def grafana_oncall(
    payload: dict[str, Any], team_label: str = "team", service_label: str = "service"
) -> IncidentEvent:
    event, group = _dict(payload.get("event")), _dict(payload.get("alert_group"))
    kind = GRAFANA_KINDS.get(_text(event.get("type")), EventKind.OTHER)
    group_id = _text(group.get("id") or payload.get("alert_group_id"))
    if kind is not EventKind.OTHER and not group_id:
        raise ValueError("`alert_group.id` is missing")
    labels = _dict(group.get("labels"))
    integration = _dict(payload.get("integration"))
    team = _text(labels.get(team_label)) or _text(integration.get("team"))
    return IncidentEvent(
        source="grafana-oncall",
        kind=kind,
        incident_id=group_id or "-",
        title=_text(group.get("title")),
        started_at=_time(group.get("created_at")),
        resolved_at=_time(group.get("resolved_at")) or _time(event.get("time"))
        if kind is EventKind.RESOLVED
        else None,
        occurred_at=_time(event.get("time")),
        url=_text(_dict(group.get("permalinks")).get("web")) or None,
        severity_name=_text(labels.get("severity")) or None,
        # The service label, else the integration (one per monitored system, as a rule).
        service=_text(labels.get(service_label)) or _text(integration.get("name")) or None,
        teams=(team,) if team else (),
        detail=f"event type {event.get('type')!r} is not followed",
    )


def opsgenie(payload: dict[str, Any]) -> IncidentEvent:
    action = _text(payload.get("action"))
    alert = _dict(payload.get("alert"))
    closed = action == "Close"
    alert_id = _text(alert.get("tinyId")) or _text(alert.get("alertId"))
    if closed and not alert_id:
        raise ValueError("`alert.alertId` is missing")
    tags = tuple(t for t in items(alert.get("tags")) if isinstance(t, str))
    team_tags = tuple(t.split(":", 1)[1] for t in tags if t.startswith("team:"))
    return IncidentEvent(
        source="opsgenie",
        kind=EventKind.RESOLVED if closed else EventKind.OTHER,
        incident_id=alert_id or "-",
        title=_text(alert.get("message")),
        started_at=_time(alert.get("createdAt")),  # epoch milliseconds
        resolved_at=_time(alert.get("updatedAt")) if closed else None,  # epoch nanoseconds
        occurred_at=_time(alert.get("updatedAt")),
        priority=_text(alert.get("priority")) or None,
        # The alert's entity, else a "service:<name>" tag.
        service=_text(alert.get("entity"))
        or next((t.split(":", 1)[1] for t in tags if t.startswith("service:")), None),
        teams=team_tags,
        responders=(_text(alert.get("username")),) if alert.get("username") else (),
        detail=f"action {action!r} is not followed",
    )
