"""Activity that renders the post-mortem document and hands it to the team's publisher."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from pydantic import BaseModel
from temporalio import activity

from activities.errors import maps_integration_errors
from domain.document import document_name, render_markdown
from domain.models import PostmortemState
from integrations.publishing import Publisher


class PublishInput(BaseModel):
    state: PostmortemState
    rendered_at: datetime


class Publication(BaseModel):
    location: str


class PublishingActivities:
    def __init__(self, publisher_for: Callable[[str], Publisher]) -> None:
        self._publisher_for = publisher_for

    @activity.defn(name="publish.document")
    @maps_integration_errors
    def publish(self, request: PublishInput) -> Publication:
        state = request.state
        markdown = render_markdown(state, rendered_at=request.rendered_at)
        location = self._publisher_for(state.incident.team).publish(document_name(state), markdown)
        activity.logger.info("post-mortem published", extra={"location": location})
        return Publication(location=location)
