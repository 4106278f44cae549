"""Hostile bodies over real HTTP against the real API and the dev server: whatever arrives,
the answer is a 4xx with a JSON reason, memory stays bounded, and nothing starts."""

from __future__ import annotations

import hashlib
import hmac
import json
import resource
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment

from tests.conftest import ROUTING
from tests.test_fuzz import SECRETS, SERVED, serve, started_on

SECRET = SECRETS["webhook_secret_generic"]


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, dev_env: WorkflowEnvironment) -> Iterator[str]:
    address = dev_env.client.service_client.config.target_host
    secrets: dict[str, Any] = {k: SecretStr(v) for k, v in SECRETS.items()}
    # A triage team: an authentic event whose service no mapping names still starts.
    routing = 'triage_team = "payments"\n' + ROUTING
    yield from serve(tmp_path_factory.mktemp("hostile"), address, routing=routing, **secrets)


def signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    mac = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"content-type": "application/json", "x-signature-256": f"sha256={mac}"}


def pagerduty_signed(body: bytes) -> dict[str, str]:
    mac = hmac.new(SECRETS["webhook_secret_pagerduty"].encode(), body, hashlib.sha256).hexdigest()
    return {"content-type": "application/json", "x-pagerduty-signature": f"v1={mac}"}


def refused_with_reason(response: httpx.Response, status: int, words: str) -> None:
    assert response.status_code == status, response.text
    assert words in response.json().get("error", response.json().get("detail", ""))


def test_a_chunked_body_is_cut_off_at_the_limit_not_read_whole(api: str):
    """A 200 MB chunked upload is refused, and the API (in this process) never held it:
    the process's peak memory grows by far less than the body."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def chunks() -> Iterator[bytes]:
        block = b"x" * 65536
        for _ in range(200 * 16):  # 200 MB in 64 KiB chunks
            yield block

    with httpx.Client(timeout=60) as client:
        try:
            response = client.post(f"{api}/webhooks/generic", content=chunks(), headers=signed(b""))
        except httpx.TransportError:
            response = None  # the server closed the connection mid-upload: also a refusal
    if response is not None:
        refused_with_reason(response, 413, "body over 1 MiB")
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    assert grown < 64 * 2**20, f"peak memory grew by {grown / 2**20:.0f} MiB"


def raw_post(base: str, path: str, head: dict[str, str], body: bytes = b"") -> tuple[int, bytes]:
    """A request written by hand, so headers can lie about the body (clients refuse to)."""
    host, port = base.removeprefix("http://").split(":")
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in head.items()]
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall("\r\n".join(lines).encode() + b"\r\n\r\n" + body)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    status = int(answer.split(b" ", 2)[1]) if answer else 0
    return status, answer.partition(b"\r\n\r\n")[2]


@pytest.mark.parametrize(
    ("length", "status"), [("abc", 400), ("-1", 400), ("1e3", 400), (str(2**20 + 1), 413)]
)
def test_a_declared_length_that_is_odd_or_too_large_is_refused_unread(
    api: str, length: str, status: int
):
    """Content-Length over the limit is answered before a byte of the body is sent."""
    got, body = raw_post(
        api,
        "/webhooks/generic",
        {"Content-Type": "application/json", "Content-Length": length},
    )
    assert got == status, body
    if got == 413:
        assert b"body over 1 MiB" in body


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"resolved_at": Infinity}', "Infinity is not a JSON number"),
        (b'{"x": NaN}', "NaN is not a JSON number"),
        (b'{"title": "\xff\xfe"}', "not UTF-8"),
        (b'{"title": ', "not valid JSON"),
    ],
)
def test_bodies_no_parser_can_take_are_400_with_the_reason(api: str, body: bytes, words: str):
    with httpx.Client(timeout=30) as client:
        for path, headers in [("generic", signed(body)), ("pagerduty", pagerduty_signed(body))]:
            response = client.post(f"{api}/webhooks/{path}", content=body, headers=headers)
            refused_with_reason(response, 400, words)


def pagerduty_event(**data: object) -> bytes:
    fields: dict[str, object] = {
        "id": f"PD{uuid.uuid4().hex[:8]}",
        "title": "Checkout errors",
        "service": {"id": "S1", "summary": "payments"},
    }
    fields.update(data)
    return json.dumps(
        {
            "event": {
                "id": str(uuid.uuid4()),
                "event_type": "incident.resolved",
                "occurred_at": "2026-11-20T10:00:00Z",
                "data": fields,
            }
        }
    ).encode()


@pytest.mark.parametrize(
    "data",
    [
        {"created_at": 1e30},
        {"created_at": 10**30},
        {"created_at": -(10**20)},
        {"assignees": 7},
        {"assignees": "abc"},
        {"teams": {"id": "x"}},
        {"priority": [1, 2]},
        {"title": {"nested": True}},
    ],
    ids=str,
)
def test_odd_values_in_an_authentic_event_are_4xx_never_500(api: str, data: dict[str, object]):
    body = pagerduty_event(**data)
    with httpx.Client(timeout=10) as client:
        response = client.post(
            f"{api}/webhooks/pagerduty", content=body, headers=pagerduty_signed(body)
        )
    assert response.status_code < 500, response.text
    assert isinstance(response.json(), dict)


@pytest.mark.parametrize("header", ["x-signature-256", "x-pagerduty-signature", "authorization"])
def test_non_ascii_credentials_are_401_not_500(api: str, header: str):
    body = b"{}"
    endpoint = {"x-pagerduty-signature": "pagerduty", "authorization": "alertmanager"}.get(
        header, "generic"
    )
    value = "sha256=caf\u00e9" if header != "x-pagerduty-signature" else "v1=\u00e9\u00e9"
    with httpx.Client(timeout=10) as client:
        response = client.post(
            f"{api}/webhooks/{endpoint}",
            content=body,
            headers=[
                (b"content-type", b"application/json"),
                (header.encode(), value.encode("latin-1")),
            ],
        )
    refused_with_reason(response, 401, "")


def test_made_up_webhook_paths_add_no_metric_series(api: str):
    with httpx.Client(timeout=10) as client:
        for n in range(20):
            assert client.post(f"{api}/webhooks/made-up-{n}", content=b"{}").status_code == 404
        metrics = client.get(f"{api}/metrics").text
    assert "made-up" not in metrics
    assert 'source="other",status="404"' in metrics


@pytest.mark.parametrize(
    ("resolved", "words"),
    [
        ("9999-12-31T00:00:00Z", "in the future"),
        ("2030-01-01T00:00:00Z", "in the future"),
        ("1900-01-01T00:00:00Z", "is before 2000"),
    ],
)
def test_dates_no_incident_can_have_are_refused_with_the_reason(
    api: str, resolved: str, words: str
):
    """The year 9999 once made drafting retry an OverflowError forever; 1900 would have sent
    thousands of notices. Refused at the door, with the reason, and nothing started."""
    body = json.dumps(
        {
            "incident_id": f"DATE-{uuid.uuid4().hex[:6]}",
            "title": "Checkout errors",
            "severity": "SEV2",
            "team": "payments",
            "resolved_at": resolved,
        }
    ).encode()
    with httpx.Client(timeout=30) as client:
        answer = client.post(f"{api}/webhooks/generic", content=body, headers=signed(body))
    refused_with_reason(answer, 422, words)


def test_dashboard_bodies_are_cut_off_before_anyone_is_asked_who_sent_them(api: str):
    """FastAPI reads a JSON or form body before the role check runs: the dashboard's routes
    take at most 64 KiB, declared or chunked, so nobody can make the API read more."""
    big = json.dumps({"reason": "x" * 100_000}).encode()
    with httpx.Client(base_url=api, timeout=60) as client:
        declared = client.post(
            "/api/postmortems/postmortem-x-1/cancel",
            content=big,
            headers={"content-type": "application/json"},
        )
        assert declared.status_code == 413, declared.text

        def chunks() -> Iterator[bytes]:
            for _ in range(32):  # 2 MiB
                yield b" " * 65536

        chunked = client.post(
            "/api/postmortems/postmortem-x-1/cancel",
            content=chunks(),
            headers={"content-type": "application/json"},
        )
        assert chunked.status_code == 413, chunked.text
        form = client.post("/login", data={"token": "t" * 100_000})
        assert form.status_code == 413, form.text
        client.cookies.clear()  # a script, not the browser the responses set cookies for
        small = client.post("/api/postmortems/postmortem-x-1/cancel", json={"reason": "x"})
        assert small.status_code == 404, small.text  # read, and answered on its merits


def test_headers_that_are_not_urls_are_refused_not_500(api: str):
    with httpx.Client(base_url=api, timeout=30) as client:
        host = client.get("/healthz", headers={"host": "[::1"})
        assert host.status_code == 400 and "unknown Host" in host.json()["error"]
        origin = client.post(
            "/api/postmortems/postmortem-x-1/cancel",
            json={"reason": "x"},
            headers={"origin": "http://[bad"},
        )
        assert origin.status_code == 403 and "cross-site" in origin.json()["error"]
        referer = client.post("/login", data={"token": "x"}, headers={"referer": "http://[::"})
        assert referer.status_code == 403


def test_a_ticket_key_no_query_can_hold_is_not_followed(api: str):
    """A signed Jira delivery whose key ends in a backslash (or holds a quote) would break the
    visibility query: answered 202, not a 503 that the sender retries forever."""
    for key in ("PAY-1\\", "PAY-1'", "PAY-1\u0007"):
        body = json.dumps(
            {
                "webhookEvent": "jira:issue_updated",
                "issue": {"key": key, "fields": {"status": {"statusCategory": {"key": "done"}}}},
                "changelog": {"items": [{"field": "status"}]},
            }
        ).encode()
        mac = hmac.new(SECRETS["webhook_secret_jira"].encode(), body, hashlib.sha256).hexdigest()
        with httpx.Client(timeout=30) as client:
            answer = client.post(
                f"{api}/webhooks/jira",
                content=body,
                headers={"content-type": "application/json", "x-hub-signature": f"sha256={mac}"},
            )
        assert answer.status_code == 202, answer.text
        assert "not one this engine filed" in answer.json()["detail"]


async def test_nothing_started_by_any_of_it(api: str, dev_env: WorkflowEnvironment):
    """Runs last in this module: every request above was refused, and visibility (caught up
    by a sentinel) shows that nothing was started on the API's task queue."""
    started = await started_on(dev_env.client, SERVED[api])
    # The odd-but-authentic PagerDuty events with a readable time may start: only those.
    assert all(s.startswith("postmortem-pagerduty-PD") for s in started), started
