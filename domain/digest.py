"""A team's digest: its overdue corrective actions and late reviews, in words a manager reads
in a minute. Framed around the work, not around people."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel

DigestKind = Literal["weekly", "sev1-daily"]


class DigestAction(BaseModel):
    postmortem_id: str
    action_id: str
    title: str
    owner: str
    severity: str
    due: datetime | None
    days_overdue: int
    ticket: str
    ticket_url: str
    escalation_level: int


class DigestReview(BaseModel):
    workflow_id: str
    title: str
    severity: str
    phase: str


class Digest(BaseModel):
    team: str
    kind: DigestKind
    at: datetime
    overdue_total: int
    overdue: list[DigestAction]  # the most overdue first, at most a screenful
    late_reviews: list[DigestReview]
    dashboard_url: str = ""

    @property
    def empty(self) -> bool:
        return self.overdue_total == 0 and not self.late_reviews

    def subject(self) -> str:
        what = "SEV1 overdue actions" if self.kind == "sev1-daily" else "weekly post-mortem digest"
        return f"{self.team}: {what}, {self.at:%Y-%m-%d}"

    def text(self) -> str:
        lines = [self.subject(), ""]
        if self.empty:
            lines.append("Nothing overdue and no late review. The follow-through is on track.")
        if self.overdue_total:
            shown = len(self.overdue)
            more = f" (the {shown} most overdue below)" if shown < self.overdue_total else ""
            lines.append(f"{self.overdue_total} corrective action(s) overdue{more}:")
            for a in self.overdue:
                escalated = f", escalated {a.escalation_level}x" if a.escalation_level else ""
                ticket = f"{a.ticket} {a.ticket_url}".strip()
                lines.append(
                    f"- {a.days_overdue} d overdue ({a.severity}{escalated}): {a.title}. "
                    f"Owner {a.owner}. {ticket}"
                )
            lines.append("")
        if self.late_reviews:
            lines.append(f"{len(self.late_reviews)} review(s) past their window:")
            lines += [
                f"- {r.title} ({r.severity}, {r.phase}): {r.workflow_id}" for r in self.late_reviews
            ]
            lines.append("")
        if not self.empty:
            lines.append(
                "What is in the way: time, priority or ownership? Move a date with a reason, "
                "or drop an action with one, so the plan stays honest."
            )
        if self.dashboard_url:
            lines.append(f"Dashboard: {self.dashboard_url}")
        return "\n".join(lines).strip() + "\n"
