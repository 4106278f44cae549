"""The readers of the record (record/reads.py) against the rules they implement, written here
a second time in plain Python over the same post-mortems: random post-mortems (phases, teams,
severities, actions open, done or dropped, overdue or not, due dates around "now"), read back
through SQL on SQLite and on PostgreSQL, must give exactly what the rules give."""

from __future__ import annotations

import base64
import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from domain.models import (
    ActionState,
    ActionType,
    ContributingFactor,
    CorrectiveAction,
    FactorCategory,
    Phase,
    PhaseChange,
    PostmortemState,
    Problem,
    ProblemKind,
    ReviewOutcome,
    ReviewSlot,
    Severity,
)
from readmodel import AGEING
from record import reads
from record.store import Record
from tests import scenario

NOW = datetime(2026, 6, 10, 15, 30, tzinfo=UTC)  # a Wednesday
TEAMS = ["payments", "platform", "search"]
DAY = timedelta(days=1)


def random_states(seed: int, count: int = 60) -> list[PostmortemState]:
    rng = random.Random(seed)
    states = []
    for n in range(count):
        resolved = NOW - timedelta(minutes=rng.randint(10, 200 * 24 * 60))
        incident = scenario.incident(
            NOW,
            incident_id=f"INC-{seed}-{n}",
            team=rng.choice(TEAMS),
            severity=rng.choice(list(Severity)),
            resolved_at=resolved,
            started_at=resolved - timedelta(hours=1),
        )
        phase = rng.choice(list(Phase))
        reviewed = phase not in (
            Phase.OPTIONAL,
            Phase.DRAFTING,
            Phase.REVIEW_SCHEDULED,
            Phase.IN_REVIEW,
        ) and not (phase is Phase.CANCELLED and rng.random() < 0.5)
        # Findings accepted, the phase not moved on yet: its review is not late.
        reviewed = reviewed or (phase is Phase.IN_REVIEW and rng.random() < 0.3)
        # Windows closing around now, to the hour: late by an hour or on time by one.
        window_end = (
            NOW + timedelta(hours=rng.randint(-48, 48))
            if rng.random() < 0.5
            else resolved + timedelta(days=rng.randint(1, 60))
        )
        review = (
            ReviewSlot(start=window_end - DAY, window_end=window_end, timezone="UTC")
            if phase is not Phase.OPTIONAL and phase is not Phase.DRAFTING
            else None
        )
        accepted = resolved + timedelta(days=rng.randint(0, 40)) if reviewed else None
        findings = (
            ReviewOutcome(
                contributing_factors=[
                    ContributingFactor(category=FactorCategory.PROCESS_GAP, description="x")
                ],
                proximate_cause="p",
                root_cause="r",
                accepted_at=accepted or NOW,
            )
            if reviewed
            else None
        )
        actions = []
        for a in range(rng.randint(0, 4) if reviewed else 0):
            state = rng.choice(list(ActionState))
            # Whole days, so that many actions share a due date (the order must not).
            due = NOW + timedelta(days=rng.randint(-40, 20))
            actions.append(
                CorrectiveAction(
                    id=f"a{a}",
                    title=f"Action {a} of {n}",
                    type=rng.choice(list(ActionType)),
                    owner="alex@example.com",
                    team=rng.choice(TEAMS),
                    due=due,
                    state=state,
                    overdue=state is ActionState.OPEN and due < NOW and rng.random() < 0.8,
                    escalation_level=rng.randint(0, 2),
                    completed_at=(
                        NOW - timedelta(hours=rng.randint(0, 100 * 24))
                        if state is not ActionState.OPEN
                        else None
                    ),
                )
            )
        problems = (
            [Problem(kind=rng.choice(list(ProblemKind)), message=f"problem {n}", since=NOW)]
            if rng.random() < 0.2
            else []
        )
        # Some start at the same moment: the list's order and pages must not depend on luck.
        started = resolved + timedelta(minutes=rng.choice([1, 1, 2, 5]))
        states.append(
            PostmortemState(
                workflow_id=incident.workflow_id,
                incident=incident,
                phase=phase,
                review=review,
                findings=findings,
                actions=actions,
                problems=problems,
                phase_history=[PhaseChange(phase=Phase.DRAFTING, at=started)],
            )
        )
    return states


# -- the rules, in plain Python -----------------------------------------------------------


def late(s: PostmortemState, now: datetime) -> bool:
    return (
        s.phase.awaits_review
        and s.findings is None
        and s.review is not None
        and s.review.window_end < now
    )


def expected_overview(states: list[PostmortemState], now: datetime, team: str | None) -> dict:
    mine = [s for s in states if team is None or s.incident.team == team]
    pairs = [(s, a) for s in states for a in s.actions if team is None or a.team == team]
    open_ = [a for _, a in pairs if a.state is ActionState.OPEN]
    overdue = Counter(a.team for a in open_ if a.overdue)
    shown = {t: overdue.get(t, 0) for t in ([team] if team else TEAMS)}
    ages = [
        sum(now <= a.due < now + 7 * DAY for a in open_),
        sum(now - 7 * DAY <= a.due < now for a in open_),
        sum(now - 30 * DAY <= a.due < now - 7 * DAY for a in open_),
        sum(a.due < now - 30 * DAY for a in open_),
    ]
    window = [a for _, a in pairs if now - 90 * DAY <= a.due < now]
    monday = now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=now.weekday())
    starts = [monday - timedelta(weeks=w) for w in range(11, -1, -1)]

    def week_of(moment: datetime | None, start: datetime) -> bool:
        return moment is not None and start <= moment < start + timedelta(weeks=1)

    return {
        "phases": {p.value: sum(s.phase is p for s in mine) for p in Phase},
        "overdue_by_team": shown,
        "ageing": dict(zip(AGEING, ages, strict=True)),
        "late_reviews": sum(late(s, now) for s in mine),
        "completion": {
            k.value: (
                sum(a.type is k and a.state is ActionState.DONE for a in window),
                sum(a.type is k for a in window),
            )
            for k in ActionType
        },
        "weeks": [
            (
                start,
                sum(
                    week_of(s.findings.accepted_at if s.findings else None, start) for s, _ in pairs
                ),
                sum(
                    a.state is not ActionState.OPEN and week_of(a.completed_at, start)
                    for _, a in pairs
                ),
            )
            for start in starts
        ],
    }


def newest_first(states: list[PostmortemState]) -> list[str]:
    return [
        s.workflow_id
        for s in sorted(states, key=lambda s: (s.phase_history[0].at, s.workflow_id), reverse=True)
    ]


def filled(record: Record, states: list[PostmortemState]) -> None:
    for s in states:
        assert record.project(s, 1)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_overview_is_the_rules_over_every_post_mortem(record: Record, seed: int):
    states = random_states(seed)
    filled(record, states)
    for team in (None, *TEAMS):
        o = reads.overview(record, NOW, TEAMS, team=team)
        want = expected_overview(states, NOW, team)
        assert o.phases == want["phases"]
        assert o.overdue_by_team == want["overdue_by_team"]
        assert o.ageing == want["ageing"]
        assert o.late_reviews == want["late_reviews"]
        assert o.completion == want["completion"]
        assert [(w.week_start, w.opened, w.closed) for w in o.weeks] == want["weeks"]


@pytest.mark.parametrize("overdue", [True, False])
def test_action_pages_are_every_open_action_by_due_date(record: Record, overdue: bool):
    states = random_states(4, count=150)
    filled(record, states)
    for team, severity in ((None, None), ("payments", None), (None, "SEV2")):
        want = sorted(
            (
                (a.due, s.workflow_id, a.id)
                for s in states
                for a in s.actions
                if a.state is ActionState.OPEN
                and a.overdue is overdue
                and (team is None or a.team == team)
                and (severity is None or s.incident.severity.value == severity)
            ),
        )
        seen, offset = [], 0
        while True:
            total, rows = reads.ranked_actions(
                record, team=team, severity=severity, offset=offset, limit=7, overdue=overdue
            )
            assert total == len(want)
            if not rows:
                break
            seen += [(r.due, r.postmortem_id, r.action_id) for r in rows]
            offset += len(rows)
        assert seen == want


def test_post_mortem_pages_are_newest_first_never_skipped_or_repeated(record: Record):
    states = random_states(5, count=45)
    filled(record, states)
    cases = [
        (reads.PostmortemFilter(), lambda s: True),
        (reads.PostmortemFilter(team="platform"), lambda s: s.incident.team == "platform"),
        (reads.PostmortemFilter(phase=Phase.CLOSED), lambda s: s.phase is Phase.CLOSED),
        (reads.PostmortemFilter(severity="SEV1"), lambda s: s.incident.severity is Severity.SEV1),
        (
            reads.PostmortemFilter(overdue=True),
            lambda s: any(a.state is ActionState.OPEN and a.overdue for a in s.actions),
        ),
        (reads.PostmortemFilter(late_at=NOW), lambda s: late(s, NOW)),
        (
            reads.PostmortemFilter(with_problems=True),
            lambda s: bool(s.problems) and not s.phase.is_terminal,
        ),
    ]
    for chosen, rule in cases:
        ids, token = [], None
        while True:
            rows, token = reads.postmortem_page(record, chosen, limit=4, page_token=token)
            ids += [r.workflow_id for r in rows]
            if token is None:
                break
        assert ids == newest_first([s for s in states if rule(s)]), chosen
    by_id = {s.workflow_id: s for s in states}
    for row in reads.postmortem_list(record, reads.PostmortemFilter(), 100):
        s = by_id[row.workflow_id]
        open_ = [a for a in s.actions if a.state is ActionState.OPEN]
        assert row.open_actions == len(open_)
        assert row.overdue_actions == sum(a.overdue for a in open_)
        assert row.next_action_due == min((a.due for a in open_), default=None)
        assert row.problems == [p.message for p in s.problems]
        assert row.started_at == s.phase_history[0].at


def test_a_page_token_not_ours_is_refused(record: Record):
    def made(value: str) -> str:
        return base64.urlsafe_b64encode(value.encode()).decode()

    crafted = [
        "nonsense",
        "bm9uc2Vuc2U=",
        "WyIyMDI2LTA2LTEwIiwgMV0=",
        "W10=",
        made("[" * 1200),  # deep enough to exhaust the parser
        made('["9999-12-31T23:59:59-01:00", "x"]'),  # past what a moment holds, in UTC
        made('["0001-01-01T00:00:00+01:00", "x"]'),
        made('["2026-06-10T00:00:00+00:00", "a\\u0000b"]'),  # PostgreSQL's text holds no NUL
        made(f'["2026-06-10T00:00:00+00:00", "{"x" * 301}"]'),
        made('["2026-06-10T00:00:00", "x"]'),  # no zone
    ]
    for token in crafted:
        with pytest.raises(reads.BadPageToken):
            reads.postmortem_page(record, reads.PostmortemFilter(), limit=3, page_token=token)


def test_the_gauges_are_the_rules_over_every_post_mortem(record: Record):
    states = random_states(6)
    filled(record, states)
    g = reads.gauges(record, NOW, TEAMS, "search")
    running = [s for s in states if not s.phase.is_terminal]
    assert g.open_by_phase == {
        p.value: sum(s.phase is p for s in running) for p in Phase if not p.is_terminal
    }
    assert g.overdue_by_team == {
        t: sum(
            a.team == t and a.state is ActionState.OPEN and a.overdue
            for s in states
            for a in s.actions
        )
        for t in TEAMS
    }
    assert g.late_reviews == sum(late(s, NOW) for s in states)
    assert g.unrouted == sum(s.incident.team == "search" for s in running)
    assert g.actions_by_state == {
        st.value: sum(a.state is st for s in states for a in s.actions) for st in ActionState
    }
    assert g.problems_by_kind == {
        k.value: sum(any(p.kind is k for p in s.problems) for s in running) for k in ProblemKind
    }
