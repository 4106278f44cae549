"""Validation of a review's findings: every problem named at once, with where it is."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from domain import limits, verification
from domain.models import ActionSpec, CorrectiveAction, Findings
from domain.scheduling import WorkingHours, due_instant


@dataclass(frozen=True)
class TeamCalendar:
    """What the findings checks need to know of a team: that it exists, and its clock."""

    timezone: ZoneInfo
    hours: WorkingHours = field(default_factory=WorkingHours)


def describe_validation_error(error: ValidationError) -> list[str]:
    """One line per problem, located like `actions[1].owner: Field required`."""
    lines = []
    for item in error.errors():
        where = _location(item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown field (check the spelling)"
        lines.append(f"{where}: {message}" if where else message)
    return lines


def _location(loc: Iterable[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif str(part) in ("date", "datetime") and out.endswith("due"):
            continue  # pydantic reports each branch of `date | datetime`; the field is enough
        else:
            out += f".{part}" if out else str(part)
    return out


RELATIVE_DUE = re.compile(r"\s*(\d{1,4})\s*([dw])\s*")


def resolve_relative_dues(data: object, today: date) -> object:
    """A findings file may give an action's `due` as a span from today ("30d", "6w"), so a
    template or an example never goes stale; it becomes that calendar date. Anything else is
    left for validation to judge."""
    if not isinstance(data, dict) or not isinstance(data.get("actions"), list):
        return data
    actions = []
    for action in data["actions"]:
        due = action.get("due") if isinstance(action, dict) else None
        match = RELATIVE_DUE.fullmatch(due) if isinstance(due, str) else None
        if match:
            days = int(match.group(1)) * (7 if match.group(2) == "w" else 1)
            action = {**action, "due": (today + timedelta(days=days)).isoformat()}
        actions.append(action)
    return {**data, "actions": actions}


def parse_findings(data: object) -> tuple[Findings | None, list[str]]:
    if not isinstance(data, dict):
        return None, ["the findings must be a mapping of fields (a YAML or JSON object)"]
    try:
        return Findings.model_validate(data), []
    except ValidationError as exc:
        return None, _dedupe(describe_validation_error(exc))


def check_findings(
    findings: Findings,
    *,
    now: datetime,
    teams: Mapping[str, TeamCalendar] | None = None,
    existing_action_ids: Iterable[str] = (),
) -> list[str]:
    """Problems that need more than the field types: the rules of the method.

    `teams` is None where the routing is not at hand (the workflow's validator); the
    team checks then wait for the activity that has it.
    """
    problems = limits.findings_problems(findings)
    if _same_text(findings.proximate_cause, findings.root_cause):
        problems.append(
            "root_cause: repeats the proximate cause; the root cause says what about the "
            "system allowed the proximate cause to happen"
        )
    problems += check_actions(
        findings.actions, now=now, teams=teams, existing_action_ids=existing_action_ids
    )
    return problems


def check_actions(
    actions: list[ActionSpec],
    *,
    now: datetime,
    teams: Mapping[str, TeamCalendar] | None = None,
    existing_action_ids: Iterable[str] = (),
    field: str = "actions",
) -> list[str]:
    problems: list[str] = []
    seen = set(existing_action_ids)
    for index, spec in enumerate(actions):
        where = f"{field}[{index}] ({spec.title!r})"
        if spec.id is not None:
            if spec.id in seen:
                problems.append(f"{where}: id {spec.id!r} is used by another action")
            seen.add(spec.id)
        if teams is not None and spec.team not in teams:
            known = ", ".join(sorted(teams)) or "none"
            problems.append(
                f"{where}: team {spec.team!r} is not in the routing file (known teams: {known})"
            )
        problems += limits.too_long(f"{where}.description", spec.description, limits.NOTE)
        problems += limits.too_long(
            f"{where}.verify_question", spec.verify_question or "", limits.VERIFY_QUESTION
        )
        calendar = teams.get(spec.team) if teams is not None else None
        if _due_is_past(spec.due, now, calendar):
            problems.append(f"{where}: due date {spec.due} is in the past")
    return problems


def _due_is_past(due: datetime | date, now: datetime, calendar: TeamCalendar | None) -> bool:
    if isinstance(due, datetime):
        return due <= now
    if calendar is None:
        # Without the team's clock, only a date already over everywhere on earth is past:
        # the last time zone (UTC-12) ends day D at noon UTC of day D+1.
        return now >= datetime.combine(due + timedelta(days=1), time(12), tzinfo=UTC)
    return due_instant(due, calendar.timezone, calendar.hours) <= now


def resolve_actions(
    specs: list[ActionSpec],
    *,
    teams: Mapping[str, TeamCalendar],
    existing_action_ids: Iterable[str] = (),
) -> list[CorrectiveAction]:
    """Give every action an id and a due instant. Call after `check_actions` found nothing."""
    taken = set(existing_action_ids) | {s.id for s in specs if s.id}
    counter = 0
    actions = []
    for spec in specs:
        action_id = spec.id
        if action_id is None:
            counter += 1
            while f"a{counter}" in taken:
                counter += 1
            action_id = f"a{counter}"
            taken.add(action_id)
        calendar = teams[spec.team]
        due = (
            spec.due
            if isinstance(spec.due, datetime)
            else due_instant(spec.due, calendar.timezone, calendar.hours)
        )
        written = spec.model_dump(exclude={"id", "due", "verify_after_days", "verify_question"})
        actions.append(
            CorrectiveAction(
                **written,
                id=action_id,
                due=due,
                verify_after_days=verification.verify_days(spec),
                verify_question=verification.own_question(spec),
            )
        )
    return actions


def _same_text(a: str, b: str) -> bool:
    return " ".join(a.lower().split()).rstrip(".") == " ".join(b.lower().split()).rstrip(".")


def _dedupe(lines: list[str]) -> list[str]:
    return list(dict.fromkeys(lines))
