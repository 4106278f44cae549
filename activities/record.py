"""The record's one writer: the projection of a post-mortem, as its workflow has it now."""

from __future__ import annotations

from pydantic import AliasChoices, BaseModel, Field
from temporalio import activity

from activities.errors import maps_integration_errors
from domain.models import PostmortemState
from record.store import Record


class ProjectInput(BaseModel):
    # The whole state: what `status` shows of a post-mortem whose workflow Temporal deleted
    # (blameless notes, publication, problems too). Writes scheduled before it was the whole
    # state sent the document alone, as `document`: read as a state with defaults.
    state: PostmortemState = Field(validation_alias=AliasChoices("state", "document"))
    # Monotonic per post-mortem across continue-as-new: the record keeps the newest.
    version: int


class RecordActivities:
    def __init__(self, record: Record) -> None:
        self._record = record

    @activity.defn(name="record.project")
    @maps_integration_errors
    def project(self, request: ProjectInput) -> bool:
        """True when written; False when the record already had this version or newer. The
        database down: retried (RecordUnavailable) until it answers."""
        return self._record.project(request.state, request.version)
