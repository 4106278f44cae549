"""Publication: the folder (documents, index.html with its filter data), a GitHub repository
through the real PyGithub client against the emulator (one commit, updated in place), a
team's own template, and nothing private or secret in what leaves."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.publishing import PublishingActivities, PublishInput, TeamPublishing
from domain.messages import CompleteReviewInput
from domain.models import (
    Findings,
    Incident,
    Phase,
    PostmortemState,
    ProblemKind,
    Severity,
    TimelineEntry,
)
from integrations.github import GitHubTarget
from integrations.publishing import FolderPublisher, GitHubPublisher, Publisher
from tests import scenario
from tests.conftest import ROUTING
from tests.fakes.github import GitHubEmulator
from tests.scenario import until
from tests.test_document import state as reviewed_state
from tests.test_lifecycle import status_of
from worker import build_worker
from workflows.postmortem import PostmortemWorkflow

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)


def publish(publishers: list[Publisher], state: PostmortemState, **options):
    activities = PublishingActivities(
        lambda team: TeamPublishing(publishers, options.pop("template_dir", None)),
        lambda: options.pop("secrets", ["hunter2-the-token"]),
    )
    return ActivityEnvironment().run(
        activities.publish, PublishInput(state=state, rendered_at=options.pop("at", NOW))
    )


def plain(incident_id: str = "INC-9", **fields) -> PostmortemState:
    incident = Incident(
        id=incident_id,
        title=fields.pop("title", "Disk full"),
        severity=fields.pop("severity", Severity.SEV2),
        team="payments",
        resolved_at=fields.pop("resolved_at", NOW),
        **fields,
    )
    return PostmortemState(workflow_id=incident.workflow_id, incident=incident)


def test_folder_holds_markdown_html_and_an_index(tmp_path: Path):
    folder = FolderPublisher(tmp_path)
    first = publish([folder], reviewed_state())
    html = tmp_path / "2026" / "inc-7-search-latency.html"
    assert first.location == html.as_uri() and first.locations == [html.as_uri()]
    assert html.with_suffix(".md").read_text().startswith("# Post-mortem: Search | latency")
    assert '<h2 id="causes">Causes</h2>' in html.read_text()
    publish([folder], plain("INC-8", resolved_at=NOW - timedelta(days=400), title="Old one"))

    index = json.loads((tmp_path / "index.json").read_text())
    assert [e["incident_id"] for e in index] == ["INC-7", "INC-8"]  # newest first
    assert index[0]["severity"] == "SEV1" and index[0]["team"] == "platform"
    assert index[0]["tags"] == ["detect", "monitoring_gap", "process_gap"]
    page = (tmp_path / "index.html").read_text()
    assert 'href="2026/inc-7-search-latency.html"' in page
    assert 'href="2025/inc-8-old-one.html"' in page
    assert 'id="filter"' in page and "row.dataset.search.includes" in page
    row = next(line for line in page.splitlines() if 'data-search="' in line and "inc-7" in line)
    assert "monitoring_gap" in row and "sev1" in row and "platform" in row


def test_republishing_replaces_the_document_in_place(tmp_path: Path):
    folder = FolderPublisher(tmp_path)
    publish([folder], plain())
    publish([folder], plain(summary="Now with a summary"), at=NOW + timedelta(days=1))
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert files == [
        ".lock",
        "2026/inc-9-disk-full.html",
        "2026/inc-9-disk-full.json",
        "2026/inc-9-disk-full.md",
        "index.html",
        "index.json",
    ]
    text = (tmp_path / "2026" / "inc-9-disk-full.md").read_text()
    assert "Now with a summary" in text and "Last update: 2026-11-27 12:00 UTC" in text
    assert len(json.loads((tmp_path / "index.json").read_text())) == 1


def test_nothing_private_or_secret_leaves(tmp_path: Path):
    folder = FolderPublisher(tmp_path)
    state = plain(summary="Token hunter2-the-token leaked; ghp_" + "a" * 36 + " too.")
    state.timeline = [
        TimelineEntry(at=NOW - timedelta(hours=2), text="Alert fired"),
        TimelineEntry(
            at=NOW - timedelta(hours=1), text="Customer ACME-BANK paged us", private=True
        ),
    ]
    result = publish([folder], state)
    for suffix in (".md", ".html", ".json"):
        text = (tmp_path / "2026" / f"inc-9-disk-full{suffix}").read_text()
        assert "hunter2-the-token" not in text and "ghp_aaaa" not in text
        assert "ACME-BANK" not in text
    assert "Alert fired" in (tmp_path / "2026" / "inc-9-disk-full.md").read_text()
    assert result.redactions == 2 and "2 secret-like string(s) redacted" in result.note

    private = publish([folder], plain("INC-10", private=True, source="incidentio"))
    assert private.location is None and private.locations == []
    assert private.note == "not published: the incident is private in incidentio"
    assert not list(tmp_path.glob("2026/inc-10*"))


def test_secrets_are_redacted_before_rendering_so_escaping_and_titles_hide_none(tmp_path: Path):
    """An SMTP password with HTML's special characters (escaped in the page, so redaction of
    the output missed it) and an AWS key id in the title (index.html, index.json)."""
    folder = FolderPublisher(tmp_path)
    password = "p<ss>&w0rd'42"
    state = plain(title="Leak of AKIAABCDEFGHIJKLMNOP in logs")
    state.timeline = [TimelineEntry(at=NOW - timedelta(hours=1), text=f"smtp auth {password}")]
    result = publish([folder], state, secrets=[password])
    published = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != ".lock"]
    assert len(published) == 5
    assert not [p for p in published if "akia" in p.name.lower()]  # nor in a file name
    for path in published:
        text = path.read_text()
        assert "AKIAABCDEFGHIJKLMNOP" not in text, path
        assert "p&lt;ss&gt;" not in text and "p<ss>" not in text, path
    assert "Leak of [redacted] in logs" in (tmp_path / "index.json").read_text()
    assert result.redactions >= 2


def test_a_team_template_overrides_the_default(tmp_path: Path):
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "postmortem.md.j2").write_text(
        "# {{ incident.title }} [{{ incident.severity }}]\n"
        "{% for e in timeline %}* {{ e.text }}\n{% endfor %}"
    )
    folder = FolderPublisher(tmp_path / "out")
    publish([folder], reviewed_state(), template_dir=templates)
    md = (tmp_path / "out" / "2026" / "inc-7-search-latency.md").read_text()
    assert md == "# Search | latency [SEV1]\n* Latency alert fired\n* Rolled back\n"
    # The HTML page falls back to the default template.
    assert '<h2 id="timeline">' in (tmp_path / "out/2026/inc-7-search-latency.html").read_text()

    (templates / "postmortem.md.j2").write_text("{% for x in %}\n")
    with pytest.raises(ApplicationError) as caught:
        publish([folder], reviewed_state(), template_dir=templates)
    assert caught.value.type == "ConfigurationError" and caught.value.non_retryable
    assert "postmortem.md.j2, line 1" in caught.value.message


@pytest.fixture
def github() -> Iterator[GitHubEmulator]:
    emulator = GitHubEmulator(repo="acme/postmortems").start()
    yield emulator
    emulator.stop()  # fails the test on any call outside GitHub's OpenAPI description


def github_publisher(github: GitHubEmulator, **options) -> GitHubPublisher:
    target = GitHubTarget(
        team="payments",
        repo=github.repo_name,
        api_url=github.base_url,
        token=github.token,
        timeout_seconds=5,
    )
    return GitHubPublisher(target, folder=options.get("folder", "postmortems"))


def test_github_publication_is_one_commit_and_updates_in_place(github: GitHubEmulator):
    github.push("docs/keep.md", "someone else's file")
    publisher = github_publisher(github)
    result = publish([publisher], reviewed_state())
    assert result.location == (
        "https://github.example/acme/postmortems/blob/main/postmortems/2026/inc-7-search-latency.md"
    )
    commit = github.history()[0]
    assert commit["message"] == "Post-mortem INC-7: Search | latency (following_up)"
    assert commit["changed"] == [
        "postmortems/2026/inc-7-search-latency.md",
        "postmortems/README.md",
        "postmortems/index.json",
    ]
    files = github.files()
    assert files["docs/keep.md"] == "someone else's file"
    assert "| Search \\| latency |" not in files["postmortems/README.md"]
    assert "[Search \\| latency](2026/inc-7-search-latency.md)" in files["postmortems/README.md"]

    # Same content again (a retried activity): no new commit.
    publish([publisher], reviewed_state())
    assert len(github.history()) == 3  # initial, the push, ours

    # Changed content: the same file changes, in one more commit; the index keeps one entry.
    revised = reviewed_state()
    assert revised.findings is not None
    revised.findings.impact = "p99 at 12 s for 3 hours."
    publish([publisher], revised, at=NOW + timedelta(days=1))
    history = github.history()
    assert len(history) == 4 and history[0]["changed"] == [
        "postmortems/2026/inc-7-search-latency.md"
    ]
    files = github.files()
    assert "p99 at 12 s" in files["postmortems/2026/inc-7-search-latency.md"]
    assert len(json.loads(files["postmortems/index.json"])) == 1
    assert sorted(p for p in files if p.startswith("postmortems/")) == [
        "postmortems/2026/inc-7-search-latency.md",
        "postmortems/README.md",
        "postmortems/index.json",
    ]


def test_several_publishers_at_once(github: GitHubEmulator, tmp_path: Path):
    result = publish([FolderPublisher(tmp_path), github_publisher(github)], plain())
    assert result.location == (tmp_path / "2026" / "inc-9-disk-full.html").as_uri()
    assert result.locations[1].endswith("/blob/main/postmortems/2026/inc-9-disk-full.md")
    assert "postmortems/2026/inc-9-disk-full.md" in github.files()


async def test_a_broken_team_template_is_a_problem_until_fixed_and_republished(
    env, client, settings, tmp_path: Path
):
    templates = tmp_path / "team-templates"
    templates.mkdir()
    (templates / "postmortem.md.j2").write_text("# {{ incident.title }} {{ no_such_thing }}\n")
    settings.teams_file.write_text(
        ROUTING.replace("[teams.platform]", f'template_dir = "{templates}"\n\n[teams.platform]')
    )
    async with build_worker(client, settings):
        now = await env.get_current_time()
        handle = await scenario.start(client, settings.task_queue, scenario.incident(now))
        await until(status_of(handle), lambda s: s.phase is Phase.REVIEW_SCHEDULED)
        reason = await scenario.refused(handle, PostmortemWorkflow.republish, None)
        assert (
            reason
            == "this post-mortem is review_scheduled; publication waits for the review's findings"
        )
        await handle.execute_update(
            PostmortemWorkflow.complete_review,
            CompleteReviewInput(findings=Findings.model_validate(scenario.findings(now))),
        )
        state = await until(
            status_of(handle),
            lambda s: any(p.message.startswith("not published") for p in s.problems),
        )
        assert state.phase is Phase.FOLLOWING_UP and state.published_url is None
        problem = next(p.message for p in state.problems if p.message.startswith("not published"))
        assert "team 'payments': template postmortem.md.j2: 'no_such_thing' is undefined" in problem

        (templates / "postmortem.md.j2").write_text("# {{ incident.title }}\n")
        await handle.execute_update(PostmortemWorkflow.republish)
        state = await until(status_of(handle), lambda s: s.published_url is not None)
        assert not any(p.kind is ProblemKind.PUBLICATION for p in state.problems)
        assert state.published_url is not None
        md = Path(state.published_url.removeprefix("file://")).with_suffix(".md")
        assert md.read_text() == "# Checkout errors\n"
