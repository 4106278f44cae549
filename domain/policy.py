"""How soon reviews and corrective actions are due, by severity, and how follow-up nags."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field, field_validator


class SeverityPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    required: bool = True
    review_within_business_days: int = Field(ge=1, le=60)
    actions_due_days: int = Field(ge=1, le=365)


class FollowUpPolicy(BaseModel):
    """Reminders before a corrective action's deadline, escalation after it."""

    model_config = ConfigDict(extra="forbid")

    reminder_offsets: list[timedelta] = Field(
        default_factory=lambda: [timedelta(days=7), timedelta(days=1)]
    )
    escalation_grace: timedelta = timedelta(days=2)
    escalation_repeat: timedelta = timedelta(days=7)
    status_poll_interval: timedelta = timedelta(hours=6)
    review_reminder_before: timedelta = timedelta(days=1)

    @field_validator("reminder_offsets")
    @classmethod
    def _offsets_descending(cls, offsets: list[timedelta]) -> list[timedelta]:
        if any(o <= timedelta(0) for o in offsets):
            raise ValueError("reminder offsets must be positive durations before the deadline")
        return sorted(set(offsets), reverse=True)

    @field_validator("escalation_repeat", "status_poll_interval")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        # A floor, not a recommendation: the default poll is 6 hours (trackers rate-limit).
        if value < timedelta(seconds=10):
            raise ValueError("must be at least 10 seconds")
        return value

    @field_validator("escalation_grace")
    @classmethod
    def _not_negative(cls, value: timedelta) -> timedelta:
        if value < timedelta(0):
            raise ValueError("must not be negative")
        return value


# Severity names are the ones of domain.models.Severity; kept as strings here so that this
# module has no import cycle with the models.
DEFAULT_SEVERITY_POLICIES: dict[str, SeverityPolicy] = {
    "SEV1": SeverityPolicy(required=True, review_within_business_days=3, actions_due_days=15),
    "SEV2": SeverityPolicy(required=True, review_within_business_days=5, actions_due_days=30),
    "SEV3": SeverityPolicy(required=False, review_within_business_days=10, actions_due_days=60),
    "SEV4": SeverityPolicy(required=False, review_within_business_days=10, actions_due_days=90),
    "SEV5": SeverityPolicy(required=False, review_within_business_days=10, actions_due_days=90),
}
