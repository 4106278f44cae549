"""The Jira tracker through the real `jira` client, over HTTP, against the emulator."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from domain.models import TicketRef
from integrations.errors import TicketNotFound, TrackerRejected, TrackerUnavailable
from integrations.jira import JiraTarget, JiraTracker, idempotency_label, ticket_status_of
from integrations.tracker import CreationJournal, TicketRequest
from tests.fakes.jira import JiraEmulator
from tests.fakes.server import Fault

SEARCH_LAG = 2.0  # the emulated Cloud index's delay; Atlassian documents seconds to minutes


class Clock:
    """Seconds that pass only when a test says so: shared by the emulator's search index and
    the tracker's wait, so lags are tested without sleeping."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(params=["cloud", "datacenter"])
def jira(request: pytest.FixtureRequest) -> Iterator[JiraEmulator]:
    emulator = JiraEmulator(
        cloud=request.param == "cloud", search_lag=SEARCH_LAG, clock=Clock()
    ).start()
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
    return JiraTracker(JiraTarget(**fields), clock=jira.clock)


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
    clock = jira.clock
    assert isinstance(clock, Clock)
    clock.advance(tracker.target.search_lag)  # a 503 may follow a create: wait for search
    jira.inject(Fault(method="POST", path=r".*/issue", reset=True))
    with pytest.raises(TrackerUnavailable):
        tracker.create_ticket(ticket())
    # The client never retried a POST on its own: one attempt per call, nothing filed yet.
    assert jira.count("POST", r".*/issue") == 2
    assert jira.state.issues == {}


def test_created_but_answer_lost_is_found_on_retry(jira: JiraEmulator):
    """The create's answer is lost: on Cloud, search cannot show the issue for a while, so the
    retry is told to come back once it can (Temporal's next_retry_delay), never filing twice."""
    clock = jira.clock
    assert isinstance(clock, Clock)
    tracker = tracker_for(jira)
    jira.inject(Fault(method="POST", path=r".*/issue", lost=True))
    with pytest.raises(TrackerUnavailable):
        tracker.create_ticket(ticket())
    assert list(jira.state.issues) == ["PAY-1"]  # it was created
    if jira.cloud:
        with pytest.raises(TrackerUnavailable) as early:
            tracker.create_ticket(ticket())
        assert early.value.retry_after == tracker.target.search_lag == 60
        assert "may have filed the ticket" in str(early.value)
        clock.advance(early.value.retry_after)
    assert tracker.create_ticket(ticket()).key == "PAY-1"  # and the retry finds it
    assert list(jira.state.issues) == ["PAY-1"]
    assert jira.count("POST", r".*/issue") == 1


def test_a_fresh_worker_reads_the_journal_of_the_attempt_before(jira: JiraEmulator):
    """The worker died after sending the create: a new process has only the journal the
    activity kept in its heartbeat, and waits for the search just the same."""
    clock = jira.clock
    assert isinstance(clock, Clock)
    notes: list[dict[str, object]] = []
    journal = CreationJournal(on_change=lambda j: notes.append(j.as_details()))
    jira.inject(Fault(method="POST", path=r".*/issue", lost=True))
    with pytest.raises(TrackerUnavailable):
        tracker_for(jira).create_ticket(ticket(), journal)
    assert notes[0]["key"] is None and notes[0]["attempted_at"] == clock.now  # before sending
    after_crash = CreationJournal.from_details(notes[-1])
    if jira.cloud:
        with pytest.raises(TrackerUnavailable):
            tracker_for(jira).create_ticket(ticket(), after_crash)
        clock.advance(60)
    assert tracker_for(jira).create_ticket(ticket(), after_crash).key == "PAY-1"
    assert list(jira.state.issues) == ["PAY-1"]


def test_the_key_is_noted_before_the_link_so_a_retry_never_files_again(jira: JiraEmulator):
    tracking = tracker_for(jira).create_ticket(ticket("pm/postmortem", assignee=None))
    notes: list[dict[str, object]] = []
    journal = CreationJournal(on_change=lambda j: notes.append(j.as_details()))
    jira.inject(Fault(method="POST", path=r".*/issueLink", status=503))
    with pytest.raises(TrackerUnavailable):
        tracker_for(jira).create_ticket(ticket(related_key=tracking.key), journal)
    assert notes[-1] == {"key": "PAY-2", "attempted_at": None}
    # Another process, straight away (Cloud's search cannot see PAY-2 yet): by its key.
    fresh = CreationJournal.from_details(notes[-1])
    assert tracker_for(jira).create_ticket(ticket(related_key=tracking.key), fresh).key == "PAY-2"
    assert sorted(jira.state.issues) == ["PAY-1", "PAY-2"]
    assert jira.state.links == [("Relates", "PAY-2", "PAY-1")]


def test_a_refused_create_leaves_nothing_to_wait_for(jira: JiraEmulator):
    tracker = tracker_for(jira)
    with pytest.raises(TrackerRejected):
        tracker.create_ticket(ticket(assignee=None, title=""))
    assert tracker.create_ticket(ticket()).key == "PAY-1"  # no wait: nothing could exist


def test_the_emulated_cloud_search_lags_like_jira_cloud(jira: JiraEmulator):
    """The emulator is at least as strict as the vendor: a tracker that trusted search right
    after an uncertain create (no wait) files a duplicate on Cloud."""
    clock = jira.clock
    assert isinstance(clock, Clock)
    trusting = tracker_for(jira, search_lag_seconds=0)
    jira.inject(Fault(method="POST", path=r".*/issue", lost=True))
    with pytest.raises(TrackerUnavailable):
        trusting.create_ticket(ticket())
    trusting.create_ticket(ticket())
    assert sorted(jira.state.issues) == (["PAY-1", "PAY-2"] if jira.cloud else ["PAY-1"])
    label = idempotency_label("postmortem-manual-INC-1/canary")
    query = f'project = PAY AND labels = "{label}"'
    client = trusting.client
    if jira.cloud:
        fresh = [i.key for i in client.search_issues(query)]
        assert fresh == []  # neither is indexed yet
        newest = jira.state.issues["PAY-2"]["id"]
        reconciled = client._get_json(
            "search/jql", params={"jql": query, "reconcileIssues": newest}
        )
        assert [i["key"] for i in reconciled["issues"]] == ["PAY-2"]
        clock.advance(SEARCH_LAG)
    assert sorted(i.key for i in client.search_issues(query)) == sorted(jira.state.issues)


@pytest.mark.parametrize(
    "jql",
    [
        "project = PAY AND",
        'project = "PAY" labels = x',
        "projct = PAY",
        "labels ~ x",
        "project = PAY ORDER created",
        "project in (PAY",
        "(project = PAY",
    ],
)
def test_jql_it_cannot_parse_is_a_400_not_every_issue(jira: JiraEmulator, jql: str):
    tracker = tracker_for(jira)
    tracker.create_ticket(ticket())
    with pytest.raises(TrackerRejected) as caught:
        tracker._call(lambda: tracker.client.search_issues(jql))
    assert "HTTP 400" in str(caught.value)


# One table of what Jira's states mean, checked against both paths that read them: the poll
# (the REST API through the real client) and the webhook (the payload's issue fields).
RESOLUTIONS = [
    ("new", None, False, ""),
    ("indeterminate", None, False, ""),
    ("done", "Done", True, "completed"),
    ("done", "Fixed", True, "completed"),
    ("done", None, True, "completed"),
    ("done", "Won't Do", True, "not_planned"),
    ("done", "Won't Fix", True, "not_planned"),
    ("done", "Duplicate", True, "not_planned"),
    ("done", "Cannot Reproduce", True, "not_planned"),
    ("done", "Declined", True, "not_planned"),
    ("done", " obsolete ", True, "not_planned"),
]


@pytest.mark.parametrize(("category", "resolution", "done", "meaning"), RESOLUTIONS)
def test_one_mapping_for_the_poll_and_the_webhook(
    jira: JiraEmulator, category: str, resolution: str | None, done: bool, meaning: str
):
    from tests.test_webhooks import jira_event

    tracker = tracker_for(jira)
    ref = tracker.create_ticket(ticket())
    jira.set_status(ref.key, category, resolution=resolution)
    polled = tracker.ticket_status(ref)
    webhook = json.loads(jira_event(ref.key, category=category, resolution=resolution))
    hinted = ticket_status_of(ref, webhook["issue"]["fields"])
    assert (polled.done, polled.resolution) == (hinted.done, hinted.resolution) == (done, meaning)
