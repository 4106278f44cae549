"""Teams in Jira and GitHub at once, through the worker, on the dev server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

import engine
from config import ConfigError, Settings, load_routing, read_secret
from domain.messages import PostmortemInput, RetryFilingInput
from domain.models import Phase, PostmortemState, ProblemKind
from tests import scenario
from tests.fakes.github import GitHubEmulator
from tests.fakes.jira import JiraEmulator
from tests.scenario import until
from worker import TrackerDirectory, build_worker
from workflows.postmortem import PostmortemWorkflow


@pytest.fixture
def jira() -> Iterator[JiraEmulator]:
    emulator = JiraEmulator().start()
    yield emulator
    emulator.stop()


@pytest.fixture
def github() -> Iterator[GitHubEmulator]:
    emulator = GitHubEmulator().start()
    yield emulator
    emulator.stop()


def routing(
    suffix: str, jira: JiraEmulator, github: GitHubEmulator, project: str, policy: str = ""
) -> str:
    return f"""
{policy}
[teams.pay-{suffix}]
project = "PAY"
manager = "dana@example.com"
timezone = "Europe/Berlin"

[teams.jira-{suffix}]
tracker = "jira"
manager = "jo@example.com"
[teams.jira-{suffix}.jira]
url = "{jira.base_url}"
project = "{project}"
email = "{jira.email}"
token_env = "PM_TEST_JIRA_TOKEN"
fields = {{ components = [{{ name = "checkout" }}] }}
search_lag_seconds = {jira.search_lag + 1}  # the emulated Cloud search lags {jira.search_lag} s

[teams.gh-{suffix}]
tracker = "github"
manager = "gus@example.com"
[teams.gh-{suffix}.github]
repo = "{github.repo_name}"
api_url = "{github.base_url}"
logins = {{ "kim@example.com" = "kimgh" }}
"""


@pytest.fixture
def setup(tmp_path: Path, jira, github, monkeypatch, dev_env: WorkflowEnvironment):
    suffix = uuid.uuid4().hex[:8]
    monkeypatch.setenv("PM_TEST_JIRA_TOKEN", jira.token)
    monkeypatch.setenv(f"PM_GITHUB_TOKEN__GH_{suffix.upper()}", github.token)
    teams = tmp_path / "teams.toml"
    teams.write_text(routing(suffix, jira, github, project="NOPE"))
    settings = Settings(data_dir=tmp_path / "data", teams_file=teams, task_queue=f"tq-{suffix}")
    return suffix, settings


@pytest.fixture
async def worker(dev_env: WorkflowEnvironment, setup) -> AsyncIterator[Worker]:
    async with build_worker(dev_env.client, setup[1]) as running:
        yield running


async def test_refused_ticket_is_surfaced_then_filed_after_the_fix(
    dev_env: WorkflowEnvironment, setup, worker, jira: JiraEmulator, github: GitHubEmulator
):
    suffix, settings = setup
    client = dev_env.client
    now = await dev_env.get_current_time()
    team = f"pay-{suffix}"
    handle = (
        await engine.start_postmortem(
            client, settings.task_queue, PostmortemInput(incident=scenario.incident(now, team=team))
        )
    ).handle
    await until(lambda: handle.query(PostmortemWorkflow.phase), lambda p: p.awaits_review)
    await handle.execute_update(
        PostmortemWorkflow.complete_review, scenario.two_tracker_review(now, suffix)
    )

    async def status() -> PostmortemState:
        return await handle.query(PostmortemWorkflow.status)

    state = await until(status, lambda s: s.phase is Phase.FOLLOWING_UP)
    in_jira, in_github = state.actions
    # GitHub filed it; Jira refused it, and the post-mortem says who, where and why.
    assert in_github.ticket is not None and in_github.ticket.key == f"{github.repo_name}#1"
    assert github.state.issues[1]["assignees"][0]["login"] == "kimgh"
    assert in_jira.ticket is None
    assert in_jira.filing_error is not None
    assert (
        f"jira (jira-{suffix}, {jira.base_url}): HTTP 400: project: valid project is required"
        in (in_jira.filing_error)
    )
    assert [(p.kind, p.action_id, p.message) for p in state.problems] == [
        (
            ProblemKind.FILING,
            "in-jira",
            f"action in-jira (jira-{suffix}): ticket not filed: {in_jira.filing_error}",
        )
    ]

    async def listed_problems() -> list[str]:
        rows = [
            r async for r in engine.list_postmortems(client, engine.postmortem_query(team=team))
        ]
        return rows[0].problems if rows else []

    assert await until(listed_problems, lambda p: len(p) == 1) == [
        p.message for p in state.problems
    ]
    refused = [
        r.workflow_id
        async for r in engine.list_postmortems(client, engine.problems_query(team=team))
    ]
    assert refused == [handle.id]
    # Its kind is searchable: the metrics count post-mortems by problem kind this way.
    by_kind = f"{engine.postmortem_query(team=team)} AND ProblemKinds = 'filing'"
    assert (await client.count_workflows(by_kind)).count == 1

    # The routing is fixed; a retry files it, with the team's extra fields; the problem clears.
    settings.teams_file.write_text(routing(suffix, jira, github, project="PAY"))
    await handle.execute_update(
        PostmortemWorkflow.retry_filing, RetryFilingInput(action_id="in-jira")
    )
    state = await until(status, lambda s: s.actions[0].ticket is not None)
    assert state.actions[0].ticket is not None and state.actions[0].ticket.key == "PAY-1"
    assert state.problems == []
    assert jira.state.issues["PAY-1"]["fields"]["components"] == [{"name": "checkout"}]
    assert await until(listed_problems, lambda p: p == []) == []
    assert (await client.count_workflows(by_kind)).count == 0


def test_missing_token_names_the_variable_not_a_value(setup, monkeypatch):
    suffix, settings = setup
    monkeypatch.delenv("PM_TEST_JIRA_TOKEN")
    directory = TrackerDirectory(settings)
    with pytest.raises(
        ConfigError, match=f"team 'jira-{suffix}': no jira token: set PM_TEST_JIRA_TOKEN"
    ):
        directory(f"jira-{suffix}")
    github_team = load_routing(settings.teams_file).teams[f"gh-{suffix}"].github
    assert github_team is not None
    assert read_secret("github", f"gh-{suffix}", github_team)  # the default variable name


def test_bad_tracker_tables_are_refused(tmp_path: Path):
    teams = tmp_path / "teams.toml"
    teams.write_text('[teams.a]\nmanager = "m"\ntracker = "jira"\n')
    with pytest.raises(ConfigError, match=r'tracker = "jira" needs a \[teams.<name>.jira\] table'):
        load_routing(teams)
    teams.write_text(
        '[teams.a]\nmanager = "m"\ntracker = "jira"\n'
        '[teams.a.jira]\nurl = "https://x"\nproject = "P"\n'
    )
    with pytest.raises(ConfigError, match="Jira Cloud needs `email`"):
        load_routing(teams)
    teams.write_text(
        '[teams.a]\nmanager = "m"\n'
        '[teams.a.jira]\nurl = "https://x"\nproject = "P"\nemail = "e"\ntoken = "s"\n'
    )
    with pytest.raises(ConfigError, match=r"teams.a.jira.token: unknown field"):
        load_routing(teams)  # a token in the file is refused: secrets live elsewhere
