"""The tracker port: what Jira, GitHub Issues and the local tracker all offer."""

from __future__ import annotations

import re
from collections.abc import Callable
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


class Tracker(Protocol):
    kind: str

    def create_ticket(self, request: TicketRequest) -> TicketRef:
        """Create the ticket, or return the one already carrying the idempotency key."""
        ...

    def find_ticket(self, idempotency_key: str, team: str) -> TicketRef | None: ...

    def ticket_status(self, ref: TicketRef) -> TicketStatus: ...

    def comment(self, ref: TicketRef, text: str) -> None: ...
