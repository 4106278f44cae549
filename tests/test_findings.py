"""Findings validation: every bad file refused with the message that names its problem."""

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from domain.findings import (
    TeamCalendar,
    check_actions,
    check_findings,
    parse_findings,
    resolve_actions,
    resolve_relative_dues,
)
from domain.models import ActionSpec, ActionType

HERE = Path(__file__).parent
REPO = HERE.parent
NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)
TEAMS = {
    "payments": TeamCalendar(ZoneInfo("Europe/Berlin")),
    "platform": TeamCalendar(ZoneInfo("America/New_York")),
}


def problems_of(name: str) -> list[str]:
    data = yaml.safe_load((HERE / "findings" / name).read_text())
    parsed, problems = parse_findings(data)
    if parsed is not None:
        problems = check_findings(parsed, now=NOW, teams=TEAMS)
    return problems


def test_the_example_findings_file_is_valid():
    raw = yaml.safe_load((REPO / "examples" / "findings.yaml").read_text())
    data = resolve_relative_dues(raw, NOW.date())
    parsed, problems = parse_findings(data)
    assert problems == []
    assert parsed is not None
    assert check_findings(parsed, now=NOW, teams=TEAMS) == []
    assert [a.due for a in parsed.actions] == [
        NOW.date() + timedelta(weeks=8),
        NOW.date() + timedelta(weeks=3),
        NOW.date() + timedelta(days=30),
        NOW.date() + timedelta(weeks=6),
    ]


@pytest.mark.parametrize(
    ("due", "expected"),
    [("30d", "2026-12-26"), (" 6w ", "2027-01-07"), ("0d", "2026-11-26"), ("2027-01-02", None)],
)
def test_a_due_date_may_be_a_span_from_today(due: str, expected: str | None):
    data: dict[str, Any] = {"summary": "s", "actions": [{"id": "a", "due": due}, "not a mapping"]}
    resolved = resolve_relative_dues(data, NOW.date())
    assert isinstance(resolved, dict)
    assert resolved["actions"][0]["due"] == (expected or due)
    assert resolved["actions"][1] == "not a mapping"  # left for validation to name
    assert data["actions"][0]["due"] == due  # the input is not changed in place


@pytest.mark.parametrize("due", ["30", "d", "-3d", "30 days", "1.5w", "12345d"])
def test_what_is_not_a_span_is_left_for_validation(due: str):
    data = {"actions": [{"due": due}]}
    assert resolve_relative_dues(data, NOW.date()) == data


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("missing-owner.yaml", ["actions[0].owner: Field required"]),
        (
            "past-due.yaml",
            [
                "actions[0] ('Require review for schema changes'): "
                "due date 2020-01-31 is in the past"
            ],
        ),
        (
            "unknown-team.yaml",
            [
                "actions[0] ('Assign an owner to the batch scheduler'): team 'logistics' is not "
                "in the routing file (known teams: payments, platform)"
            ],
        ),
        (
            "person-as-category.yaml",
            [
                "contributing_factors[0].category: Input should be 'process_gap', "
                "'tooling_limitation', 'unclear_ownership', 'missing_safeguard', "
                "'monitoring_gap', 'documentation_gap' or 'other'"
            ],
        ),
        (
            "no-factors.yaml",
            ["contributing_factors: List should have at least 1 item after validation, not 0"],
        ),
        (
            "same-causes.yaml",
            [
                "root_cause: repeats the proximate cause; the root cause says what about the "
                "system allowed the proximate cause to happen"
            ],
        ),
        (
            "typo-field.yaml",
            ["root_cause: Field required", "rootcause: unknown field (check the spelling)"],
        ),
        (
            "bad-action-type.yaml",
            [
                "actions[0].type: Input should be 'investigate', 'mitigate', 'repair', "
                "'detect', 'prevent' or 'process'"
            ],
        ),
        (
            "not-a-mapping.yaml",
            ["the findings must be a mapping of fields (a YAML or JSON object)"],
        ),
    ],
)
def test_bad_findings_refused_with_their_message(name, expected):
    assert problems_of(name) == expected


def test_every_problem_is_named_at_once():
    data = {
        "contributing_factors": [{"category": "process_gap", "description": "x"}],
        "proximate_cause": "Same.",
        "root_cause": "same",
        "actions": [
            {
                "id": "a",
                "title": "one",
                "type": "repair",
                "owner": "o",
                "team": "nobody",
                "due": "2020-01-01",
            },
            {
                "id": "a",
                "title": "two",
                "type": "repair",
                "owner": "o",
                "team": "payments",
                "due": "2099-01-01",
            },
        ],
    }
    parsed, problems = parse_findings(data)
    assert parsed is not None and problems == []
    problems = check_findings(parsed, now=NOW, teams=TEAMS)
    assert len(problems) == 4
    assert any("repeats the proximate cause" in p for p in problems)
    assert any("team 'nobody'" in p for p in problems)
    assert any("2020-01-01 is in the past" in p for p in problems)
    assert any("id 'a' is used by another action" in p for p in problems)


def spec(**overrides) -> ActionSpec:
    fields = {"title": "t", "type": ActionType.REPAIR, "owner": "o", "team": "payments"}
    fields.update(overrides)
    return ActionSpec.model_validate(fields)


def test_a_bare_due_date_is_past_only_once_the_teams_day_ended():
    today = NOW.date()  # 12:00 UTC = 13:00 Berlin, before the 17:00 end of day
    assert check_actions([spec(due=today)], now=NOW, teams=TEAMS) == []
    late = NOW.replace(hour=16, minute=30)  # 17:30 Berlin
    assert check_actions([spec(due=today)], now=late, teams=TEAMS) != []


def test_without_routing_only_a_date_over_everywhere_is_past():
    # 2026-11-25 ends last at UTC-12, i.e. at 2026-11-26 12:00 UTC.
    yesterday = (NOW - timedelta(days=1)).date()
    assert check_actions([spec(due=yesterday)], now=NOW - timedelta(minutes=1)) == []
    assert check_actions([spec(due=yesterday)], now=NOW) != []


def test_resolve_actions_assigns_ids_and_due_instants():
    actions = resolve_actions(
        [
            spec(due=datetime(2027, 1, 5).date()),
            spec(id="a1", due=NOW + timedelta(days=3)),
            spec(due=NOW + timedelta(days=9)),
        ],
        teams=TEAMS,
        existing_action_ids=["a2"],
    )
    assert [a.id for a in actions] == ["a3", "a1", "a4"]
    assert actions[0].due == datetime(2027, 1, 5, 16, tzinfo=UTC)  # 17:00 Berlin in winter
    assert actions[1].due == NOW + timedelta(days=3)
