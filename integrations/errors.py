"""The few typed errors every integration raises; activities map them to Temporal once."""

from __future__ import annotations


class IntegrationError(Exception):
    """Base class. Messages must never contain a secret."""


class TrackerUnavailable(IntegrationError):
    """The tracker cannot answer now (5xx, 429, connection): retrying later can succeed."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TrackerRejected(IntegrationError):
    """The tracker refused the request and will refuse it again until a person fixes
    something (project key, permission, assignee, required field)."""


class TicketNotFound(TrackerRejected):
    """The ticket the engine tracks no longer exists in the tracker."""


class SourceUnavailable(TrackerUnavailable):
    """An incident tool's API cannot answer now: retry later (same rules as a tracker)."""


class SourceRejected(IntegrationError):
    """An incident tool's API refused the request (token, permission, unknown incident)."""


class ConfigurationError(IntegrationError):
    """The routing or settings do not allow the call (unknown team, missing tracker)."""


class PublishFailed(IntegrationError):
    """The document could not be written where the team publishes."""


class DeliveryFailed(IntegrationError):
    """A message (email, chat) could not be delivered now; retrying later can succeed."""
