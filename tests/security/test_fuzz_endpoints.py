"""Every endpoint that is not a webhook (the dashboard's JSON API and pages, its forms,
sign-in, metrics, the invitation and the draft), fuzzed over real HTTP with access
configured: never a 5xx; without valid credentials, or with a viewer's on an operator's
action, nothing but a refusal; and nothing changed on a running post-mortem."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any
from urllib.parse import quote

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from api.app import create_app
from config import Settings
from tests import scenario
from tests.security.test_access import running  # noqa: F401 (the fixture)
from tests.test_fuzz import json_values
from tests.test_webhooks import free_port
from workflows.postmortem import PostmortemWorkflow

VIEWER, OPERATOR = "viewer-token-7f3a9c", "operator-token-2b8e41"
# Served to anyone: sign-in, health and the API's own description.
PUBLIC = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/login"),
    ("POST", "/login"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/docs/oauth2-redirect"),
    ("GET", "/redoc"),
}
REQUESTS = 700  # spread over every route; the figure is in the README

text = st.text(max_size=40)
queries = st.dictionaries(
    st.sampled_from(
        [
            *("team", "severity", "phase", "overdue", "late_review", "page_size"),
            *("page_token", "offset", "limit", "next", "done", "error"),
        ]
    ),
    text,
    max_size=4,
)
forms = st.fixed_dictionaries(
    {},
    optional={
        "operation": st.sampled_from(["schedule", "acknowledge", "cancel", "route", "begin", "x"]),
        "at": st.sampled_from(["2030-01-01T10:00:00+00:00", "yesterday", ""]),
        "reason": text,
        "note": text,
        "finding_id": text,
        "team": st.sampled_from(["payments", "platform", "", "x' OR 1=1"]),
        "csrf": st.just("t") | text,
        "token": st.sampled_from(["", VIEWER + "x", "change-me", OPERATOR[:-1]]) | text,
        "next": st.sampled_from(["/", "//evil.example", "/\\evil.example", "https://evil.example"]),
    },
)
# Bodies an operator would send: what must be refused is the sender, not the body.
PLAUSIBLE: list[dict[str, Any]] = [
    {"reason": "fuzzed"},
    {"at": "2031-01-06T10:00:00+00:00", "reason": "fuzzed"},
    {"team": "platform", "reason": "fuzzed"},
    {"finding_ids": ["B1"], "note": "fuzzed"},
    {},
]
plausible = st.sampled_from(PLAUSIBLE)
# Credentials that are not valid, and the one valid one (a viewer's) that may read only.
NOT_OPERATORS: list[dict[str, str]] = [
    {},
    {"authorization": "Bearer wrong"},
    {"authorization": f"Bearer {OPERATOR}x"},
    {"authorization": f"Basic {OPERATOR}"},
    {"cookie": "pm_session=2.9999999999.forged"},
    {"cookie": "pm_session=2.9999999999.AAAA; pm_csrf=t"},
    {"cookie": "pm_csrf=t", "x-csrf-token": "t"},
    {"x-forwarded-user": "admin@example.com"},
    {"authorization": f"Bearer {VIEWER}"},
    {"authorization": f"Bearer {VIEWER}", "cookie": "pm_csrf=t", "x-csrf-token": "t"},
]
credentials = st.sampled_from(NOT_OPERATORS)


def routes(current: Settings) -> list[tuple[str, str]]:
    """(method, path) of every route of the app, webhooks aside (fuzzed in test_fuzz.py)."""
    found: list[tuple[str, str]] = []

    def walk(routes: list[Any], prefix: str) -> None:
        for route in routes:
            included = getattr(route, "original_router", None)
            if included is not None:  # an included router (FastAPI >= 0.165 keeps them apart)
                walk(included.routes, prefix + route.include_context.prefix)
                continue
            path, methods = prefix + getattr(route, "path", ""), getattr(route, "methods", None)
            if not path.startswith("/webhooks/") and methods:
                found.extend((m, path) for m in sorted(methods) if m in ("GET", "POST"))

    walk(create_app(current).routes, "")
    return found


async def test_every_endpoint_refuses_without_credentials_and_changes_nothing(
    dev_env,
    dev_settings: Settings,
    running,  # noqa: F811 (the fixture imported above)
):
    current = dev_settings.model_copy(
        update={
            "api_port": free_port(),
            "viewer_tokens": SecretStr(VIEWER),
            "operator_tokens": SecretStr(OPERATOR),
        }
    )
    every = routes(current)
    assert len(every) >= 15, every
    history = len((await running.fetch_history()).events)
    phase = await running.query(PostmortemWorkflow.phase)
    tried: set[tuple[str, str]] = set()

    async with scenario.serving_api(current, dev_env.client) as base:

        @settings(
            max_examples=REQUESTS,
            deadline=None,
            database=None,
            derandomize=True,  # the same requests every run: CI stays repeatable
            suppress_health_check=list(HealthCheck),
        )
        @given(
            route=st.sampled_from(every),
            workflow=st.sampled_from([running.id, "postmortem-x-1", "nope"]) | text,
            query=queries,
            auth=credentials,
            body=st.one_of(
                forms.map(lambda f: ("form", f)),
                json_values.map(lambda v: ("json", v)),
                plausible.map(lambda v: ("json", v)),
                st.binary(max_size=200).map(lambda b: ("raw", b)),
            ),
        )
        def attempt(
            route: tuple[str, str],
            workflow: str,
            query: dict[str, str],
            auth: dict[str, str],
            body: tuple[str, Any],
        ) -> None:
            method, template = route
            path = template.replace("{workflow_id}", quote(workflow, safe="") or "x")
            kind, content = body
            sent: dict[str, Any] = {"params": query, "headers": dict(auth)}
            if method == "POST":
                if kind == "form":
                    sent["data"] = content
                elif kind == "json":
                    sent["content"] = json.dumps(content).encode()
                    sent["headers"]["content-type"] = "application/json"
                else:
                    sent["content"] = content
            with httpx.Client(base_url=base, timeout=30) as http:
                response = http.request(method, path, **sent)
            tried.add(route)
            assert response.status_code < 500, (route, sent, response.text[:300])
            assert "Traceback" not in response.text
            viewer = auth.get("authorization") == f"Bearer {VIEWER}"
            allowed = route in PUBLIC or (viewer and method == "GET")
            if not allowed:
                assert not 200 <= response.status_code < 300, (route, sent, response.text[:300])
                if response.status_code in (302, 303, 307):
                    assert response.headers["location"].startswith("/login"), response.headers
            if route == ("POST", "/login"):
                assert "pm_session" not in response.cookies, sent  # no valid token was sent

        await asyncio.to_thread(attempt)

        # And every operator action, on the running post-mortem, with a body that would work,
        # from every sender that is not an operator: each one refused.
        actions = [(m, p) for m, p in every if m == "POST" and (m, p) not in PUBLIC]
        assert len(actions) >= 6, actions
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            for (_, template), auth, fields in itertools.product(actions, NOT_OPERATORS, PLAUSIBLE):
                path = template.replace("{workflow_id}", running.id)
                attempts: list[dict[str, Any]] = [{"headers": auth, "json": fields}]
                if path.endswith("/operate"):  # the page's forms, with a matching form token
                    attempts = [
                        {"headers": auth, "data": fields | {"operation": op, "csrf": "t"}}
                        for op in ("schedule", "acknowledge", "cancel", "route", "begin")
                    ]
                for sent in attempts:
                    http.cookies.clear()  # only the cookies this attempt names
                    response = await http.post(path, **sent)
                    assert response.status_code < 500, response.text
                    assert not 200 <= response.status_code < 300, (path, sent, response.text)
                    if response.status_code == 303:
                        assert response.headers["location"].startswith("/login"), (path, sent)

    assert tried == set(every), set(every) - tried  # every route was reached
    assert len((await running.fetch_history()).events) == history  # nothing happened to it
    assert await running.query(PostmortemWorkflow.phase) is phase
