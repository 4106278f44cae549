"""Activities of the digest: what to report (from the record) and where it goes (a comment
on the team's tracker issue, email, a Slack-compatible incoming webhook)."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime

from pydantic import BaseModel
from temporalio import activity

from activities.errors import maps_integration_errors
from config import DigestConfig, Routing
from domain.digest import Digest, DigestAction, DigestKind, DigestReview
from domain.models import TicketRef
from integrations.chat import post_text
from integrations.email import Mailer
from integrations.errors import ConfigurationError
from integrations.tracker import Tracker
from record import reads
from record.store import Record

SHOWN = 25


class GatherInput(BaseModel):
    team: str
    kind: DigestKind
    now: datetime


class DeliverInput(BaseModel):
    digest: Digest


class Delivered(BaseModel):
    channels: list[str]


class DigestActivities:
    def __init__(
        self,
        record: Callable[[], Record],
        routing: Callable[[], Routing],
        tracker_for: Callable[[str], Tracker],
        mailer: Mailer | None,
        dashboard_url: str,
    ) -> None:
        self._record = record
        self._routing = routing
        self._tracker_for = tracker_for
        self._mailer = mailer
        self._dashboard_url = dashboard_url.rstrip("/")

    @activity.defn(name="digest.gather")
    @maps_integration_errors
    def gather(self, request: GatherInput) -> Digest:
        record, now = self._record(), request.now
        severity = "SEV1" if request.kind == "sev1-daily" else None
        total, rows = reads.ranked_actions(
            record, team=request.team, severity=severity, limit=SHOWN
        )
        late = []
        if request.kind == "weekly":
            late_ones = reads.PostmortemFilter(team=request.team, late_at=now)
            late = reads.postmortem_list(record, late_ones, SHOWN)
        return Digest(
            team=request.team,
            kind=request.kind,
            at=now,
            overdue_total=total,
            overdue=[
                DigestAction(
                    postmortem_id=r.postmortem_id,
                    action_id=r.action_id,
                    title=r.title,
                    owner=r.owner,
                    severity=r.severity,
                    due=r.due,
                    days_overdue=r.days_overdue(now),
                    ticket=r.ticket,
                    ticket_url=r.ticket_url,
                    escalation_level=r.escalation_level,
                )
                for r in rows
            ],
            late_reviews=[
                DigestReview(
                    workflow_id=r.workflow_id, title=r.title, severity=r.severity, phase=r.phase
                )
                for r in late
            ],
            dashboard_url=f"{self._dashboard_url}/overdue?team={request.team}",
        )

    @activity.defn(name="digest.deliver")
    @maps_integration_errors
    def deliver(self, request: DeliverInput) -> Delivered:
        digest = request.digest
        routing = self._routing()
        config = routing.team(digest.team).digest or DigestConfig()
        text, done = digest.text(), []
        if config.tracker_issue:
            team = routing.team_info(digest.team)
            ref = TicketRef(tracker=team.tracker, key=config.tracker_issue, url="")
            self._tracker_for(digest.team).comment(ref, text)
            done.append(f"tracker {config.tracker_issue}")
        if config.email:
            if self._mailer is None:
                raise ConfigurationError(
                    f"team {digest.team!r}: the digest goes to email but PM_SMTP_HOST is not set"
                )
            self._mailer.send(list(config.email), digest.subject(), text)
            done.append(f"email to {len(config.email)}")
        if config.webhook_url_env:
            post_text(os.environ.get(config.webhook_url_env, ""), config.webhook_url_env, text)
            done.append("webhook")
        activity.logger.info("digest delivered", extra={"team": digest.team, "channels": done})
        return Delivered(channels=done)
