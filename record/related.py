"""Related post-mortems, read from the record: the earlier ones of the same service, and
those whose findings are similar (domain/related.py decides and words them), within a
look-back; and the later ones that found a post-mortem related (its `links`).

Reads at most: the same service's post-mortems in the window (an index range on service and
resolution time), the factors and causes' stored terms of the window's post-mortems (one
range on resolution time), and the open or dropped actions of the ones kept."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from domain import limits, related, similarity
from domain.models import (
    ActionState,
    PostmortemDocument,
    PostmortemState,
    RelatedAction,
    RelatedPostmortem,
    TicketRef,
    Verification,
)
from record.schema import actions, factors, links, postmortems
from record.store import Record, RecordUnavailable

SAME_SERVICE_READ = 50  # the newest of the same service read; the count covers them all
NOT_DONE = (ActionState.OPEN.value, ActionState.DROPPED.value)


@dataclass(frozen=True)
class Found:
    related: list[RelatedPostmortem]
    same_service: int  # earlier post-mortems of its service in the window
    summary: str


def find(record: Record, document: PostmortemDocument, lookback_days: int) -> Found:
    """The earlier post-mortems `document` repeats or resembles, closest first."""
    incident = document.incident
    if incident.private:
        return Found([], 0, "")  # a private post-mortem names no other, and none names it
    until = incident.resolved_at
    since = until - timedelta(days=lookback_days)
    mine = related.Mine(
        service=incident.service,
        findings=related.findings_of(
            [(f.category.value, f.description) for f in document.findings.contributing_factors],
            document.findings.proximate_cause,
            document.findings.root_cause,
        )
        if document.findings
        else [],
    )
    window = (
        postmortems.c.resolved_at >= since,
        postmortems.c.resolved_at <= until,
        postmortems.c.workflow_id != document.workflow_id,
        # Private post-mortems stay out of repeats, either way (their texts would reach
        # another post-mortem's document, ticket and page).
        postmortems.c.private.is_(False),
    )
    with record.reading() as connection:
        count = 0
        chosen: dict[str, related.Candidate] = {}
        if mine.service:
            same = (postmortems.c.service == mine.service, *window)
            count = connection.execute(select(func.count()).where(*same)).scalar_one()
            rows = connection.execute(
                select(*_HEAD)
                .where(*same)
                .order_by(postmortems.c.resolved_at.desc())
                .limit(SAME_SERVICE_READ)
            )
            for row in rows:
                chosen[row.workflow_id] = _candidate(row)
        if mine.findings:
            similar = _similar(connection, mine, window)
            missing = [w for w in similar if w not in chosen]
            if missing:
                rows = connection.execute(
                    select(*_HEAD).where(postmortems.c.workflow_id.in_(missing))
                )
                chosen.update({row.workflow_id: _candidate(row) for row in rows})
            for workflow_id, findings_ in similar.items():
                if workflow_id in chosen:
                    chosen[workflow_id].findings = findings_
        decided = related.decide(mine, list(chosen.values()), lookback_days)
        kept = {r.workflow_id for r in decided}
        open_actions = _not_done(connection, [c for w, c in chosen.items() if w in kept])
        repeats = _verified_repeats(
            connection,
            [r.workflow_id for r in decided if mine.service and r.service == mine.service],
            {f.category.value for f in document.findings.contributing_factors}
            if document.findings
            else set(),
            incident.started_at or incident.resolved_at,
        )
    decided = [
        related.after_verified(r, *repeats[r.workflow_id]) if r.workflow_id in repeats else r
        for r in decided
    ]
    final = [
        r.model_copy(
            update={
                "actions": [
                    related.related_action(a)
                    for a in open_actions.get(r.workflow_id, [])[: limits.RELATED_ACTIONS]
                ]
            }
        )
        for r in decided
    ]
    return Found(final, count, related.summary(mine.service, count, lookback_days, final))


_HEAD = (
    postmortems.c.workflow_id,
    postmortems.c.incident_id,
    postmortems.c.title,
    postmortems.c.service,
    postmortems.c.team,
    postmortems.c.resolved_at,
)


def _candidate(row: Any) -> related.Candidate:
    return related.Candidate(
        workflow_id=row.workflow_id,
        incident_id=row.incident_id,
        title=row.title,
        service=row.service,
        team=row.team,
        resolved_at=row.resolved_at,
    )


# Post-mortems with similar findings read further (their texts and heads): the closest ones.
SIMILAR_READ = 2 * limits.RELATED


def _similar(
    connection: Any, mine: related.Mine, window: Sequence[Any]
) -> dict[str, list[tuple[str, str, frozenset[str]]]]:
    """The window's post-mortems with a factor or cause similar to one of `mine`, the
    closest SIMILAR_READ of them: their similar findings (label, text, terms). Term sets
    are compared first; only the kept findings' texts are read."""
    mine_terms = [t for _label, _text, t in mine.findings]
    scores: dict[str, float] = {}
    matched: dict[str, list[tuple[str, int, frozenset[str]]]] = {}

    every = frozenset().union(*mine_terms)

    def consider(workflow_id: str, what: str, position: int, stored: str | None) -> None:
        theirs = similarity.decode(stored)
        if len(theirs & every) < similarity.MIN_SHARED:
            return  # shares too little with all of mine together: with each of them too
        best = max(similarity.score(t, theirs) for t in mine_terms)
        if best:
            scores[workflow_id] = max(best, scores.get(workflow_id, 0.0))
            matched.setdefault(workflow_id, []).append((what, position, theirs))

    factor_rows = connection.execute(
        select(factors.c.workflow_id, factors.c.position, factors.c.terms)
        .join(postmortems, postmortems.c.workflow_id == factors.c.workflow_id)
        .where(*window, factors.c.terms.is_not(None))
    )
    for workflow_id, position, terms in factor_rows:
        consider(workflow_id, "factor", position, terms)
    cause_rows = connection.execute(
        select(
            postmortems.c.workflow_id, postmortems.c.root_terms, postmortems.c.proximate_terms
        ).where(*window, postmortems.c.root_terms.is_not(None))
    )
    for workflow_id, root, proximate in cause_rows:
        consider(workflow_id, "root cause", 0, root)
        consider(workflow_id, "proximate cause", 0, proximate)
    kept = sorted(scores, key=lambda w: (-scores[w], w))[:SIMILAR_READ]
    if not kept:
        return {}
    texts: dict[tuple[str, str, int], str] = {}
    for workflow_id, position, category, description in connection.execute(
        select(factors.c.workflow_id, factors.c.position, factors.c.category,
               factors.c.description).where(factors.c.workflow_id.in_(kept))
    ):  # fmt: skip
        texts[(workflow_id, "factor", position)] = description
        texts[(workflow_id, "category", position)] = category
    for workflow_id, root, proximate in connection.execute(
        select(
            postmortems.c.workflow_id, postmortems.c.root_cause, postmortems.c.proximate_cause
        ).where(postmortems.c.workflow_id.in_(kept))
    ):
        texts[(workflow_id, "root cause", 0)] = root or ""
        texts[(workflow_id, "proximate cause", 0)] = proximate or ""
    found: dict[str, list[tuple[str, str, frozenset[str]]]] = {}
    for workflow_id in kept:
        for what, position, terms in matched[workflow_id]:
            label = (
                f"factor [{texts.get((workflow_id, 'category', position), 'other')}]"
                if what == "factor"
                else what
            )
            text = texts.get((workflow_id, what, position), "")
            found.setdefault(workflow_id, []).append((label, text, terms))
    return found


def _verified_repeats(
    connection: Any, same_service: list[str], categories: set[str], before: datetime
) -> dict[str, tuple[str, str]]:
    """Of the earlier post-mortems of the same service, those with an action verified as
    working, done before this incident began, and a factor of a category this one has too:
    (the category, the action's title), the first verified for each."""
    if not same_service or not categories:
        return {}
    rows = connection.execute(
        select(actions.c.workflow_id, factors.c.category, actions.c.title)
        .join(factors, factors.c.workflow_id == actions.c.workflow_id)
        .where(
            actions.c.workflow_id.in_(same_service),
            actions.c.verification == Verification.VERIFIED.value,
            actions.c.completed_at < before,
            factors.c.category.in_(sorted(categories)),
        )
        .order_by(actions.c.workflow_id, actions.c.verified_at, factors.c.category)
    )
    found: dict[str, tuple[str, str]] = {}
    for workflow_id, category, title in rows:
        found.setdefault(workflow_id, (category, title))
    return found


def _not_done(connection: Any, kept: Sequence[related.Candidate]) -> dict[str, list[RelatedAction]]:
    if not kept:
        return {}
    rows = connection.execute(
        select(actions)
        .where(
            actions.c.workflow_id.in_([c.workflow_id for c in kept]),
            actions.c.state.in_(NOT_DONE),
        )
        .order_by(actions.c.workflow_id, actions.c.state.desc(), actions.c.due)
    )
    found: dict[str, list[RelatedAction]] = {}
    for row in rows:
        ticket = (
            TicketRef(tracker=row.ticket_tracker, key=row.ticket_key, url=row.ticket_url or "")
            if row.ticket_key
            else None
        )
        found.setdefault(row.workflow_id, []).append(
            RelatedAction(
                id=row.action_id,
                title=row.title,
                state=ActionState(row.state),
                owner=row.owner,
                due=row.due,
                state_reason=row.state_reason,
                ticket=ticket,
            )
        )
    return found


def later(record: Record, workflow_id: str) -> list[RelatedPostmortem]:
    """The later post-mortems that found this one related, newest first (limits.RELATED)."""
    with record.reading() as connection:
        rows = connection.execute(
            select(*_HEAD, links.c.reasons, links.c.similarity, links.c.verified_repeat)
            .join(links, links.c.workflow_id == postmortems.c.workflow_id)
            .where(links.c.related_id == workflow_id, postmortems.c.private.is_(False))
            .order_by(postmortems.c.resolved_at.desc(), postmortems.c.workflow_id)
            .limit(limits.RELATED)
        ).all()
    return [
        related.entry(
            _candidate(row),
            list(row.reasons),
            row.similarity,
            later=True,
            verified_repeat=row.verified_repeat,
        )
        for row in rows
    ]


def both_ways(record: Record | None, state: PostmortemState) -> PostmortemState:
    """The state with the later post-mortems that found it added to its `related` (shown by
    `status` and the page; never written back)."""
    if record is None:
        return state
    try:
        found = later(record, state.workflow_id)
    except RecordUnavailable:
        return state  # advice: the post-mortem is shown without its later relations
    known = {r.workflow_id for r in state.related}
    added = [r for r in found if r.workflow_id not in known]
    if not added:
        return state
    return state.model_copy(update={"related": [*state.related, *added]})
