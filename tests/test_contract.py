"""The contract checks themselves: active when the descriptions are there, and able to fail."""

from __future__ import annotations

import re

import pytest
import requests

from tests.fakes import contract
from tests.fakes.github import GitHubEmulator
from tests.fakes.jira import JiraEmulator
from tests.fakes.server import Response


def test_descriptions_present_or_checks_skipped_with_a_reason():
    if not contract.available():
        pytest.skip(f"OpenAPI descriptions not found in {contract.SPECS}: contract checks are off")
    assert JiraEmulator().contract is not None and GitHubEmulator().contract is not None


def test_an_answer_outside_the_description_fails_the_test():
    if not contract.available():
        pytest.skip(f"OpenAPI descriptions not found in {contract.SPECS}")
    jira = JiraEmulator().start()
    # An answer with a key CreatedIssue does not allow: the client would not notice,
    # the contract must.
    created = {"id": "1", "key": "PAY-1", "self": "x", "rank": 7}
    jira.routes.insert(
        0, ("POST", re.compile(r"/rest/api/2/issue"), lambda r: Response(201, created))
    )
    requests.post(
        f"{jira.base_url}/rest/api/2/issue",
        json={"fields": {}},
        auth=(jira.email, jira.token),
        timeout=5,
    )
    with pytest.raises(AssertionError, match="'rank' was unexpected"):
        jira.stop()


def test_a_request_outside_the_description_fails_the_test():
    if not contract.available():
        pytest.skip(f"OpenAPI descriptions not found in {contract.SPECS}")
    github = GitHubEmulator().start()
    requests.post(
        f"{github.base_url}/repos/{github.repo_name}/labels",
        json={"colour": "red"},  # `name` is required, `colour` unknown
        headers={"Authorization": f"token {github.token}"},
        timeout=5,
    )
    with pytest.raises(AssertionError, match="request"):
        github.stop()
