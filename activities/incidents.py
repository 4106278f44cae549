"""Activities on incident tools: the incident's log, imported into the timeline."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from pydantic import BaseModel
from temporalio import activity

from activities.errors import maps_integration_errors
from domain.models import TimelineEntry
from integrations.source_api import LogInterrupted, LogProgress


class IncidentLog(Protocol):
    def log_entries(
        self, incident_id: str, *, resume: LogProgress | None = None
    ) -> list[TimelineEntry]: ...


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
        try:
            entries = source.log_entries(request.incident_id, resume=_progress())
        except LogInterrupted as exc:
            # The next try starts from this page (heartbeat details outlive the attempt).
            activity.heartbeat(exc.progress.model_dump(mode="json"))
            raise
        activity.logger.info("timeline imported", extra={"entries": len(entries)})
        return entries


def _progress() -> LogProgress | None:
    """Where the previous attempt stopped, if it said so."""
    details = activity.info().heartbeat_details
    if not details:
        return None
    try:
        return LogProgress.model_validate(details[0])
    except ValueError:  # from an older worker, or damaged: start over
        return None
