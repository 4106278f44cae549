"""The routing file and the policy: defaults, durations, and exact error messages."""

import re
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from config import ConfigError, Settings, load_routing
from domain.models import Severity
from domain.policy import DEFAULT_SEVERITY_POLICIES, FollowUpPolicy

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "teams.toml"
    path.write_text(text)
    return path


def test_example_routing_file_loads():
    routing = load_routing(REPO / "teams.example.toml")
    assert set(routing.teams) == {"payments", "platform", "sre-triage"}
    assert routing.triage_team == "sre-triage"
    assert routing.project_of("payments") == "PAY"
    assert routing.policy.follow_up.to_policy().reminder_offsets == [
        timedelta(days=7),
        timedelta(days=1),
    ]


def test_severity_defaults_and_overrides(tmp_path):
    routing = load_routing(
        write(
            tmp_path,
            "[policy.severity.SEV1]\nreview_within_business_days = 2\nactions_due_days = 10\n"
            '[teams.a]\nmanager = "m"\n',
        )
    )
    assert routing.policy.for_severity(Severity.SEV1).review_within_business_days == 2
    assert routing.policy.for_severity(Severity.SEV2) == DEFAULT_SEVERITY_POLICIES["SEV2"]
    assert DEFAULT_SEVERITY_POLICIES["SEV1"].required
    assert not DEFAULT_SEVERITY_POLICIES["SEV3"].required


def test_durations_in_human_units(tmp_path):
    routing = load_routing(
        write(
            tmp_path,
            '[policy.follow_up]\nreminders_before = ["1d", "14d", "36h"]\nescalate_after = "0d"\n'
            'poll_every = "30m"\n[teams.a]\nmanager = "m"\n',
        )
    )
    policy = routing.policy.follow_up.to_policy()
    assert policy.reminder_offsets == [timedelta(days=14), timedelta(hours=36), timedelta(days=1)]
    assert policy.escalation_grace == timedelta(0)
    assert policy.status_poll_interval == timedelta(minutes=30)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("teams = [", "not valid TOML"),
        ("[teams]\n", "teams: Dictionary should have at least 1 item"),
        (
            '[teams.a]\nmanager = "m"\ntimezone = "Europe/Berln"\n',
            "unknown time zone 'Europe/Berln'",
        ),
        ('[teams.a]\nmanager = "m"\nworking_hours = "late"\n', "HH:MM-HH:MM"),
        ('[teams.a]\ntimezone = "UTC"\n', "teams.a.manager: Field required"),
        ('[teams.a]\nmanager = "m"\ntracker = "trello"\n', "teams.a.tracker"),
        ('[teams.a]\nmanager = "m"\nmanagr = "x"\n', "teams.a.managr: unknown field"),
        (
            '[teams.a]\nmanager = "m"\nproject = "X"\n[teams.b]\nmanager = "m"\nproject = "X"\n',
            "share project 'X'",
        ),
        (
            '[policy.follow_up]\nescalate_every = "5s"\n[teams.a]\nmanager = "m"\n',
            "escalate_every: must be at least 10 seconds",
        ),
    ],
)
def test_bad_routing_files_say_exactly_what_is_wrong(tmp_path, text, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_routing(write(tmp_path, text))


def test_missing_routing_file_says_how_to_fix(tmp_path):
    with pytest.raises(ConfigError, match=r"copy teams\.example\.toml"):
        load_routing(tmp_path / "nope.toml")


def test_routing_is_reread_when_the_file_changes(tmp_path):
    path = write(tmp_path, '[teams.a]\nmanager = "m"\n')
    assert set(load_routing(path).teams) == {"a"}
    path.write_text('[teams.a]\nmanager = "m"\n[teams.b]\nmanager = "n"\n')
    import os

    os.utime(path, (1, 1))  # a different mtime even within the same clock tick
    assert set(load_routing(path).teams) == {"a", "b"}


def test_unknown_team_lists_known_ones(tmp_path):
    routing = load_routing(write(tmp_path, '[teams.a]\nmanager = "m"\n'))
    with pytest.raises(ConfigError, match=re.escape("unknown team 'z' (known teams: a)")):
        routing.team("z")


def test_follow_up_policy_refuses_nonsense():
    with pytest.raises(ValidationError, match="positive"):
        FollowUpPolicy(reminder_offsets=[timedelta(days=-1)])


def test_settings_read_temporal_environment(monkeypatch):
    monkeypatch.setenv("TEMPORAL_ADDRESS", "temporal.example:7233")
    monkeypatch.setenv("TEMPORAL_API_KEY", "sekrit")
    monkeypatch.setenv("PM_TASK_QUEUE", "q")
    current = Settings()
    assert current.temporal_address == "temporal.example:7233"
    assert current.task_queue == "q"
    assert "sekrit" not in repr(current)  # secrets never print


def test_a_rewrite_within_one_clock_tick_is_read(tmp_path):
    import os

    path = tmp_path / "teams.toml"
    path.write_text('[teams.a]\nmanager = "m"\n')
    stamp = path.stat().st_mtime_ns
    assert load_routing(path).teams["a"].manager == "m"
    path.write_text('[teams.a]\nmanager = "n"\n')
    os.utime(path, ns=(stamp, stamp))  # the same modification time as before
    assert load_routing(path).teams["a"].manager == "n"
