"""The generic incident source: a documented JSON body of our own, for any tool or script."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from domain.intake import EventKind, IncidentEvent
from domain.models import Identifier, Severity, TimelineEntry


class GenericIncident(BaseModel):
    """POST /webhooks/generic, signed with HMAC-SHA256 in `X-Signature-256: sha256=<hex>`."""

    model_config = ConfigDict(extra="forbid")

    incident_id: Identifier
    status: Literal["resolved", "reopened"] = "resolved"
    title: str = Field(min_length=1, max_length=200)
    severity: Severity
    team: str = Field(min_length=1)
    started_at: AwareDatetime | None = None
    resolved_at: AwareDatetime
    summary: str = ""
    url: str | None = None
    responders: list[str] = Field(default_factory=list)
    timeline: list[TimelineEntry] = Field(default_factory=list)
    private: bool = False
    service: str | None = Field(default=None, max_length=200)  # component or system


def to_event(body: GenericIncident) -> IncidentEvent:
    return IncidentEvent(
        source="generic",
        kind=EventKind.RESOLVED if body.status == "resolved" else EventKind.REOPENED,
        incident_id=body.incident_id,
        title=body.title,
        started_at=body.started_at,
        resolved_at=body.resolved_at,
        occurred_at=body.resolved_at,
        url=body.url,
        summary=body.summary,
        responders=tuple(body.responders),
        private=body.private,
        severity=body.severity.value,
        team=body.team,
        service=body.service,
        timeline=tuple(body.timeline),
    )
