"""Incident intake: what an incident tool reported, normalised, and how it maps to our terms."""

from __future__ import annotations

import dataclasses
import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from domain import limits
from domain.models import IDENTIFIER, Incident, Severity, TimelineEntry, service_name


class EventKind(StrEnum):
    RESOLVED = "resolved"
    REOPENED = "reopened"
    OTHER = "other"


@dataclass(frozen=True)
class IncidentEvent:
    """One delivery from an incident tool, in our words but not yet in our teams/severities."""

    source: str
    kind: EventKind
    incident_id: str
    external_id: str | None = None  # the tool's internal id, where it differs (API calls)
    title: str = ""
    started_at: datetime | None = None
    resolved_at: datetime | None = None
    occurred_at: datetime | None = None  # when the tool says this event happened
    url: str | None = None
    summary: str = ""
    responders: tuple[str, ...] = ()
    private: bool = False
    # What the mapping reads: the tool's own names for severity and ownership.
    severity: str | None = None  # already one of ours (generic source)
    severity_name: str | None = None  # the tool's word: critical, major, warning...
    priority: str | None = None
    urgency: str | None = None
    service: str | None = None  # the tool's id of the service (what service_teams maps)
    service_name: str | None = None  # its name, where the tool sends one besides the id
    teams: tuple[str, ...] = ()
    team: str | None = None  # already one of ours (generic source)
    timeline: tuple[TimelineEntry, ...] = field(default_factory=tuple)
    detail: str = ""  # why an OTHER event is not followed


class SourceMapping(BaseModel):
    """How one source's fields become our severity and team (the routing file's [sources.X])."""

    model_config = ConfigDict(extra="forbid")

    priority_severity: dict[str, Severity] = Field(
        default_factory=lambda: {f"P{n}": Severity(f"SEV{n}") for n in range(1, 6)}
    )
    urgency_severity: dict[str, Severity] = Field(
        default_factory=lambda: {"high": Severity.SEV2, "low": Severity.SEV4}
    )
    severity_names: dict[str, Severity] = Field(
        default_factory=lambda: {
            "critical": Severity.SEV1,
            "high": Severity.SEV2,
            "major": Severity.SEV2,
            "error": Severity.SEV2,
            "medium": Severity.SEV3,
            "minor": Severity.SEV3,
            "warning": Severity.SEV3,
            "low": Severity.SEV4,
            "info": Severity.SEV4,
        }
    )
    default_severity: Severity = Severity.SEV3
    team_label: str = "team"  # the label (Alertmanager, Grafana) or field (incident.io) naming it
    # The label (Alertmanager, Grafana OnCall) or custom field (incident.io) naming the service.
    service_label: str = "service"
    service_teams: dict[str, str] = Field(default_factory=dict)
    team_teams: dict[str, str] = Field(default_factory=dict)
    default_team: str | None = None


TITLE_LIMIT = limits.NAME  # Incident.title (Name)
ID_LIMIT = 100  # Incident.id (Identifier)
TEXT_LIMIT = limits.TEXT  # TimelineEntry.text (Text)


def normalise(event: IncidentEvent) -> IncidentEvent:
    """What a sender wrote, made to fit our models instead of refused: an id with odd
    characters becomes a stable readable one (with a hash of the original, so two never
    meet), a blank title a generated one, a long title a clipped one whose full text goes
    on the timeline."""
    incident_id = _stable_id(event.incident_id)
    title = " ".join(event.title.split())
    timeline = event.timeline
    if len(title) > TITLE_LIMIT:
        at = event.started_at or event.resolved_at or event.occurred_at
        if at is not None:
            full = TimelineEntry(
                at=at, text=f"Title as sent: {title[: TEXT_LIMIT - 15]}", source=event.source
            )
            timeline = (full, *timeline)
        title = title[: TITLE_LIMIT - 1].rstrip() + "…"
    return dataclasses.replace(event, incident_id=incident_id, title=title or "", timeline=timeline)


# When an incident can have happened, for a sender's word to be believed: after this floor,
# and no later than a little clock skew past now. Outside it a date is a mistake (1900, the
# year 9999), refused with the reason at every boundary rather than carried into arithmetic.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
CLOCK_SKEW = timedelta(minutes=10)


def check_times(
    now: datetime, resolved_at: datetime | None, started_at: datetime | None = None
) -> None:
    """ValueError with the reason when a time is outside what an incident can have."""
    for name, value in (("resolved_at", resolved_at), ("started_at", started_at)):
        if value is None:
            continue
        if value < EARLIEST:
            raise ValueError(f"{name} {value.isoformat()} is before {EARLIEST.year}")
        if value > now + CLOCK_SKEW:
            raise ValueError(f"{name} {value.isoformat()} is in the future (now {now.isoformat()})")
    if resolved_at and started_at and started_at > resolved_at:
        raise ValueError("started_at is after resolved_at")


def _stable_id(raw: str) -> str:
    if IDENTIFIER.match(raw):
        return raw
    digest = hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    readable = re.sub(r"[^A-Za-z0-9._:-]+", "-", raw).strip("-._:")[: ID_LIMIT - 11]
    return f"{readable}-{digest}" if readable else f"x-{digest}"


@dataclass(frozen=True)
class Mapped:
    incident: Incident | None
    skipped: str = ""
    unroutable: bool = False  # no team and no triage team: the sender must retry later


def _quoted(name: str) -> str:
    """The sender's name in a reason the state keeps: quoted, within 200 bytes."""
    return limits.clip_bytes(repr(name), 200)


def map_event(
    event: IncidentEvent,
    mapping: SourceMapping,
    known_teams: set[str],
    triage_team: str | None = None,
    services: dict[str, str] | None = None,
) -> Mapped:
    """Our incident from the event, or the reason it cannot be one. An incident whose team
    the routing cannot find goes to `triage_team`, flagged unrouted with the reason: it is
    never dropped for want of a mapping. `services`: the routing file's [services], a
    service (as service_name() keeps it) to its team, for every source."""
    severity = _severity(event, mapping)
    service = service_name(event.service_name or event.service)
    team = _team(event, mapping, known_teams, service, services or {})
    unrouted = ""
    if team is None:
        hint = f"service {_quoted(event.service)}" if event.service else "this incident"
        unrouted = (
            f"no team for {hint}: map it in [sources.{event.source}] "
            "(service_teams, team_teams or default_team)"
        )
    elif team not in known_teams:
        unrouted = f"team {_quoted(team)} is not in the routing file"
    unrouted = limits.clip_bytes(unrouted, limits.PROBLEM_TEXT)  # the sender's words in it
    if unrouted:
        if triage_team is None:
            return Mapped(None, unrouted, unroutable=True)
        team = triage_team
    if event.resolved_at is None:
        return Mapped(None, "the event carries no resolution time")
    incident = Incident(
        source=event.source,
        id=event.incident_id,
        title=event.title or f"{event.source} incident {event.incident_id}",
        severity=severity,
        team=team,
        resolved_at=event.resolved_at,
        started_at=event.started_at,
        # What a tool sends beyond our limits is clipped, never a reason to refuse it.
        summary=limits.clip(event.summary, limits.TEXT),
        url=event.url if event.url and len(event.url) <= limits.URL else None,
        external_id=event.external_id if len(event.external_id or "") <= 200 else None,
        responders=[limits.clip(r, limits.NAME) for r in event.responders[: limits.RESPONDERS]],
        private=event.private,
        unrouted=unrouted,
        service=service,
    )
    return Mapped(incident)


def _severity(event: IncidentEvent, mapping: SourceMapping) -> Severity:
    if event.severity:
        try:
            return Severity(event.severity.upper())
        except ValueError:
            pass
    if event.priority and event.priority in mapping.priority_severity:
        return mapping.priority_severity[event.priority]
    if event.severity_name:
        name = event.severity_name.strip().lower()
        named = {k.lower(): v for k, v in mapping.severity_names.items()}
        if name in named:
            return named[name]
        try:
            return Severity(event.severity_name.strip().upper())  # already "SEV2"
        except ValueError:
            pass
    if event.urgency and event.urgency in mapping.urgency_severity:
        return mapping.urgency_severity[event.urgency]
    return mapping.default_severity


def _team(
    event: IncidentEvent,
    mapping: SourceMapping,
    known_teams: set[str],
    service: str = "",
    services: dict[str, str] | None = None,
) -> str | None:
    """The event's own team; the source's service and team mappings; a label already naming
    one of ours; the routing file's [services]; the source's default team."""
    if event.team:
        return event.team
    for named in (event.service, event.service_name):
        if named and named in mapping.service_teams:
            return mapping.service_teams[named]
    for team in event.teams:
        if team in mapping.team_teams:
            return mapping.team_teams[team]
    for team in event.teams:  # a label or field that already names one of our teams
        if team in known_teams:
            return team
    if service and services:
        mapped = {service_name(k): v for k, v in services.items()}.get(service)
        if mapped:
            return mapped
    return mapping.default_team
