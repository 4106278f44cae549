"""The Jira tracker through the real `jira` client, over HTTP, against the emulator."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from domain.models import TicketRef
from integrations.errors import TicketNotFound, TrackerRejected, TrackerUnavailable
from integrations.jira import JiraTarget, JiraTracker, idempotency_label
from integrations.tracker import TicketRequest
from tests.fakes.jira import JiraEmulator
from tests.fakes.server import Fault


@pytest.fixture(params=["cloud", "datacenter"])
def jira(request: pytest.FixtureRequest) -> Iterator[JiraEmulator]:
    emulator = JiraEmulator(cloud=request.param == "cloud").start()
    yield emulator
    emulator.stop()


def tracker_for(jira: JiraEmulator, **overrides) -> JiraTracker:
    fields: dict[str, Any] = {
        "team": "payments",
        "url": jira.base_url,
        "project": "PAY",
        "deployment": "cloud" if jira.cloud else "datacenter",
        "email": jira.email,
        "token": jira.token,
        "timeout_seconds": 5.0,
    }
    fields.update(overrides)
    return JiraTracker(JiraTarget(**fields))


def ticket(key: str = "postmortem-manual-INC-1/canary", **overrides) -> TicketRequest:
    fields = {
        "idempotency_key": key,
        "team": "payments",
        "title": "[prevent] Add a canary stage",
        "body": "Why and what.",
        "assignee": "alex@example.com",
        "labels": ["postmortem", "INC-1"],
        "due": datetime(2027, 1, 15, 16, tzinfo=UTC),
        "priority": "P1",
    }
    fields.update(overrides)
    return TicketRequest(**fields)


def test_create_files_every_field_once(jira: JiraEmulator):
    tracker = tracker_for(jira)
    ref = tracker.create_ticket(ticket())
    assert ref == TicketRef(tracker="jira", key="PAY-1", url=f"{jira.base_url}/browse/PAY-1")
    fields = jira.state.issues["PAY-1"]["fields"]
    assert fields["summary"] == "[prevent] Add a canary stage"
    assert fields["labels"] == [
        "postmortem",
        "INC-1",
        idempotency_label("postmortem-manual-INC-1/canary"),
    ]
    assert fields["duedate"] == "2027-01-15"
    assert fields["priority"] == {"name": "Highest"}
    assert fields["assignee"] == ({"accountId": "acc-alex"} if jira.cloud else {"name": "alex"})
    # Again with the same key: found, not filed twice.
    assert tracker.create_ticket(ticket()) == ref
    assert list(jira.state.issues) == ["PAY-1"]


def test_unknown_owner_files_unassigned_with_a_note(jira: JiraEmulator):
    ref = tracker_for(jira).create_ticket(ticket(assignee="nobody@example.com"))
    fields = jira.state.issues[ref.key]["fields"]
    assert "assignee" not in fields
    assert "Owner: nobody@example.com (no Jira user found)" in fields["description"]


def test_status_reads_the_category_not_the_name(jira: JiraEmulator):
    tracker = tracker_for(jira)
    ref = tracker.create_ticket(ticket())
    assert not tracker.ticket_status(ref).done
    jira.set_status("PAY-1", "indeterminate")
    assert not tracker.ticket_status(ref).done
    jira.set_status("PAY-1", "done", resolution="Done")
    assert tracker.ticket_status(ref).model_dump(include={"done", "resolution"}) == {
        "done": True,
        "resolution": "completed",
    }
    jira.set_status("PAY-1", "done", resolution="Won't Do")
    assert tracker.ticket_status(ref).resolution == "not_planned"


def test_comment_and_link(jira: JiraEmulator):
    tracker = tracker_for(jira)
    tracking = tracker.create_ticket(ticket("pm/postmortem", assignee=None))
    action = tracker.create_ticket(ticket(related_key=tracking.key))
    tracker.comment(action, "@alex@example.com @x@example.com: reminder, due soon")
    mention = "[~accountid:acc-alex]" if jira.cloud else "[~alex]"
    assert jira.state.comments[action.key] == [f"{mention} @x@example.com: reminder, due soon"]
    assert jira.state.links == [("Relates", action.key, tracking.key)]


def test_rejections_are_typed_and_carry_no_secret(jira: JiraEmulator):
    with pytest.raises(TrackerRejected) as caught:
        tracker_for(jira, project="NOPE").create_ticket(ticket())
    assert "HTTP 400: project: valid project is required" in str(caught.value)
    with pytest.raises(TrackerRejected) as caught:
        tracker_for(jira, token="wrong-token").create_ticket(ticket())
    assert "HTTP 401" in str(caught.value)
    assert "wrong-token" not in str(caught.value) and jira.token not in str(caught.value)
    with pytest.raises(TicketNotFound):
        tracker_for(jira).comment(TicketRef(tracker="jira", key="PAY-99", url="x"), "hello")


def test_outages_are_retryable_with_retry_after(jira: JiraEmulator):
    tracker = tracker_for(jira)
    assert tracker.client is not None  # connect first
    jira.inject(Fault(method="GET", path=r".*/search.*", status=429, retry_after=7))
    with pytest.raises(TrackerUnavailable) as caught:
        tracker.create_ticket(ticket())
    assert caught.value.retry_after == 7
    jira.inject(Fault(method="POST", path=r".*/issue", status=503))
    with pytest.raises(TrackerUnavailable):
        tracker.create_ticket(ticket())
    jira.inject(Fault(method="POST", path=r".*/issue", reset=True))
    with pytest.raises(TrackerUnavailable):
        tracker.create_ticket(ticket())
    # The client never retried a POST on its own: one attempt per call, nothing filed yet.
    assert jira.count("POST", r".*/issue") == 2
    assert jira.state.issues == {}


def test_created_but_answer_lost_is_found_on_retry(jira: JiraEmulator):
    tracker = tracker_for(jira)
    jira.inject(Fault(method="POST", path=r".*/issue", lost=True))
    with pytest.raises(TrackerUnavailable):
        tracker.create_ticket(ticket())
    assert list(jira.state.issues) == ["PAY-1"]  # it was created
    assert tracker.create_ticket(ticket()).key == "PAY-1"  # and the retry finds it
    assert list(jira.state.issues) == ["PAY-1"]
