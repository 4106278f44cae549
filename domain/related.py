"""Repeats: which earlier post-mortems a post-mortem repeats or resembles, and how to say it.

Two reasons relate post-mortems:
- the same service, within the look-back: a repeat incident;
- similar findings (domain/similarity.py): a contributing factor or a cause of one says what
  a factor or cause of the other says, on any service.

The record finds the candidates (record/reads.py, `related`); this module decides, orders
and words them, and clips every text by bytes so the state keeps a bounded list
(limits.RELATED and its neighbours).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from domain import limits, similarity
from domain.models import (
    ActionState,
    RelatedAction,
    RelatedPostmortem,
    TicketRef,
)

# What the state keeps of a related post-mortem's texts, in bytes of its JSON.
TITLE_BYTES = 300
OWNER_BYTES = 200
WORKFLOW_BYTES = 300


@dataclass
class Candidate:
    """An earlier post-mortem as the record has it, with what it found."""

    workflow_id: str
    incident_id: str
    title: str
    service: str
    team: str
    resolved_at: datetime
    # (what it is: "factor [category]", "root cause", "proximate cause"; its text; its terms)
    findings: list[tuple[str, str, frozenset[str]]] = field(default_factory=list)
    actions: list[RelatedAction] = field(default_factory=list)


@dataclass(frozen=True)
class Mine:
    """What this post-mortem says, to compare: the same shape as a candidate's findings."""

    service: str
    findings: list[tuple[str, str, frozenset[str]]]


def findings_of(
    factors: list[tuple[str, str]], proximate: str, root: str
) -> list[tuple[str, str, frozenset[str]]]:
    """(label, text, terms) of each factor (category, description) and cause."""
    found = [(f"factor [{category}]", text, similarity.terms(text)) for category, text in factors]
    for label, text in (("root cause", root), ("proximate cause", proximate)):
        if text:
            found.append((label, text, similarity.terms(text)))
    return found


def within_budget(
    findings: list[tuple[str, str, frozenset[str]]], budget: int = limits.LOOKUP_TERMS
) -> list[tuple[str, str, frozenset[str]]]:
    """The findings a lookup compares: the causes first, then the factors in order, while
    their terms fit in `budget`; in their own order."""
    causes = [n for n, f in enumerate(findings) if not f[0].startswith("factor")]
    factors = [n for n, f in enumerate(findings) if f[0].startswith("factor")]
    kept: set[int] = set()
    used = 0
    for n in [*causes, *factors]:
        used += len(findings[n][2])
        if used > budget:
            break
        kept.add(n)
    return [f for n, f in enumerate(findings) if n in kept]


def decide(mine: Mine, candidates: list[Candidate], lookback_days: int) -> list[RelatedPostmortem]:
    """The related ones, closest first: similar findings before the same service alone, then
    the most recent; at most limits.RELATED."""
    ranked: list[tuple[float, datetime, RelatedPostmortem]] = []
    for c in candidates:
        same = bool(mine.service) and c.service == mine.service
        similar: list[tuple[float, str]] = []  # (score, reason), to keep the closest
        for my_label, _my_text, my_terms in mine.findings:
            for label, text, their_terms in c.findings:
                score = similarity.score(my_terms, their_terms)
                if not score:
                    continue
                shared = ", ".join(sorted(my_terms & their_terms)[:6])
                similar.append(
                    (
                        score,
                        f"similar {label} to this one's {my_label} ({score:.0%}; shared: "
                        f"{shared}): {text}",
                    )
                )
        if not same and not similar:
            continue
        similar.sort(key=lambda s: -s[0])  # stable: equal scores keep their order
        head = [f"same service {mine.service} within {lookback_days} days"] if same else []
        kept = [*head, *(reason for _score, reason in similar)][: limits.RELATED_REASONS]
        best = similar[0][0] if similar else 0.0
        ranked.append((best, c.resolved_at, entry(c, kept, best)))
    ranked.sort(key=lambda r: (-r[0], -r[1].timestamp(), r[2].workflow_id))
    return [r[2] for r in ranked[: limits.RELATED]]


def entry(
    c: Candidate,
    reasons: list[str],
    best: float,
    later: bool = False,
    verified_repeat: bool = False,
) -> RelatedPostmortem:
    """The related post-mortem as the state keeps it: each text clipped by bytes."""
    clip = limits.clip_bytes
    return RelatedPostmortem(
        workflow_id=clip(c.workflow_id, WORKFLOW_BYTES),
        incident_id=clip(c.incident_id, 200),
        title=clip(c.title, TITLE_BYTES),
        service=clip(c.service, limits.SERVICE),
        team=clip(c.team, OWNER_BYTES),
        resolved_at=c.resolved_at,
        reasons=[clip(r, limits.RELATED_REASON) for r in reasons[: limits.RELATED_REASONS]],
        actions=[related_action(a) for a in c.actions[: limits.RELATED_ACTIONS]],
        similarity=round(best, 3),
        later=later,
        verified_repeat=verified_repeat,
    )


def after_verified(r: RelatedPostmortem, category: str, action_title: str) -> RelatedPostmortem:
    """`r` flagged: this incident has its service and a factor category of its again, after
    one of its actions was verified as working. The reason comes first."""
    title = limits.clip_bytes(action_title, 120)
    reason = f'{category} factors again after its action "{title}" was verified as working'
    reasons = [limits.clip_bytes(reason, limits.RELATED_REASON), *r.reasons]
    return r.model_copy(
        update={"verified_repeat": True, "reasons": reasons[: limits.RELATED_REASONS]}
    )


def related_action(a: RelatedAction) -> RelatedAction:
    clip = limits.clip_bytes
    ticket = a.ticket
    if ticket is not None:
        ticket = TicketRef(
            tracker=clip(ticket.tracker, limits.TICKET_TRACKER),
            key=clip(ticket.key, limits.TICKET_KEY),
            url=clip(ticket.url, limits.TICKET_URL),
        )
    return RelatedAction(
        id=clip(a.id, 40),
        title=clip(a.title, TITLE_BYTES),
        state=a.state,
        owner=clip(a.owner, OWNER_BYTES),
        due=a.due,
        state_reason=clip(a.state_reason, limits.RELATED_REASON),
        ticket=ticket,
    )


ORDINALS = ["first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth"]


def summary(
    service: str, same_service_count: int, lookback_days: int, related: list[RelatedPostmortem]
) -> str:
    """One line for the document, the ticket and the page: "third incident on checkout-api
    in 90 days; earlier: …; still open from them: …". "" when nothing is related."""
    if not related:
        return ""
    parts = []
    if service and same_service_count:
        n = same_service_count + 1
        nth = ORDINALS[n - 1] if n <= len(ORDINALS) else _nth(n)
        parts.append(f"{nth} incident on {service} in {lookback_days} days")
    earlier = [r for r in related if not r.later]
    if earlier:
        parts.append(
            "earlier: "
            + ", ".join(f"{r.incident_id} ({r.resolved_at:%Y-%m-%d})" for r in earlier[:5])
        )
    still_open = [
        f"{a.title} ({r.incident_id})"
        for r in earlier
        for a in r.actions
        if a.state is ActionState.OPEN
    ]
    if still_open:
        parts.append("still open from them: " + "; ".join(still_open[:5]))
    return limits.clip_bytes("; ".join(parts), limits.PROBLEM_TEXT)


def _nth(n: int) -> str:
    """10th, 11th, 12th, 13th, 21st, 22nd, 23rd, 101st..."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def still_open(related: list[RelatedPostmortem]) -> list[tuple[RelatedPostmortem, RelatedAction]]:
    """Actions of earlier post-mortems on the same service still open: the facilitator hears
    of them before the review."""
    return [
        (r, a)
        for r in related
        if not r.later and any(x.startswith("same service") for x in r.reasons)
        for a in r.actions
        if a.state is ActionState.OPEN
    ]
