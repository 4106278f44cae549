"""The read model's queries and the overdue list's ranking, without a server: the queries are
compared as text, and the ranking runs against an in-memory stand-in for visibility that
answers counts and listings of due-date ranges from a list of actions."""

from __future__ import annotations

import re
import time as clock
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes

import readmodel
from domain.models import Severity
from engine import BadFilter
from readmodel import actions_query, due_between, iso, ranked_actions
from workflows import search_attributes as sa

NOW = datetime(2027, 3, 10, 12, tzinfo=UTC)
BASE = "WorkflowType = 'ActionFollowUpWorkflow'"
RUNNING = f"{BASE} AND ExecutionStatus = 'Running' AND OpenActions = 1"


@pytest.fixture
def server_in_tokyo(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process's own time zone must never leak into a query."""
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    clock.tzset()
    yield
    monkeypatch.undo()
    clock.tzset()


def test_iso_is_utc_with_microseconds_and_a_z(server_in_tokyo: None):
    assert iso(datetime(2027, 3, 10, 13, 0, 5, 42, tzinfo=UTC)) == "2027-03-10T13:00:05.000042Z"
    plus_two = datetime.fromisoformat("2027-03-10T14:00:00+02:00")
    assert iso(plus_two) == "2027-03-10T12:00:00.000000Z"


def test_actions_query_open_by_default():
    assert actions_query() == RUNNING


def test_actions_query_every_filter():
    assert actions_query(overdue=True, team="payments", severity=Severity.SEV1) == (
        f"{RUNNING} AND OverdueActions = 1 AND PostmortemTeam = 'payments' "
        "AND PostmortemSeverity = 'SEV1'"
    )
    assert actions_query(overdue=False, severity="SEV3") == (
        f"{RUNNING} AND OverdueActions = 0 AND PostmortemSeverity = 'SEV3'"
    )


def test_actions_query_of_ended_actions_leaves_out_continued_runs():
    assert actions_query(running=False, team="platform") == (
        f"{BASE} AND ExecutionStatus != 'ContinuedAsNew' AND PostmortemTeam = 'platform'"
    )


def test_empty_filters_are_no_filters():
    assert actions_query(team="", severity="") == RUNNING


def test_a_filter_value_with_a_quote_is_refused():
    with pytest.raises(BadFilter):
        actions_query(team="x' OR 1=1 OR 'y")


def test_due_between_each_bound_on_its_own():
    start, end = NOW - timedelta(days=7), NOW
    assert due_between("Q", start, end) == (
        "Q AND NextActionDue >= '2027-03-03T12:00:00.000000Z' "
        "AND NextActionDue < '2027-03-10T12:00:00.000000Z'"
    )
    assert due_between("Q", None, end) == "Q AND NextActionDue < '2027-03-10T12:00:00.000000Z'"
    assert due_between("Q", start, None) == "Q AND NextActionDue >= '2027-03-03T12:00:00.000000Z'"
    assert due_between("Q", None, None) == "Q"


# -- the ranking ----------------------------------------------------------------------------


@dataclass
class Execution:
    id: str
    typed_search_attributes: TypedSearchAttributes
    title: str

    async def memo(self) -> dict[str, Any]:
        return {"postmortem_id": self.id.split("/")[0], "action_id": "a", "title": self.title}


@dataclass
class Visibility:
    """Follow-up workflows by id and due date, answering the two calls ranked_actions makes.
    It understands the clauses ranked_actions writes: overdue or not, team, and the range."""

    dues: dict[str, datetime]
    teams: dict[str, str] = field(default_factory=dict)
    severities: dict[str, str] = field(default_factory=dict)
    counted: list[str] = field(default_factory=list)
    listed: list[list[str]] = field(default_factory=list)  # the ids each listing returned

    def _matching(self, query: str) -> list[str]:
        assert query.startswith(RUNNING), query
        found = []
        for wf, due in self.dues.items():
            overdue = re.search(r"OverdueActions = (\d)", query)
            if overdue and int(overdue[1]) != int(due <= NOW):
                continue
            team = re.search(r"PostmortemTeam = '([^']*)'", query)
            if team and self.teams.get(wf, "payments") != team[1]:
                continue
            severity = re.search(r"PostmortemSeverity = '([^']*)'", query)
            if severity and self.severities.get(wf, "SEV2") != severity[1]:
                continue
            after = re.search(r"NextActionDue >= '([^']*)'", query)
            before = re.search(r"NextActionDue < '([^']*)'", query)
            if after and due < datetime.fromisoformat(after[1]):
                continue
            if before and due >= datetime.fromisoformat(before[1]):
                continue
            found.append(wf)
        return found

    async def count_workflows(self, query: str) -> SimpleNamespace:
        self.counted.append(query)
        return SimpleNamespace(count=len(self._matching(query)))

    async def list_workflows(self, query: str, limit: int | None = None) -> AsyncIterator[Any]:
        found = self._matching(query)
        self.listed.append(found)
        for wf in found:  # in no particular order, like the SQL store
            attributes = TypedSearchAttributes(
                [
                    SearchAttributePair(sa.TEAM, self.teams.get(wf, "payments")),
                    SearchAttributePair(sa.NEXT_ACTION_DUE, self.dues[wf]),
                ]
            )
            yield Execution(wf, attributes, title=f"Action {wf}")


def client(visibility: Visibility) -> Client:
    return visibility  # type: ignore[return-value]  # a data source standing in for Temporal


def _dues() -> dict[str, datetime]:
    offsets_in_hours = [-9000, -800, -800, -300, -47, -1, 0, 2, 30, 700, 2000, -5, -120, 60]
    return {
        f"pm-{i:02d}/action-a": NOW + timedelta(hours=h) for i, h in enumerate(offsets_in_hours)
    }


def _expected(dues: dict[str, datetime], overdue: bool) -> list[str]:
    chosen = [(due, wf) for wf, due in dues.items() if (due <= NOW) is overdue]
    return [wf for _, wf in sorted(chosen)]


@pytest.fixture(autouse=True)
def small_ranges(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readmodel, "LIST_AT_MOST", 2)  # so that ranges really split


@pytest.mark.parametrize("overdue", [True, False])
async def test_every_page_equals_the_sorted_full_list(overdue: bool):
    dues = _dues()
    expected = _expected(dues, overdue)
    for limit in (1, 2, 3, 5, 50):
        for offset in range(len(expected) + 2):
            total, rows = await ranked_actions(
                client(Visibility(dues)), NOW, offset=offset, limit=limit, overdue=overdue
            )
            assert total == len(expected)
            assert [r.workflow_id for r in rows] == expected[offset : offset + limit], (
                offset,
                limit,
            )


async def test_rows_carry_what_visibility_holds():
    dues = _dues()
    _, rows = await ranked_actions(client(Visibility(dues)), NOW, limit=1)
    (row,) = rows
    assert (row.workflow_id, row.postmortem_id, row.title) == (
        "pm-00/action-a",
        "pm-00",
        "Action pm-00/action-a",
    )
    assert (row.team, row.due) == ("payments", NOW - timedelta(hours=9000))


async def test_ties_are_ordered_by_workflow_id_and_never_split_forever():
    same = {f"pm-{i}/action-a": NOW - timedelta(days=3) for i in (4, 1, 3, 0, 2)}
    visibility = Visibility(same)
    total, rows = await ranked_actions(client(visibility), NOW, offset=1, limit=3)
    assert total == 5
    assert [r.workflow_id for r in rows] == ["pm-1/action-a", "pm-2/action-a", "pm-3/action-a"]
    assert len(visibility.listed) == 1  # the instant's range, listed once it is 2 s wide


@pytest.mark.parametrize(("offset", "limit"), [(0, 2), (1, 1), (2, 3), (3, 2), (4, 1), (6, 50)])
async def test_only_ranges_that_give_rows_to_the_page_are_listed(offset: int, limit: int):
    visibility = Visibility(_dues())
    _, rows = await ranked_actions(client(visibility), NOW, offset=offset, limit=limit)
    page = {r.workflow_id for r in rows}
    assert visibility.listed
    for found in visibility.listed:
        assert len(found) <= 2  # LIST_AT_MOST
        assert page & set(found), (found, page)  # skipped and empty ranges are only counted


async def test_a_range_of_exactly_list_at_most_rows_is_listed_unsplit():
    dues = {"pm-1/action-a": NOW - timedelta(days=300), "pm-2/action-a": NOW - timedelta(days=1)}
    visibility = Visibility(dues)
    total, rows = await ranked_actions(client(visibility), NOW)
    assert (total, len(rows)) == (2, 2)
    assert visibility.listed == [["pm-1/action-a", "pm-2/action-a"]]
    assert len(visibility.counted) == 2  # the total, then the whole range


async def test_a_page_holds_fifty_rows_unless_told_otherwise():
    dues = {f"pm-{i:02d}/action-a": NOW - timedelta(hours=i + 1) for i in range(60)}
    total, rows = await ranked_actions(client(Visibility(dues)), NOW)
    assert (total, len(rows)) == (60, 50)


async def test_an_offset_past_the_end_lists_nothing():
    dues = _dues()
    overdue = len(_expected(dues, True))
    visibility = Visibility(dues)
    total, rows = await ranked_actions(client(visibility), NOW, offset=overdue, limit=5)
    assert (total, rows) == (overdue, [])
    assert visibility.counted == [actions_query(overdue=True)]
    assert visibility.listed == []


async def test_overdue_actions_due_in_the_last_day_are_ranked_too():
    dues = {"pm-1/action-a": NOW - timedelta(minutes=5), "pm-2/action-a": NOW - timedelta(days=30)}
    total, rows = await ranked_actions(client(Visibility(dues)), NOW, limit=5)
    assert total == 2
    assert [r.workflow_id for r in rows] == ["pm-2/action-a", "pm-1/action-a"]


async def test_actions_due_far_ahead_are_ranked_among_the_open_ones():
    dues = {"pm-1/action-a": NOW + timedelta(days=3000), "pm-2/action-a": NOW + timedelta(days=1)}
    total, rows = await ranked_actions(client(Visibility(dues)), NOW, overdue=False)
    assert total == 2
    assert [r.workflow_id for r in rows] == ["pm-2/action-a", "pm-1/action-a"]


async def test_the_team_filter_reaches_every_query():
    dues = _dues()
    teams = {wf: "platform" for wf in list(dues)[::2]}
    visibility = Visibility(dues, teams)
    total, rows = await ranked_actions(client(visibility), NOW, team="platform", limit=50)
    expected = [wf for wf in _expected(dues, True) if wf in teams]
    assert (total, [r.workflow_id for r in rows]) == (len(expected), expected)
    assert all("PostmortemTeam = 'platform'" in q for q in visibility.counted)


async def test_the_severity_filter_reaches_every_query():
    dues = _dues()
    severities = {wf: "SEV1" for wf in list(dues)[1::3]}
    visibility = Visibility(dues, severities=severities)
    total, rows = await ranked_actions(client(visibility), NOW, severity="SEV1", limit=50)
    expected = [wf for wf in _expected(dues, True) if wf in severities]
    assert (total, [r.workflow_id for r in rows]) == (len(expected), expected)
    assert all("PostmortemSeverity = 'SEV1'" in q for q in visibility.counted)
