"""The custom search attributes: defined once, used by workflows, worker, CLI, tests, server."""

from __future__ import annotations

from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

PHASE = SearchAttributeKey.for_keyword("PostmortemPhase")
TEAM = SearchAttributeKey.for_keyword("PostmortemTeam")
SEVERITY = SearchAttributeKey.for_keyword("PostmortemSeverity")
INCIDENT_ID = SearchAttributeKey.for_keyword("IncidentId")
OPEN_ACTIONS = SearchAttributeKey.for_int("OpenActions")
OVERDUE_ACTIONS = SearchAttributeKey.for_int("OverdueActions")
NEXT_ACTION_DUE = SearchAttributeKey.for_datetime("NextActionDue")
# Follow-ups: "<tracker>:<key>" of the action's ticket, so a tracker webhook finds its workflow.
TICKET_KEY = SearchAttributeKey.for_keyword("TicketKey")
# Post-mortems: what a tracker refused ("team, tracker: what it said"), shown by `list`.
TRACKER_PROBLEMS = SearchAttributeKey.for_keyword_list("TrackerProblems")
# Post-mortems: the kinds of their problems (domain.models.ProblemKind), for the metrics.
PROBLEM_KINDS = SearchAttributeKey.for_keyword_list("ProblemKinds")
# For the dashboard's counts. SQL visibility allows 3 Int and 3 Datetime attributes per
# namespace: all six are used.
REVIEW_DUE = SearchAttributeKey.for_datetime("ReviewDue")  # post-mortems awaiting a review
ACTION_OPENED_AT = SearchAttributeKey.for_datetime("ActionOpenedAt")  # stable across runs
ACTION_TYPE = SearchAttributeKey.for_keyword("ActionType")
ACTION_STATE = SearchAttributeKey.for_keyword("ActionState")
ESCALATION_LEVEL = SearchAttributeKey.for_int("EscalationLevel")
# Post-mortems: the service (component, system) the incident was on; set when it starts.
SERVICE = SearchAttributeKey.for_keyword("PostmortemService")

ALL = (
    PHASE,
    TEAM,
    SEVERITY,
    INCIDENT_ID,
    OPEN_ACTIONS,
    OVERDUE_ACTIONS,
    NEXT_ACTION_DUE,
    TICKET_KEY,
    TRACKER_PROBLEMS,
    PROBLEM_KINDS,
    REVIEW_DUE,
    ACTION_OPENED_AT,
    ACTION_TYPE,
    ACTION_STATE,
    ESCALATION_LEVEL,
    SERVICE,
)


_TYPE_NAMES = {
    "KEYWORD": "Keyword",
    "INT": "Int",
    "DATETIME": "Datetime",
    "KEYWORD_LIST": "KeywordList",
}


def ticket_key(tracker: str, key: str) -> str:
    return f"{tracker}:{key}"


def dev_server_flags() -> list[str]:
    """`--search-attribute Name=Type` for `temporal server start-dev`."""
    flags = []
    for key in ALL:
        flags += ["--search-attribute", f"{key.name}={_TYPE_NAMES[key.indexed_value_type.name]}"]
    return flags


_UNSET = object()


def current_values() -> dict[str, object]:
    """The workflow's search attributes as it started (or continued) with them: the first
    `upsert_changed` then sends only what really differs."""
    current = workflow.info().typed_search_attributes
    return {key.name: current.get(key) for key in ALL if current.get(key) is not None}


def upsert_changed(cache: dict[str, object], values: dict[str, object]) -> None:
    """Upsert only what changed since the last call (`cache` is the workflow's own memory),
    so that history grows by an event per real change, not per loop turn. None unsets."""
    updates = []
    for key in ALL:
        if key.name not in values:
            continue
        value = values[key.name]
        if cache.get(key.name, _UNSET) == value:
            continue
        cache[key.name] = value
        updates.append(key.value_unset() if value is None else key.value_set(value))  # type: ignore[arg-type]
    if updates:
        workflow.upsert_search_attributes(updates)


def initial(values: dict[SearchAttributeKey[Any], Any]) -> TypedSearchAttributes:
    """Search attributes to start a workflow with; None values are left out."""
    return TypedSearchAttributes(
        [SearchAttributePair(key, value) for key, value in values.items() if value is not None]
    )
