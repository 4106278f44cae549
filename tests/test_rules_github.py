"""GitHub's lookups and mappings at their edges (the emulator of tests/fakes as the server):
the cases mutation testing showed no test pinned down."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from domain.models import TicketRef
from integrations.errors import TicketNotFound
from integrations.github import GitHubTarget, GitHubTracker
from integrations.jira import idempotency_label
from integrations.tracker import TicketRequest, TicketStatus
from tests.fakes.github import GitHubEmulator
from tests.fakes.server import Fault

KEY = "postmortem-manual-INC-7/canary"
MARKER = f"<!-- postmortem-engine key={KEY} -->"


@pytest.fixture
def github() -> Iterator[GitHubEmulator]:
    emulator = GitHubEmulator().start()
    yield emulator
    emulator.stop()


def tracker_for(github: GitHubEmulator, **overrides: Any) -> GitHubTracker:
    fields: dict[str, Any] = {
        "team": "platform",
        "repo": github.repo_name,
        "api_url": github.base_url,
        "token": github.token,
        "logins": {"kim@example.com": "kimgh"},
        "timeout_seconds": 5,
    }
    fields.update(overrides)
    return GitHubTracker(GitHubTarget(**fields))


def ticket(**overrides: Any) -> TicketRequest:
    fields: dict[str, Any] = {
        "idempotency_key": KEY,
        "team": "platform",
        "title": "[repair] Canary config",
        "body": "Why and what.",
        "assignee": "kim@example.com",
        "labels": ["postmortem"],
        "due": datetime(2027, 2, 15, 22, 30, tzinfo=UTC),
    }
    fields.update(overrides)
    return TicketRequest(**fields)


def test_a_closed_ticket_is_still_found_and_not_filed_twice(github: GitHubEmulator):
    tracker = tracker_for(github)
    ref = tracker.create_ticket(ticket())
    github.close(1)
    assert tracker_for(github).find_ticket(KEY, "platform") == ref
    assert tracker_for(github).create_ticket(ticket()) == ref
    assert len(github.state.issues) == 1


def test_the_body_is_the_text_then_the_due_date_then_the_marker(github: GitHubEmulator):
    tracker_for(github).create_ticket(ticket())
    assert github.state.issues[1]["body"] == f"Why and what.\n\nDue: 2027-02-15\n\n{MARKER}"


def test_an_owner_without_login_is_named_after_the_text(github: GitHubEmulator):
    tracker_for(github).create_ticket(ticket(assignee="x@example.com", due=None))
    issue = github.state.issues[1]
    assert issue["body"] == (
        f"Why and what.\n\nOwner: x@example.com (no GitHub login known)\n\n{MARKER}"
    )
    assert issue["assignees"] == []


def test_no_owner_means_no_owner_line_and_no_assignee(github: GitHubEmulator):
    tracker_for(github).create_ticket(ticket(assignee=None, due=None))
    issue = github.state.issues[1]
    assert issue["body"] == f"Why and what.\n\n{MARKER}"
    assert issue["assignees"] == []


def test_an_owner_given_as_a_login_is_assigned_as_is(github: GitHubEmulator):
    tracker_for(github).create_ticket(ticket(assignee="octocat"))
    issue = github.state.issues[1]
    assert [a["login"] for a in issue["assignees"]] == ["octocat"]
    assert "Owner:" not in issue["body"]


def test_milestones_only_when_the_team_asks_for_them(github: GitHubEmulator):
    tracker_for(github).create_ticket(ticket())
    assert github.state.issues[1]["milestone"] is None
    assert github.state.milestones == {}


def test_titles_and_labels_are_cut_to_github_s_limits(github: GitHubEmulator):
    long_label = "team-" + "x" * 60
    tracker_for(github).create_ticket(ticket(title="T" * 300, labels=[long_label, long_label[:50]]))
    issue = github.state.issues[1]
    assert issue["title"] == "T" * 256
    assert [label["name"] for label in issue["labels"]] == [
        long_label[:50],
        idempotency_label(KEY),
    ]


def test_labels_are_created_once_in_the_engine_s_colour(github: GitHubEmulator):
    tracker = tracker_for(github)
    tracker.create_ticket(ticket())
    assert github.state.labels["postmortem"]["color"] == "5319e7"
    assert github.state.labels[idempotency_label(KEY)]["color"] == "5319e7"
    assert github.count("GET", r".*/labels/postmortem") == 1
    tracker.create_ticket(ticket(idempotency_key="postmortem-manual-INC-7/other"))
    assert github.count("GET", r".*/labels/postmortem") == 1  # known from the first time
    assert github.count("POST", r".*/labels") == 3


def test_an_existing_label_is_used_as_it_is(github: GitHubEmulator):
    tracker_for(github).repo.create_label("postmortem", "00ff00")  # someone made it before
    tracker_for(github).create_ticket(ticket())
    assert github.state.labels["postmortem"]["color"] == "00ff00"
    assert github.count("POST", r".*/labels") == 2  # theirs, then the idempotency label


def test_a_label_created_meanwhile_elsewhere_is_fine(github: GitHubEmulator):
    github.inject(Fault(method="POST", path=r".*/labels", status=422))
    ref = tracker_for(github).create_ticket(ticket())
    assert ref.key == f"{github.repo_name}#1"


def test_status_maps_open_completed_and_not_planned(github: GitHubEmulator):
    tracker = tracker_for(github)
    ref = tracker.create_ticket(ticket())
    assert tracker.ticket_status(ref) == TicketStatus(
        ref=ref, done=False, resolution="", status_name="open"
    )
    github.close(1, "duplicate")
    assert tracker.ticket_status(ref) == TicketStatus(
        ref=ref, done=True, resolution="not_planned", status_name="closed"
    )
    github.reopen(1)
    assert tracker.ticket_status(ref).resolution == ""
    github.close(1, "completed")
    assert tracker.ticket_status(ref) == TicketStatus(
        ref=ref, done=True, resolution="completed", status_name="closed"
    )


def test_a_missing_ticket_is_named_in_the_error(github: GitHubEmulator):
    missing = TicketRef(tracker="github", key=f"{github.repo_name}#42", url="x")
    with pytest.raises(TicketNotFound, match=f"ticket {github.repo_name}#42 not found"):
        tracker_for(github).ticket_status(missing)
