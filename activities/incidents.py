"""Activities on incident tools: the incident's log, imported into the timeline."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from pydantic import BaseModel
from temporalio import activity

from activities.errors import maps_integration_errors
from domain.models import TimelineEntry


class IncidentLog(Protocol):
    def log_entries(self, incident_id: str) -> list[TimelineEntry]: ...


class ImportTimelineInput(BaseModel):
    source: str
    incident_id: str


class IncidentSourceActivities:
    """`log_for` gives the source's API client, or None where no credentials are set."""

    def __init__(self, log_for: Callable[[str], IncidentLog | None]) -> None:
        self._log_for = log_for

    @activity.defn(name="incident.import_timeline")
    @maps_integration_errors
    def import_timeline(self, request: ImportTimelineInput) -> list[TimelineEntry]:
        source = self._log_for(request.source)
        if source is None:
            return []
        entries = source.log_entries(request.incident_id)
        activity.logger.info("timeline imported", extra={"entries": len(entries)})
        return entries
