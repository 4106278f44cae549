"""The tracker port: what Jira, GitHub Issues and the local tracker all offer."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from pydantic import BaseModel, Field

from domain.models import TicketRef


class TicketRequest(BaseModel):
    """A ticket to create, once: `idempotency_key` finds it again after a retry."""

    idempotency_key: str
    team: str
    title: str
    body: str
    assignee: str | None = None
    labels: list[str] = Field(default_factory=list)
    due: datetime | None = None
    priority: str | None = None
    # Another ticket in the same tracker to link to (the post-mortem's tracking ticket).
    related_key: str | None = None


class TicketStatus(BaseModel):
    """A ticket's state as the tracker reports it, reduced to what follow-up needs."""

    ref: TicketRef
    done: bool
    # "completed" or "not_planned" when done; the tracker's own words otherwise.
    resolution: str = ""
    status_name: str = ""


# How notices name people: "@<email>". Each tracker turns it into its own mention.
MENTION = re.compile(r"@([A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,})")


def with_mentions(text: str, mention: Callable[[str], str | None]) -> str:
    """Replace each "@<email>" by `mention(email)`, or leave it as written when unknown."""
    return MENTION.sub(lambda m: mention(m.group(1)) or m.group(0), text)


@dataclass
class CreationJournal:
    """What earlier attempts at creating one ticket left behind, and where this attempt notes
    what it does before anything else can fail (the activity's heartbeat, which the next
    attempt reads back). A tracker whose lookup is consistent may ignore it."""

    key: str | None = None  # the ticket, once the tracker answered the create
    attempted_at: float | None = None  # a create was sent then (epoch s); its outcome unknown
    on_change: Callable[[CreationJournal], None] = field(
        default=lambda journal: None, repr=False, compare=False
    )

    def note(self, *, key: str | None = None, attempted_at: float | None = None) -> None:
        self.key, self.attempted_at = key, attempted_at
        self.on_change(self)

    def as_details(self) -> dict[str, object]:
        return {"key": self.key, "attempted_at": self.attempted_at}

    @classmethod
    def from_details(cls, details: object) -> CreationJournal:
        """Read back what `as_details` recorded; anything else is an empty journal."""
        if not isinstance(details, dict):
            return cls()
        key, at = details.get("key"), details.get("attempted_at")
        return cls(
            key=key if isinstance(key, str) else None,
            attempted_at=float(at) if isinstance(at, int | float) else None,
        )


class Tracker(Protocol):
    kind: str

    def create_ticket(
        self, request: TicketRequest, journal: CreationJournal | None = None
    ) -> TicketRef:
        """Create the ticket, or return the one already carrying the idempotency key."""
        ...

    def find_ticket(self, idempotency_key: str, team: str) -> TicketRef | None: ...

    def ticket_status(self, ref: TicketRef) -> TicketStatus: ...

    def comment(self, ref: TicketRef, text: str) -> None: ...
