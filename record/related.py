"""Related post-mortems, read from the record: the earlier ones of the same service, and
those whose findings are similar (domain/related.py decides and words them), within a
look-back; and the later ones that found a post-mortem related (its `links`).

Reads at most: the same service's post-mortems in the window (an index range on service and
resolution time); for each term of the new post-mortem's findings, the findings of the window
that have it (an index range on term and resolution time), counted by the database, which
returns only the similar ones; the texts of the closest SIMILAR_READ; and the open or
dropped actions of the ones kept."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Float, func, literal, literal_column, select, union_all

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
from record.schema import FINDING_WHATS, actions, factors, finding_terms, links, postmortems
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
        findings=related.within_budget(
            related.findings_of(
                [(f.category.value, f.description) for f in document.findings.contributing_factors],
                document.findings.proximate_cause,
                document.findings.root_cause,
            )
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
            similar = _similar(connection, mine, since, until, document.workflow_id)
            missing = [w for w in similar if w not in chosen]
            if missing:
                rows = connection.execute(
                    select(*_HEAD).where(
                        postmortems.c.workflow_id.in_(missing), postmortems.c.private.is_(False)
                    )
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
    connection: Any, mine: related.Mine, since: datetime, until: datetime, me: str
) -> dict[str, list[tuple[str, str, frozenset[str]]]]:
    """The look-back's post-mortems with a factor or cause similar to one of `mine`, the
    closest SIMILAR_READ of them: their similar findings (label, text, terms).

    The database counts, for each finding of mine, the terms each finding of the look-back
    shares with it (`finding_terms`, by term and time) and keeps those that share at least
    MIN_SHARED and whose Dice coefficient (twice the shared over both sizes) reaches
    SIMILAR: domain/similarity.py's rule, exactly. Only the kept findings are read."""
    parts = []
    for n, (_label, _text, found) in enumerate(mine.findings):
        if len(found) < similarity.MIN_SHARED:
            continue  # shares too few terms with anything
        shared = func.count()
        parts.append(
            select(
                literal_column(str(n)).label("mine"),
                finding_terms.c.workflow_id,
                finding_terms.c.what,
                finding_terms.c.position,
                finding_terms.c.size,
                shared.label("shared"),
                # Dice: IEEE division of exact integers, the same number as Python's
                (literal(2.0, Float) * shared / (len(found) + finding_terms.c.size)).label("score"),
            )
            .where(
                finding_terms.c.term.in_(sorted(found)),
                finding_terms.c.resolved_at >= since,
                finding_terms.c.resolved_at <= until,
                finding_terms.c.workflow_id != me,
            )
            .group_by(
                finding_terms.c.workflow_id,
                finding_terms.c.what,
                finding_terms.c.position,
                finding_terms.c.size,
            )
            .having(
                shared >= similarity.MIN_SHARED,
                2 * shared
                >= literal(similarity.SIMILAR, Float) * (len(found) + finding_terms.c.size),
            )
        )
    if not parts:
        return {}
    # The pairs once; the closest SIMILAR_READ post-mortems by their best pair, then the
    # most recent (as related.decide ranks them), and only their pairs come back (a
    # look-back where everything resembles everything returns 20). The post-mortem's own
    # row is asked again: private and in the window now, whatever its terms' rows say.
    pairs = union_all(*parts).cte("pairs")
    best = func.max(pairs.c.score).label("best")
    by_id = (  # code point order, as Python's: PostgreSQL's collation may be a language's
        pairs.c.workflow_id.collate("C")
        if connection.dialect.name == "postgresql"
        else pairs.c.workflow_id
    )
    closest = (
        select(pairs.c.workflow_id, best, postmortems.c.resolved_at)
        .join(postmortems, postmortems.c.workflow_id == pairs.c.workflow_id)
        .where(
            postmortems.c.private.is_(False),
            postmortems.c.resolved_at >= since,
            postmortems.c.resolved_at <= until,
        )
        .group_by(pairs.c.workflow_id, postmortems.c.resolved_at)
        .order_by(best.desc(), postmortems.c.resolved_at.desc(), by_id)
        .limit(SIMILAR_READ)
        .cte("closest")
    )
    rows = connection.execute(
        select(
            pairs.c.mine, pairs.c.workflow_id, pairs.c.what, pairs.c.position, pairs.c.size,
            pairs.c.shared, closest.c.resolved_at,
        ).join(closest, closest.c.workflow_id == pairs.c.workflow_id)
    )  # fmt: skip
    scores: dict[str, float] = {}
    resolved: dict[str, datetime] = {}
    matched: dict[str, set[tuple[str, int]]] = {}
    for n, workflow_id, what, position, size, count, resolved_at in rows:
        mine_size = len(mine.findings[int(n)][2])
        score = 2 * count / (mine_size + size)
        if score < similarity.SIMILAR:
            continue  # the database rounded otherwise: the rule is Python's
        scores[workflow_id] = max(score, scores.get(workflow_id, 0.0))
        resolved[workflow_id] = resolved_at
        matched.setdefault(workflow_id, set()).add((what, position))
    kept = sorted(scores, key=lambda w: (-scores[w], -resolved[w].timestamp(), w))
    if not kept:
        return {}
    texts: dict[tuple[str, str, int], tuple[str, str | None]] = {}
    categories: dict[tuple[str, int], str] = {}
    for workflow_id, position, category, description, stored in connection.execute(
        select(factors.c.workflow_id, factors.c.position, factors.c.category,
               factors.c.description, factors.c.terms).where(factors.c.workflow_id.in_(kept))
    ):  # fmt: skip
        texts[(workflow_id, "factor", position)] = (description, stored)
        categories[(workflow_id, position)] = category
    for workflow_id, root, root_terms, proximate, proximate_terms in connection.execute(
        select(
            postmortems.c.workflow_id,
            postmortems.c.root_cause,
            postmortems.c.root_terms,
            postmortems.c.proximate_cause,
            postmortems.c.proximate_terms,
        ).where(postmortems.c.workflow_id.in_(kept))
    ):
        texts[(workflow_id, "root cause", 0)] = (root or "", root_terms)
        texts[(workflow_id, "proximate cause", 0)] = (proximate or "", proximate_terms)
    order = {what: n for n, what in enumerate(FINDING_WHATS)}
    result: dict[str, list[tuple[str, str, frozenset[str]]]] = {}
    for workflow_id in kept:
        for what, position in sorted(matched[workflow_id], key=lambda k: (order[k[0]], k[1])):
            text, stored = texts.get((workflow_id, what, position), ("", None))
            label = (
                f"factor [{categories.get((workflow_id, position), 'other')}]"
                if what == "factor"
                else what
            )
            result.setdefault(workflow_id, []).append((label, text, similarity.decode(stored)))
    return result


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
    """The later post-mortems that found this one related, newest first (limits.RELATED);
    flagged as repeats after a verified action as the record says now (an action of this one
    answered "worked" after a later one looked is counted too)."""
    with record.reading() as connection:
        rows = connection.execute(
            select(*_HEAD, links.c.reasons, links.c.similarity, links.c.verified_repeat,
                   postmortems.c.document["incident"]["started_at"].as_string())
            .join(links, links.c.workflow_id == postmortems.c.workflow_id)
            .where(links.c.related_id == workflow_id, postmortems.c.private.is_(False))
            .order_by(postmortems.c.resolved_at.desc(), postmortems.c.workflow_id)
            .limit(limits.RELATED)
        ).all()  # fmt: skip
        service = connection.execute(
            select(postmortems.c.service).where(postmortems.c.workflow_id == workflow_id)
        ).scalar()
        unflagged = [r for r in rows if service and r.service == service and not r.verified_repeat]
        flags: dict[str, tuple[str, str]] = {}
        if unflagged and _has_verified(connection, workflow_id):
            categories = _categories(connection, [r.workflow_id for r in unflagged])
            for row in unflagged:
                began = _moment(row[-1]) or row.resolved_at
                found = _verified_repeats(
                    connection, [workflow_id], categories.get(row.workflow_id, set()), began
                )
                if workflow_id in found:
                    flags[row.workflow_id] = found[workflow_id]
    entries = [
        related.entry(
            _candidate(row),
            list(row.reasons),
            row.similarity,
            later=True,
            verified_repeat=row.verified_repeat,
        )
        for row in rows
    ]
    return [
        related.after_verified(e, *flags[e.workflow_id]) if e.workflow_id in flags else e
        for e in entries
    ]


def _has_verified(connection: Any, workflow_id: str) -> bool:
    return (
        connection.execute(
            select(actions.c.action_id)
            .where(
                actions.c.workflow_id == workflow_id,
                actions.c.verification == Verification.VERIFIED.value,
            )
            .limit(1)
        ).first()
        is not None
    )


def _categories(connection: Any, workflow_ids: list[str]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for workflow_id, category in connection.execute(
        select(factors.c.workflow_id, factors.c.category).where(
            factors.c.workflow_id.in_(workflow_ids)
        )
    ):
        found.setdefault(workflow_id, set()).add(category)
    return found


def _moment(value: str | None) -> datetime | None:
    """A moment the stored document wrote (ISO 8601), or None."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def flagged_now(record: Record, state: PostmortemState) -> PostmortemState:
    """The state with its earlier related post-mortems flagged as the record says now: an
    action of one answered "worked" after this one looked (its start, its findings) flags it
    all the same."""
    incident = state.incident
    categories = (
        {f.category.value for f in state.findings.contributing_factors} if state.findings else set()
    )
    candidates = [
        r.workflow_id
        for r in state.related
        if not r.later
        and not r.verified_repeat
        and incident.service
        and r.service == incident.service
    ]
    if not candidates or not categories:
        return state
    with record.reading() as connection:
        found = _verified_repeats(
            connection, candidates, categories, incident.started_at or incident.resolved_at
        )
    if not found:
        return state
    updated = [
        related.after_verified(r, *found[r.workflow_id])
        if r.workflow_id in found and not r.later
        else r
        for r in state.related
    ]
    return state.model_copy(update={"related": updated})


def both_ways(record: Record | None, state: PostmortemState) -> PostmortemState:
    """The state with the later post-mortems that found it added to its `related`, and its
    earlier ones flagged as repeats after a verified action as the record says now (shown by
    `status` and the page; never written back)."""
    if record is None:
        return state
    try:
        found = later(record, state.workflow_id)
        state = flagged_now(record, state)
    except RecordUnavailable:
        return state  # advice: the post-mortem is shown without its later relations
    known = {r.workflow_id for r in state.related}
    added = [r for r in found if r.workflow_id not in known]
    if not added:
        return state
    return state.model_copy(update={"related": [*state.related, *added]})
