"""incident.io as an incident source: status updates through Svix-signed webhooks."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
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

RESOLVED_CATEGORIES = {"learning", "closed"}
PRIVATE_STUB = "a private incident: its details need the incident.io API (PM_INCIDENTIO_API_KEY)"
TOLERANCE_SECONDS = 300


def svix_signature_ok(
    secret: str, msg_id: str, timestamp: str, body: bytes, header: str, now: float
) -> str | None:
    """None when valid, else why not. Signed: "{id}.{timestamp}.{body}" with the base64 key
    after `whsec_`; any of the space-separated `v1,<base64>` values may match."""
    try:
        sent = int(timestamp)
    except ValueError:
        return "webhook-timestamp is not a number"
    if abs(now - sent) > TOLERANCE_SECONDS:
        return "webhook-timestamp is more than 5 minutes away (a replay?)"
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"))
    except (binascii.Error, ValueError):
        return "the configured secret is not a whsec_ base64 key"
    signed = f"{msg_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    for part in header.split():
        version, _, value = part.partition(",")
        if version == "v1" and hmac.compare_digest(expected.encode(), value.encode()):
            return None
    return "no webhook-signature matches"


def parse_webhook(
    payload: dict[str, Any], team_field: str = "team", service_field: str = "service"
) -> IncidentEvent:
    event_type = str(payload.get("event_type") or "")
    body = _obj(payload.get(event_type))
    if event_type.startswith("private_incident."):
        return IncidentEvent(
            source="incidentio",
            kind=EventKind.OTHER,
            incident_id=str(body.get("id") or "-"),
            external_id=str(body.get("id") or "") or None,
            private=True,
            detail=PRIVATE_STUB,
        )
    if event_type != "public_incident.incident_status_updated_v2":
        return IncidentEvent(
            source="incidentio",
            kind=EventKind.OTHER,
            incident_id="-",
            detail=f"event type {event_type!r} is not followed",
        )
    incident = _obj(body.get("incident"))
    new_status, old_status = _obj(body.get("new_status")), _obj(body.get("previous_status"))
    category = str(new_status.get("category") or "")
    if incident.get("mode") in ("test", "tutorial"):
        kind, detail = EventKind.OTHER, f"a {incident.get('mode')} incident"
    elif category in RESOLVED_CATEGORIES and old_status.get("category") not in RESOLVED_CATEGORIES:
        kind, detail = EventKind.RESOLVED, ""
    elif category == "live" and old_status.get("category") in RESOLVED_CATEGORIES:
        kind, detail = EventKind.REOPENED, ""
    else:
        kind, detail = EventKind.OTHER, f"status category {category!r} does not resolve it"
    reference = str(incident.get("reference") or incident.get("id") or "")
    if kind is not EventKind.OTHER and not reference:
        raise ValueError("the incident has no `reference` or `id`")
    updated = incident.get("updated_at")
    severity = _obj(incident.get("severity"))
    return IncidentEvent(
        source="incidentio",
        kind=kind,
        incident_id=reference or "-",
        external_id=str(incident.get("id") or "") or None,
        title=str(incident.get("name") or ""),
        started_at=parse_timestamp(incident["created_at"]) if incident.get("created_at") else None,
        resolved_at=parse_timestamp(updated) if updated and kind is EventKind.RESOLVED else None,
        occurred_at=parse_timestamp(updated) if updated else None,
        url=str(incident.get("permalink") or "") or None,
        summary=str(incident.get("summary") or ""),
        severity_name=str(severity.get("name") or "") or None,
        teams=_field_values(incident, team_field),
        service=_service(incident, service_field),
        private=incident.get("visibility") == "private",
        detail=detail,
    )


def _service(incident: dict[str, Any], field: str) -> str | None:
    """The custom field naming the service (its first value), else the first affected
    component of the catalog entries incident.io attaches (`affected_components`)."""
    values = _field_values(incident, field)
    if values:
        return values[0]
    for component in items(incident.get("affected_components")):
        if isinstance(component, dict) and component.get("name"):
            return str(component["name"])
    return None


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _field_values(incident: dict[str, Any], name: str) -> tuple[str, ...]:
    """Values of the custom field called `name` (case-insensitive): options or text."""
    values: list[str] = []
    for entry in items(incident.get("custom_field_entries")):
        field = entry.get("custom_field") if isinstance(entry, dict) else None
        if not isinstance(field, dict) or str(field.get("name", "")).lower() != name.lower():
            continue
        for value in items(entry.get("values")):
            if not isinstance(value, dict):
                continue
            option = value.get("value_option")
            text = option.get("value") if isinstance(option, dict) else value.get("value_text")
            if text:
                values.append(str(text))
    return tuple(values)


class IncidentIoClient:
    """The incident.io API calls the engine makes: a (private) incident, and its updates."""

    def __init__(self, api_url: str, api_key: str, timeout: float = 10.0) -> None:
        self._url = api_url.rstrip("/")
        self._key = api_key
        self._timeout = timeout

    def incident(self, incident_id: str) -> dict[str, Any]:
        return _obj(self._get(f"/v2/incidents/{incident_id}", {}).get("incident"))

    def log_entries(
        self, incident_id: str, resume: LogProgress | None = None
    ) -> list[TimelineEntry]:
        """The incident's updates (status changes and their messages), oldest first; at
        most limits.IMPORTED_ENTRIES and limits.TIMELINE_BYTES, with a last entry saying what
        was left out."""
        entries = list(resume.entries) if resume else []
        after: str | None = (resume.cursor or None) if resume else None
        while True:
            entries, full = within_import(entries)
            if full:
                entries.sort(key=lambda e: e.at)
                return [*entries, clipped_note("incident.io", entries, None)]
            params: dict[str, Any] = {"incident_id": incident_id, "page_size": 25}
            if after:
                params["after"] = after
            try:
                page = self._get("/v2/incident_updates", params)
            except SourceUnavailable as exc:
                raise interrupted(exc, LogProgress(cursor=after or "", entries=entries)) from None
            for update in items(page.get("incident_updates")):
                entry = _update_entry(update)
                if entry is not None:
                    entries.append(entry)
            after = _obj(page.get("pagination_meta")).get("after")
            if not after:
                return sorted(entries, key=lambda e: e.at)

    def _get(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        return get_json(
            self._url + path,
            where=f"incident.io ({self._url})",
            params=params,
            headers={"Authorization": f"Bearer {self._key}"},
            timeout=self._timeout,
        )


def event_from_incident(
    incident: dict[str, Any], team_field: str = "team", service_field: str = "service"
) -> IncidentEvent:
    """A fetched incident (for a private stub): resolved if its status category says so."""
    status = _obj(incident.get("incident_status"))
    category = str(status.get("category") or "")
    resolved = category in RESOLVED_CATEGORIES
    updated = incident.get("updated_at")
    return IncidentEvent(
        source="incidentio",
        kind=EventKind.RESOLVED if resolved else EventKind.OTHER,
        incident_id=str(incident.get("reference") or incident.get("id") or "-"),
        external_id=str(incident.get("id") or "") or None,
        title=str(incident.get("name") or ""),
        started_at=parse_timestamp(incident["created_at"]) if incident.get("created_at") else None,
        resolved_at=parse_timestamp(updated) if updated and resolved else None,
        occurred_at=parse_timestamp(updated) if updated else None,
        url=str(incident.get("permalink") or "") or None,
        summary=str(incident.get("summary") or ""),
        severity_name=str(_obj(incident.get("severity")).get("name") or "") or None,
        teams=_field_values(incident, team_field),
        service=_service(incident, service_field),
        private=True,
        detail="" if resolved else f"status category {category!r} does not resolve it",
    )


def _update_entry(update: Any) -> TimelineEntry | None:
    if not isinstance(update, dict) or not update.get("created_at"):
        return None
    status = _obj(update.get("new_incident_status")).get("name")
    message = str(update.get("message") or "")
    text = f"Status: {status}" + (f" — {message}" if message else "") if status else message
    who = _obj(_obj(update.get("updater")).get("user")).get("name")
    return TimelineEntry(
        at=parse_timestamp(update["created_at"]),
        text=limits.clip(text or "update", limits.TEXT),
        known=limits.clip(f"posted by {who}", limits.NOTE) if who else "",
        source="incidentio",
    )
