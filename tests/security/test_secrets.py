"""Secrets never leak through errors: a token that cannot even be sent (a newline pasted
with it) becomes a typed refusal that names the kind of problem, never the header's text."""

from __future__ import annotations

import pytest

from integrations.errors import SourceRejected, TrackerRejected
from integrations.pagerduty import PagerDutyClient
from tests.fakes.github import GitHubEmulator
from tests.fakes.jira import JiraEmulator
from tests.fakes.pagerduty import PagerDutyEmulator
from tests.test_github import ticket as github_ticket
from tests.test_github import tracker_for as github_tracker
from tests.test_jira import ticket as jira_ticket
from tests.test_jira import tracker_for as jira_tracker

TOKEN = "sk-live-secret-1234\nX-Injected: 1"


def test_an_unsendable_pagerduty_token_is_refused_without_its_text():
    emulator = PagerDutyEmulator().start()
    try:
        with pytest.raises(SourceRejected) as caught:
            PagerDutyClient(emulator.base_url, TOKEN).log_entries("PD1")
    finally:
        emulator.stop()
    assert "could not be sent" in str(caught.value)
    assert "sk-live" not in str(caught.value) and "Injected" not in str(caught.value)


@pytest.mark.parametrize("tracker", ["jira", "github"])
def test_an_unsendable_tracker_token_is_refused_without_its_text(tracker: str):
    emulator = (JiraEmulator() if tracker == "jira" else GitHubEmulator()).start()
    try:
        with pytest.raises(TrackerRejected) as caught:
            if isinstance(emulator, JiraEmulator):
                jira_tracker(emulator, token=TOKEN).create_ticket(jira_ticket())
            else:
                github_tracker(emulator, token=TOKEN).create_ticket(github_ticket())
    finally:
        emulator.stop()
    assert "sk-live" not in str(caught.value) and "Injected" not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
