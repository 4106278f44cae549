"""The GitHub tracker through the real PyGithub client, over HTTP, against the emulator."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from domain.models import TicketRef
from integrations.errors import TicketNotFound, TrackerRejected, TrackerUnavailable
from integrations.github import GitHubTarget, GitHubTracker
from integrations.jira import idempotency_label
from integrations.tracker import TicketRequest
from tests.fakes.github import GitHubEmulator
from tests.fakes.server import Fault

KEY = "postmortem-manual-INC-1/alert"


@pytest.fixture
def github() -> Iterator[GitHubEmulator]:
    emulator = GitHubEmulator(per_page=2).start()
    yield emulator
    emulator.stop()


def tracker_for(github: GitHubEmulator, **overrides) -> GitHubTracker:
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


def ticket(key: str = KEY, **overrides) -> TicketRequest:
    fields = {
        "idempotency_key": key,
        "team": "platform",
        "title": "[detect] Alert on checkout errors",
        "body": "Why and what.",
        "assignee": "kim@example.com",
        "labels": ["postmortem", "INC-1"],
        "due": datetime(2027, 2, 15, 22, 30, tzinfo=UTC),
    }
    fields.update(overrides)
    return TicketRequest(**fields)


def test_create_with_labels_marker_and_assignee_once(github: GitHubEmulator):
    tracker = tracker_for(github)
    ref = tracker.create_ticket(ticket())
    assert ref == TicketRef(
        tracker="github",
        key=f"{github.repo_name}#1",
        url=f"https://github.example/{github.repo_name}/issues/1",
    )
    issue = github.state.issues[1]
    assert [label["name"] for label in issue["labels"]] == [
        "postmortem",
        "INC-1",
        idempotency_label(KEY),
    ]
    assert f"<!-- postmortem-engine key={KEY} -->" in issue["body"]
    assert "Due: 2027-02-15" in issue["body"]
    assert [a["login"] for a in issue["assignees"]] == ["kimgh"]
    assert tracker.create_ticket(ticket()) == ref
    assert len(github.state.issues) == 1


def test_found_again_by_a_fresh_client_among_many(github: GitHubEmulator):
    tracker = tracker_for(github)
    first = tracker.create_ticket(ticket("k/1"))
    for n in range(2, 7):
        tracker.create_ticket(ticket(f"k/{n}"))
    assert tracker_for(github).create_ticket(ticket("k/1")) == first  # a fresh client too
    assert len(github.state.issues) == 6


def test_unknown_login_files_unassigned_with_a_note_and_milestone(github: GitHubEmulator):
    ref = tracker_for(github, milestones=True).create_ticket(ticket(assignee="x@example.com"))
    issue = github.state.issues[int(ref.key.rpartition("#")[2])]
    assert issue["assignees"] == []
    assert "Owner: x@example.com (no GitHub login known)" in issue["body"]
    assert issue["milestone"]["title"] == "Due 2027-02-15"
    assert github.state.milestones[1]["due_on"] == "2027-02-15T00:00:00Z"


def test_status_and_comments(github: GitHubEmulator):
    tracker = tracker_for(github)
    ref = tracker.create_ticket(ticket())
    assert not tracker.ticket_status(ref).done
    github.close(1, "not_planned")
    assert tracker.ticket_status(ref).resolution == "not_planned"
    github.reopen(1)
    assert not tracker.ticket_status(ref).done
    github.close(1)
    assert tracker.ticket_status(ref).resolution == "completed"
    tracker.comment(ref, "@kim@example.com @x@example.com: reminder")
    assert github.state.comments[1] == ["@kimgh @x@example.com: reminder"]
    with pytest.raises(TicketNotFound):
        tracker.comment(TicketRef(tracker="github", key="#42", url="x"), "hello")


def test_rejections_are_typed_and_carry_no_secret(github: GitHubEmulator):
    with pytest.raises(TrackerRejected) as caught:
        tracker_for(github, token="wrong").create_ticket(ticket())
    assert "HTTP 401: Bad credentials" in str(caught.value) and "wrong" not in str(caught.value)
    with pytest.raises(TrackerRejected) as caught:
        tracker_for(github, logins={"kim@example.com": "ghost"}).create_ticket(ticket())
    assert "HTTP 422: Validation Failed" in str(caught.value)


def test_outages_are_retryable_and_post_is_never_retried_by_the_client(github: GitHubEmulator):
    tracker = tracker_for(github)
    tracker.create_ticket(ticket("warm-up"))
    github.inject(Fault(method="POST", path=r".*/issues", status=502))
    with pytest.raises(TrackerUnavailable):
        tracker.create_ticket(ticket())
    github.inject(Fault(method="GET", path=r".*/issues", status=429, retry_after=30))
    with pytest.raises(TrackerUnavailable) as caught:
        tracker.create_ticket(ticket())
    assert caught.value.retry_after == 30
    github.inject(Fault(method="POST", path=r".*/issues", reset=True))
    with pytest.raises(TrackerUnavailable):
        tracker.create_ticket(ticket())
    assert github.count("POST", r".*/issues") == 3  # warm-up + one per failed call
    assert len(github.state.issues) == 1


def test_created_but_answer_lost_is_found_on_retry(github: GitHubEmulator):
    tracker = tracker_for(github)
    github.inject(Fault(method="POST", path=r".*/issues", lost=True))
    with pytest.raises(TrackerUnavailable):
        tracker.create_ticket(ticket())
    assert len(github.state.issues) == 1
    assert tracker.create_ticket(ticket()).key == f"{github.repo_name}#1"
    assert len(github.state.issues) == 1


def test_a_github_app_installation_files_with_its_own_token():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    github = GitHubEmulator(app=(4242, public)).start()
    try:
        tracker = tracker_for(github, token="", app_id=4242, installation_id=7, private_key=private)
        ref = tracker.create_ticket(ticket())
        assert ref.key == f"{github.repo_name}#1"
        assert len(github.installation_tokens) == 1  # it filed with an installation token
        wrong = tracker_for(github, token="", app_id=999, installation_id=7, private_key=private)
        with pytest.raises(TrackerRejected, match="HTTP 401"):
            wrong.create_ticket(ticket("other"))
    finally:
        github.stop()


# One table for what GitHub's states mean, against both paths: the poll and the webhook.
GITHUB_STATES = [
    (None, False, ""),  # open
    ("completed", True, "completed"),
    ("not_planned", True, "not_planned"),
    ("duplicate", True, "not_planned"),
]


@pytest.mark.parametrize(("reason", "done", "meaning"), GITHUB_STATES)
def test_one_mapping_for_the_poll_and_the_webhook(
    github: GitHubEmulator, reason: str | None, done: bool, meaning: str
):
    from integrations.github import ticket_status_of
    from tests.test_webhooks import github_event

    tracker = tracker_for(github)
    ref = tracker.create_ticket(ticket())
    number = int(ref.key.rpartition("#")[2])
    if done:
        github.close(number, reason)  # type: ignore[arg-type]
    polled = tracker.ticket_status(ref)
    webhook = json.loads(github_event(github.repo_name, number, "closed" if done else "reopened"))
    webhook["issue"]["state_reason"] = reason if done else "reopened"
    hinted = ticket_status_of(ref, webhook["issue"])
    assert (polled.done, polled.resolution) == (hinted.done, hinted.resolution) == (done, meaning)
