"""The record's one writer: the projection of a post-mortem, as its workflow has it now."""

from __future__ import annotations

from pydantic import AliasChoices, BaseModel, Field
from temporalio import activity

from activities.errors import maps_integration_errors
from domain.models import PostmortemDocument, PostmortemState, RelatedPostmortem
from record import related
from record.store import Record


class ProjectInput(BaseModel):
    # The whole state: what `status` shows of a post-mortem whose workflow Temporal deleted
    # (blameless notes, publication, problems too). Writes scheduled before it was the whole
    # state sent the document alone, as `document`: read as a state with defaults.
    state: PostmortemState = Field(validation_alias=AliasChoices("state", "document"))
    # Monotonic per post-mortem across continue-as-new: the record keeps the newest.
    version: int


class RelatedInput(BaseModel):
    document: PostmortemDocument


class RelatedFound(BaseModel):
    related: list[RelatedPostmortem]
    summary: str


class RecordActivities:
    def __init__(self, record: Record, lookback_days: int = 90) -> None:
        self._record = record
        self._lookback_days = lookback_days

    @activity.defn(name="record.related")
    @maps_integration_errors
    def related(self, request: RelatedInput) -> RelatedFound:
        """Earlier post-mortems of the same service, or with similar findings, within the
        look-back (record/related.py). The database down: retried until it answers."""
        found = related.find(self._record, request.document, self._lookback_days)
        return RelatedFound(related=found.related, summary=found.summary)

    @activity.defn(name="record.project")
    @maps_integration_errors
    def project(self, request: ProjectInput) -> bool:
        """True when written; False when the record already had this version or newer. The
        database down: retried (RecordUnavailable) until it answers."""
        return self._record.project(request.state, request.version)
