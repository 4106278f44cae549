"""Fuzzing every webhook endpoint over real HTTP: never a 500, never a traceback, always JSON,
and never a started post-mortem for a request that is not authenticated."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from config import Settings
from tests.conftest import ROUTING
from tests.scenario import until
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


def serve(tmp: Path, address: str, *, routing: str = ROUTING, **extra: object) -> Iterator[str]:
    teams = tmp / "teams.toml"
    teams.write_text(routing)
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
    SERVED[f"http://127.0.0.1:{current.api_port}"] = current.task_queue
    yield f"http://127.0.0.1:{current.api_port}"
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def signed_api(
    tmp_path_factory: pytest.TempPathFactory, dev_env: WorkflowEnvironment
) -> Iterator[str]:
    address = dev_env.client.service_client.config.target_host
    secrets: dict[str, Any] = {k: SecretStr(v) for k, v in SECRETS.items()}
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


SERVED: dict[str, str] = {}  # base URL -> the task queue its post-mortems would start on


async def started_on(client: Client, task_queue: str) -> list[str]:
    """Every workflow ever started on `task_queue`, visibility caught up: a sentinel started
    last is waited for, and the dev server's visibility shows starts in order."""
    sentinel = f"sentinel-{uuid.uuid4()}"
    await client.start_workflow("Sentinel", id=sentinel, task_queue=task_queue)
    query = f'TaskQueue = "{task_queue}"'
    await until(lambda: _ids(client, query), lambda ids: sentinel in ids, 30)
    await client.get_workflow_handle(sentinel).terminate("sentinel")
    return [i for i in await _ids(client, query) if not i.startswith("sentinel-")]


async def _ids(client: Client, query: str) -> list[str]:
    return [w.id async for w in client.list_workflows(query)]


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


# -- nearly valid credentials: the right scheme, one thing wrong ------------------------------


def _hex(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _svix(secret: str, msg_id: str, stamp: str, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def credentials(endpoint: str, secret: str, body: bytes, now: float) -> dict[str, str]:
    """The headers a genuine sender of `endpoint` would add to `body`."""
    if endpoint == "pagerduty":
        return {"x-pagerduty-signature": f"v1={_hex(secret, body)}"}
    if endpoint in ("github", "generic", "jira"):
        header = {"github": "x-hub-signature-256", "generic": "x-signature-256"}.get(
            endpoint, "x-hub-signature"
        )
        return {header: f"sha256={_hex(secret, body)}"}
    if endpoint == "incidentio":
        stamp = str(int(now))
        return {
            "webhook-id": "msg_1",
            "webhook-timestamp": stamp,
            "webhook-signature": _svix(secret, "msg_1", stamp, body),
        }
    if endpoint == "opsgenie":
        return {"x-webhook-secret": secret}
    return {"authorization": f"Bearer {secret}"}  # alertmanager, grafana-oncall


def _flip(text: str, at: int) -> str:
    """One character changed, keeping the alphabet (hex stays hex, base64 stays base64)."""
    at %= len(text)
    swap = "0" if text[at] != "0" else "1"
    return text[:at] + swap + text[at + 1 :]


# Ways to be almost right. Each takes (endpoint, secret, body, now, draw) and returns the
# headers sent with `body`; every one of them must be refused.
Forgery = Callable[[str, str, bytes, float, st.DataObject], dict[str, str]]


def wrong_key(endpoint: str, secret: str, body: bytes, now: float, data: st.DataObject):
    other = data.draw(st.sampled_from([secret + "x", secret[:-1], secret.upper(), "x" + secret]))
    if endpoint == "incidentio":
        other = "whsec_" + base64.b64encode(b"not-the-key").decode()
    return credentials(endpoint, other, body, now)


def other_body(endpoint: str, secret: str, body: bytes, now: float, data: st.DataObject):
    """Signed correctly, but for another body (a replayed signature on edited content)."""
    edited = body + data.draw(st.binary(min_size=1, max_size=3))
    return credentials(endpoint, secret, edited, now)


def one_char_off(endpoint: str, secret: str, body: bytes, now: float, data: st.DataObject):
    headers = credentials(endpoint, secret, body, now)
    name = {"incidentio": "webhook-signature"}.get(endpoint) or next(iter(headers))
    value = headers[name]
    prefix, sep, rest = value.rpartition("=") if "=" in value[:8] else ("", "", value)
    if endpoint == "incidentio":
        prefix, sep, rest = "v1", ",", value.removeprefix("v1,")
    if endpoint in ("alertmanager", "grafana-oncall"):
        prefix, sep, rest = "Bearer", " ", value.removeprefix("Bearer ")
    at = data.draw(st.integers(min_value=0, max_value=max(0, len(rest) - 1)))
    headers[name] = f"{prefix}{sep}{_flip(rest, at)}"
    return headers


def wrong_scheme(endpoint: str, secret: str, body: bytes, now: float, data: st.DataObject):
    """The right MAC or secret, offered under another scheme or header."""
    headers = credentials(endpoint, secret, body, now)
    if endpoint == "pagerduty":
        return {"x-pagerduty-signature": f"v0={_hex(secret, body)}"}
    if endpoint in ("github", "generic", "jira"):
        name = next(iter(headers))
        return {name: headers[name].replace("sha256=", data.draw(st.sampled_from(["sha1=", ""])))}
    if endpoint == "incidentio":
        return headers | {"webhook-signature": headers["webhook-signature"].replace("v1,", "v2,")}
    if endpoint == "opsgenie":
        return {"x-other-secret": secret}
    return {"authorization": f"Token {secret}"}


def stale(endpoint: str, secret: str, body: bytes, now: float, data: st.DataObject):
    """A genuine incident.io signature from more than five minutes ago (a replay)."""
    # At least a minute past the 5-minute tolerance: the server reads its own clock when the
    # request arrives, which on a busy machine is a second or more after `now` (the exact
    # boundary is tested with a given time in tests/test_rules_signatures.py).
    age = data.draw(st.integers(min_value=360, max_value=10**6))
    sign = -1 if data.draw(st.booleans()) else 1
    return credentials(endpoint, secret, body, now + sign * age)


FORGERIES: list[Forgery] = [wrong_key, other_body, one_char_off, wrong_scheme]
SHARED_SECRET = {"opsgenie", "alertmanager", "grafana-oncall"}


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_nearly_valid_credentials_are_refused_and_start_nothing(
    signed_api: str, endpoint: str, dev_env: WorkflowEnvironment
):
    secret = SECRETS[_secret_name(endpoint)]
    incident = json.dumps(_genuine_body(endpoint)).encode()
    forgeries = FORGERIES + ([stale] if endpoint == "incidentio" else [])
    if endpoint in SHARED_SECRET:  # these senders cannot sign: the secret covers no body
        forgeries.remove(other_body)
    seen: dict[str, int] = {}
    with httpx.Client(timeout=10) as http:
        # The control: what a genuine sender does is accepted (so the forgeries are near).
        genuine = http.post(
            f"{signed_api}/webhooks/{endpoint}",
            content=b"{}",
            headers={"content-type": "application/json"}
            | credentials(endpoint, secret, b"{}", time.time()),
        )
        assert genuine.status_code != 401, genuine.text

        @FUZZ
        @given(
            forgery=st.sampled_from(forgeries),
            body=st.one_of(st.just(incident), bodies),
            data=st.data(),
        )
        def attempt(forgery: Forgery, body: bytes, data: st.DataObject) -> None:
            forged = forgery(endpoint, secret, body, time.time(), data)
            response = http.post(
                f"{signed_api}/webhooks/{endpoint}",
                content=body,
                headers={"content-type": "application/json"} | forged,
            )
            check(response)
            assert response.status_code == 401, (forgery.__name__, forged, response.text)
            seen[forgery.__name__] = seen.get(forgery.__name__, 0) + 1

        await asyncio.to_thread(attempt)
    assert set(seen) == {f.__name__ for f in forgeries}  # every kind was tried
    assert await started_on(dev_env.client, SERVED[signed_api]) == []


def _secret_name(endpoint: str) -> str:
    return {
        "pagerduty": "webhook_secret_pagerduty",
        "incidentio": "webhook_secret_incidentio",
        "opsgenie": "webhook_secret_opsgenie",
        "alertmanager": "webhook_token_alertmanager",
        "grafana-oncall": "webhook_token_grafana",
        "generic": "webhook_secret_generic",
        "github": "webhook_secret_github",
        "jira": "webhook_secret_jira",
    }[endpoint]


def _genuine_body(endpoint: str) -> dict[str, object]:
    """A delivery that would start (or change) a post-mortem if it were authentic."""
    now = "2026-11-20T10:00:00Z"
    bodies: dict[str, dict[str, object]] = {
        "pagerduty": {
            "event": {
                "id": "e1",
                "event_type": "incident.resolved",
                "occurred_at": now,
                "data": {
                    "id": "PD1",
                    "title": "Checkout errors",
                    "urgency": "high",
                    "created_at": now,
                    "service": {"summary": "payments"},
                },
            }
        },
        "generic": {
            "incident_id": "G1",
            "title": "Checkout errors",
            "severity": "SEV2",
            "team": "payments",
            "resolved_at": now,
        },
        "opsgenie": {"action": "Close", "alert": {"alertId": "O1", "message": "Checkout errors"}},
        "alertmanager": {
            "status": "resolved",
            "groupKey": "g1",
            "alerts": [{"status": "resolved", "labels": {"alertname": "Checkout"}}],
        },
    }
    return bodies.get(endpoint, {"title": "Checkout errors", "status": "resolved"})
