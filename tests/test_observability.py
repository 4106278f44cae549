"""Log lines: JSON with the Temporal context and the incident read off the workflow id;
secret-looking keys redacted."""

from __future__ import annotations

import json
import logging

import pytest

from observability import configure_logging


@pytest.fixture
def logged(capsys):
    """Our logging, writing to the captured stderr of the test itself; the root logger is
    put back afterwards."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)

    def lines() -> list[dict]:
        return [json.loads(line) for line in capsys.readouterr().err.splitlines() if line]

    yield lines
    root.handlers[:], root.level = saved[0], saved[1]


def test_incident_action_and_context_are_bound(logged):
    configure_logging("INFO", "json")  # here: the call phase's stderr is the captured one
    log = logging.getLogger("postmortem.test")
    log.info(
        "filed",
        extra={
            "temporal_workflow": {
                "workflow_id": "postmortem-grafana-oncall-INC-7/action-canary",
                "run_id": "r1",
                "workflow_type": "ActionFollowUpWorkflow",
            }
        },
    )
    log.info("started", extra={"temporal_workflow": {"workflow_id": "postmortem-manual-INC-42"}})
    log.info("token", extra={"api_token": "s3cr3t-value", "workflow_id": "digest-weekly-x"})
    first, second, third = logged()
    assert first["event"] == "filed" and first["run_id"] == "r1"
    assert (first["incident"], first["source"], first["action"]) == (
        "INC-7",
        "grafana-oncall",
        "canary",
    )
    assert (second["incident"], second["source"]) == ("INC-42", "manual")
    assert "action" not in second
    assert third["api_token"] == "[redacted]" and "incident" not in third
