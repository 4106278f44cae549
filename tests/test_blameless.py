"""The blameless check on sentences it must flag and sentences it must leave alone."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from domain.blameless import (
    check_action_title,
    check_document,
    check_postmortem,
    check_text,
    name_tokens,
)
from domain.models import (
    ActionType,
    ContributingFactor,
    CorrectiveAction,
    FactorCategory,
    Incident,
    PostmortemState,
    ReviewOutcome,
    Severity,
)
from integrations.lexicon import load_lexicon

CORPUS = tomllib.loads((Path(__file__).parent / "blameless" / "corpus.toml").read_text())
NAMES = name_tokens(["sam@example.com", "Alex Kim"])
LEXICON = load_lexicon("en")
POSTMORTEM = str(Path(sys.executable).parent / "postmortem")


@pytest.mark.parametrize("case", CORPUS["must_flag"], ids=lambda c: c["rule"])
def test_flags_blame_and_hindsight(case):
    rules = {f.rule for f in check_text(case["text"], "text", LEXICON, NAMES)}
    assert case["rule"] in rules, (case["text"], rules)


@pytest.mark.parametrize("text", CORPUS["must_pass"])
def test_leaves_system_language_alone(text):
    assert check_text(text, "text", LEXICON, NAMES) == []


@pytest.mark.parametrize("title", CORPUS["vague_actions"])
def test_flags_actions_that_change_nothing(title):
    assert check_action_title(title, "actions[0].title", LEXICON) != []


@pytest.mark.parametrize("title", CORPUS["good_actions"])
def test_accepts_specific_bounded_actions(title):
    assert check_action_title(title, "actions[0].title", LEXICON) == []


def test_a_finding_says_where_why_and_what_instead():
    (finding,) = check_text("Sam should have checked it.", "root_cause", LEXICON, NAMES)
    assert finding.field == "root_cause" and finding.sentence == "Sam should have checked it."
    assert "knowledge the person did not have" in finding.reason
    assert finding.suggestion.startswith("Describe what was known")
    again = check_text("Sam should have checked it.", "root_cause", LEXICON, NAMES)
    assert again[0].id == finding.id  # stable, so an acknowledgement can refer to it


def test_every_field_of_a_post_mortem_is_read():
    now = datetime(2026, 11, 26, tzinfo=UTC)
    incident = Incident(
        id="I1",
        title="t",
        severity=Severity.SEV2,
        team="payments",
        resolved_at=now,
        responders=["sam@example.com"],
    )
    state = PostmortemState(
        workflow_id="w",
        incident=incident,
        findings=ReviewOutcome(
            contributing_factors=[
                ContributingFactor(category=FactorCategory.OTHER, description="Human error.")
            ],
            proximate_cause="Sam forgot to drain the node.",
            root_cause="Draining is a manual step with no check.",
            went_well=["Obviously the rollback worked."],
            accepted_at=now,
        ),
        actions=[
            CorrectiveAction(
                id="a1",
                title="Be more careful",
                type=ActionType.PREVENT,
                owner="alex@example.com",
                team="payments",
                due=now + timedelta(days=9),
            )
        ],
    )
    found = {(f.field, f.rule) for f in check_postmortem(state, LEXICON)}
    assert found == {
        ("contributing_factors[0]", "human-error"),
        ("proximate_cause", "failed-to"),
        ("went_well[0]", "obviously"),
        ("actions[0].title", "vague-action"),
    }


def test_the_command_checks_any_file_and_exits_1_on_findings(tmp_path: Path):
    document = tmp_path / "postmortem.md"
    document.write_text(
        "# Outage\n\nThe timeout was set to 0 ms.\n\nSam should have known better.\n"
    )
    done = subprocess.run(
        [POSTMORTEM, "check-blameless", str(document), "--name", "Sam"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "line 5 [should-have]" in done.stdout and "Sam should have known better." in done.stdout
    clean = tmp_path / "clean.md"
    clean.write_text("The timeout was set to 0 ms; the schema allowed it.\n")
    done = subprocess.run(
        [POSTMORTEM, "check-blameless", str(clean)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and "no findings" in done.stdout
    assert check_document(clean.read_text(), LEXICON) == []


def test_the_command_knows_the_routing_files_teams_and_more_given(tmp_path: Path):
    """A team of the routing file named in the text is an agent ("sre-triage ignored ..."),
    as is one given with --team; people are found by their first names without --name."""
    import os

    from tests.conftest import ROUTING

    routing = tmp_path / "teams.toml"
    routing.write_text(ROUTING.replace("[teams.platform]", "[teams.ops-oncall]"))
    document = tmp_path / "postmortem.md"
    document.write_text("ops-oncall ignored the page.\nnet-core ignored the page.\n")
    env = {**os.environ, "PM_TEAMS_FILE": str(routing)}

    def check(*extra: str) -> subprocess.CompletedProcess[str]:
        command = [POSTMORTEM, "check-blameless", str(document), "--json", *extra]
        return subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)

    found = check()
    assert found.returncode == 1
    assert [f["field"] for f in json.loads(found.stdout)] == ["line 1"]
    both = check("--team", "net-core")
    assert [f["field"] for f in json.loads(both.stdout)] == ["line 1", "line 2"]
    named = tmp_path / "named.md"
    named.write_text("Priya skipped the canary.\n")
    done = subprocess.run(
        [POSTMORTEM, "check-blameless", str(named)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1 and "[person-failure]" in done.stdout
