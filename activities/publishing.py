"""Activity that renders the post-mortem and hands it to each of the team's publishers."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel
from temporalio import activity

from activities.errors import maps_integration_errors
from domain.document import (
    TemplateProblem,
    document_name,
    public_view,
    redact,
    redact_model,
    render,
)
from domain.models import PostmortemDocument
from integrations.errors import ConfigurationError
from integrations.publishing import Document, IndexEntry, Publisher


class PublishInput(BaseModel):
    state: PostmortemDocument
    rendered_at: datetime


class Publication(BaseModel):
    location: str | None  # the first publisher's; None when nothing was published
    locations: list[str] = []
    note: str = ""  # why nothing was published, or what was changed on the way out
    redactions: int = 0


@dataclass(frozen=True)
class TeamPublishing:
    publishers: list[Publisher]
    template_dir: Path | None = None


class PublishingActivities:
    """`team_publishing` gives a team's publishers and template folder (from routing);
    `known_secrets` the engine's own secret values, never to appear in a document."""

    def __init__(
        self,
        team_publishing: Callable[[str], TeamPublishing],
        known_secrets: Callable[[], Iterable[str]] = tuple,
    ) -> None:
        self._team_publishing = team_publishing
        self._known_secrets = known_secrets

    @activity.defn(name="publish.document")
    @maps_integration_errors
    def publish(self, request: PublishInput) -> Publication:
        state = request.state
        incident = state.incident
        if incident.private:
            return Publication(
                location=None,
                note=f"not published: the incident is private in {incident.source}",
            )
        team = self._team_publishing(incident.team)
        secrets = list(self._known_secrets())
        # Redacted before rendering: a template may escape, join or move any string.
        state, found_state = redact_model(public_view(state), secrets)
        incident = state.incident
        try:
            rendered = render(state, rendered_at=request.rendered_at, team_dir=team.template_dir)
        except TemplateProblem as exc:
            raise ConfigurationError(f"team {incident.team!r}: {exc}") from None
        markdown, found_md = redact(rendered.markdown, secrets)
        html, found_html = redact(rendered.html, secrets)
        summary = (state.findings.summary if state.findings else "") or incident.summary
        factors = state.findings.contributing_factors if state.findings else []
        tags = {f.category.value for f in factors} | {a.type.value for a in state.actions}
        entry = IndexEntry(
            name=document_name(state),
            title=incident.title,
            incident_id=incident.id,
            severity=incident.severity.value,
            team=incident.team,
            resolved_at=incident.resolved_at,
            phase=state.phase.value,
            tags=sorted(tags),
            summary=redact(summary[:300], secrets)[0],
        )
        document = Document(entry=entry, markdown=markdown, html=html)
        locations = [publisher.publish(document) for publisher in team.publishers]
        redactions = found_state + max(found_md, found_html)
        activity.logger.info(
            "post-mortem published",
            extra={"locations": len(locations), "redactions": redactions},
        )
        return Publication(
            location=locations[0] if locations else None,
            locations=locations,
            note=f"{redactions} secret-like string(s) redacted" if redactions else "",
            redactions=redactions,
        )
