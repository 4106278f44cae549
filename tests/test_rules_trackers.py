"""The trackers' small rules, pinned: the idempotency label that finds tickets already filed
(changing it would file every ticket again), labels without spaces, and the one mapping of
a ticket's state when fields are missing or odd."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest

from domain.models import TicketRef
from integrations import github, jira
from integrations.tracker import TicketRequest

REF = TicketRef(tracker="jira", key="PAY-1", url="https://x/browse/PAY-1")


def test_the_idempotency_label_is_stable_across_releases():
    key = "postmortem-manual-INC-1/canary"
    # Pinned: labels already on tickets in real trackers must keep matching.
    assert jira.idempotency_label(key) == "pm-21c9687211f479c032ba"
    assert jira.idempotency_label(key) == "pm-" + hashlib.sha256(key.encode()).hexdigest()[:20]


def test_labels_hold_no_spaces_and_no_repeats():
    request = TicketRequest(
        idempotency_key="k",
        team="payments",
        title="t",
        body="b",
        labels=["post mortem", "INC 1", "post mortem"],
        due=datetime(2027, 1, 1, tzinfo=UTC),
    )
    assert jira._labels(request) == ["post-mortem", "INC-1", jira.idempotency_label("k")]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"status": {"name": "Closed", "statusCategory": {"key": "done"}}}, (True, "Closed")),
        (
            {"status": {"name": "In Review", "statusCategory": {"key": "indeterminate"}}},
            (False, "In Review"),
        ),
        ({"status": {"statusCategory": {"key": "done"}}}, (True, "")),
        ({}, (False, "")),
        (None, (False, "")),
        ({"status": "Done", "resolution": "Won't Do"}, (False, "")),
    ],
)
def test_jira_status_from_fields_however_odd(fields: object, expected: tuple[bool, str]):
    status = jira.ticket_status_of(REF, fields)
    assert (status.done, status.status_name) == expected


@pytest.mark.parametrize(
    ("issue", "expected"),
    [
        ({"state": "closed", "state_reason": "not_planned"}, (True, "not_planned", "closed")),
        ({"state": "closed"}, (True, "completed", "closed")),
        ({"state": "open", "state_reason": "reopened"}, (False, "", "open")),
        ({}, (False, "", "")),
        (None, (False, "", "")),
        ("closed", (False, "", "")),
    ],
)
def test_github_status_from_the_issue_however_odd(issue: object, expected: tuple[bool, str, str]):
    status = github.ticket_status_of(REF, issue)
    assert (status.done, status.resolution, status.status_name) == expected
