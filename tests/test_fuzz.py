"""Fuzzing every webhook endpoint over real HTTP: never a 500, never a traceback, always JSON,
and never a started post-mortem for a request that is not authenticated."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment

from config import Settings
from tests.conftest import ROUTING
from tests.test_webhooks import free_port
from worker import api_server

ENDPOINTS = [
    "pagerduty",
    "incidentio",
    "opsgenie",
    "alertmanager",
    "grafana-oncall",
    "generic",
    "github",
    "jira",
]
SECRETS = {
    "webhook_secret_pagerduty": "s1",
    "webhook_secret_incidentio": "whsec_c2VjcmV0",
    "webhook_secret_opsgenie": "s3",
    "webhook_token_alertmanager": "s4",
    "webhook_token_grafana": "s5",
    "webhook_secret_generic": "s6",
    "webhook_secret_github": "s7",
    "webhook_secret_jira": "s8",
}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=20,
)
# Bodies shaped like the vendors' (right keys, wrong or odd values) reach the parsers deeper.
shaped = st.fixed_dictionaries(
    {},
    optional={
        "event": st.fixed_dictionaries(
            {"event_type": st.sampled_from(["incident.resolved", "incident.reopened", "x"])},
            optional={"data": json_values, "occurred_at": json_values},
        ),
        "event_type": st.sampled_from(
            ["public_incident.incident_status_updated_v2", "private_incident.x"]
        ),
        "action": st.sampled_from(["Close", "Create", "closed", "reopened"]),
        "alert": json_values,
        "status": st.sampled_from(["resolved", "firing", "reopened"]),
        "groupKey": json_values,
        "alerts": json_values,
        "alert_group": json_values,
        "incident_id": json_values,
        "resolved_at": json_values,
        "severity": json_values,
        "team": json_values,
        "title": json_values,
        "webhookEvent": st.sampled_from(["jira:issue_updated", "other"]),
        "issue": json_values,
        "changelog": json_values,
        "repository": json_values,
    },
)
bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    shaped.map(lambda v: json.dumps(v).encode()),
)
header_values = st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60
).map(
    str.strip  # a client cannot send a value with surrounding spaces
)
headers = st.fixed_dictionaries(
    {
        "content-type": st.sampled_from(
            ["application/json", "text/plain", "", "application/json; charset=utf-8"]
        )
    },
    optional={
        name: header_values
        for name in [
            "authorization",
            "x-pagerduty-signature",
            "x-hub-signature-256",
            "x-hub-signature",
            "x-signature-256",
            "webhook-id",
            "webhook-timestamp",
            "webhook-signature",
            "x-webhook-secret",
            "x-github-event",
            "x-webhook-id",
        ]
    },
)


def serve(tmp: Path, address: str, **extra: object) -> Iterator[str]:
    teams = tmp / "teams.toml"
    teams.write_text(ROUTING)
    current = Settings(
        data_dir=tmp / "data",
        teams_file=teams,
        task_queue=f"fuzz-{uuid.uuid4()}",
        temporal_address=address,
        api_port=free_port(),
        **extra,  # type: ignore[arg-type]
    )
    server = api_server(current)  # connects its own client in its own loop
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline:
            pytest.fail("the API did not start")
        time.sleep(0.02)
    yield f"http://127.0.0.1:{current.api_port}"
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def signed_api(
    tmp_path_factory: pytest.TempPathFactory, dev_env: WorkflowEnvironment
) -> Iterator[str]:
    address = dev_env.client.service_client.config.target_host
    secrets = {k: SecretStr(v) for k, v in SECRETS.items()}
    yield from serve(tmp_path_factory.mktemp("signed"), address, **secrets)


@pytest.fixture(scope="module")
def open_api(
    tmp_path_factory: pytest.TempPathFactory, dev_env: WorkflowEnvironment
) -> Iterator[str]:
    address = dev_env.client.service_client.config.target_host
    yield from serve(tmp_path_factory.mktemp("open"), address, allow_unsigned=True)


def check(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    assert "Traceback" not in response.text
    assert isinstance(response.json(), dict)


FUZZ = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_unauthenticated_requests_are_refused_and_start_nothing(signed_api: str, endpoint: str):
    with httpx.Client(timeout=10) as client:

        @FUZZ
        @given(body=bodies, extra=headers)
        def attempt(body: bytes, extra: dict[str, str]) -> None:
            response = client.post(f"{signed_api}/webhooks/{endpoint}", content=body, headers=extra)
            check(response)
            # Authentication comes before parsing: nothing unauthenticated gets further.
            assert response.status_code in (401, 413), (response.status_code, response.text)

        attempt()


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_any_body_gets_a_clear_answer(open_api: str, endpoint: str):
    with httpx.Client(timeout=10) as client:

        @FUZZ
        @given(body=bodies, extra=headers)
        def attempt(body: bytes, extra: dict[str, str]) -> None:
            response = client.post(f"{open_api}/webhooks/{endpoint}", content=body, headers=extra)
            check(response)

        attempt()
