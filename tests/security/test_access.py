"""Who may act, from where: a proxy's user header only from the proxy, no operator action
from another site's page, a known Host only, security headers, a session cookie that is not
the token, placeholder tokens refused (dev server, the real API over HTTP)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from api.access import Role, check_binding, session_cookie
from config import ConfigError, Settings
from domain.messages import PostmortemInput
from domain.models import Phase
from engine import start_postmortem
from tests import scenario
from tests.scenario import until
from tests.test_webhooks import free_port
from workflows.postmortem import PostmortemWorkflow

PROXY_SECRET = "proxy-secret-1"


@pytest.fixture
async def running(dev_env, dev_settings: Settings, dev_worker) -> AsyncIterator[Any]:
    """A post-mortem waiting for its review, on the dev server."""
    team = sorted(__import__("config").load_routing(dev_settings.teams_file).teams)[0]
    now = await dev_env.get_current_time()
    started = await start_postmortem(
        dev_env.client,
        dev_settings.task_queue,
        PostmortemInput(incident=scenario.incident(now, team=team)),
    )
    handle = started.handle
    await until(lambda: handle.query(PostmortemWorkflow.phase), lambda p: p.awaits_review)
    await until(lambda: scenario.idle(handle), lambda quiet: quiet)
    yield handle


async def phase_of(handle: Any) -> Phase:
    return await handle.query(PostmortemWorkflow.phase)


async def test_a_user_header_counts_only_from_the_proxy(dev_env, dev_settings, running):
    settings = dev_settings.model_copy(
        update={
            "api_port": free_port(),
            "auth_user_header": "X-Forwarded-Email",
            "operator_users": "dana@example.com",
            "auth_proxy_networks": [ipaddress.ip_network("10.9.9.0/24")],
            "auth_proxy_secret": SecretStr(PROXY_SECRET),
        }
    )
    url = f"/api/postmortems/{running.id}/cancel"
    async with (
        scenario.serving_api(settings, dev_env.client) as base,
        httpx.AsyncClient(base_url=base) as http,
    ):
        spoofed = await http.post(
            url, json={"reason": "spoofed"}, headers={"X-Forwarded-Email": "dana@example.com"}
        )
        assert spoofed.status_code == 401, spoofed.text
        wrong = await http.post(
            url,
            json={"reason": "spoofed"},
            headers={"X-Forwarded-Email": "dana@example.com", "X-Auth-Proxy-Secret": "guess"},
        )
        assert wrong.status_code == 401
        # With no tokens configured there are no sessions: a cookie signed with a key made of
        # no tokens (which anyone can compute) is no operator. (Found by a review.)
        forged = session_cookie(settings, Role.OPERATOR)
        cookie = await http.post(
            url, json={"reason": "forged"}, headers={"cookie": f"pm_session={forged}"}
        )
        assert cookie.status_code == 401, cookie.text
        assert await phase_of(running) is not Phase.CANCELLED
        # Through the proxy (its secret): the operator acts. (A program, keeping no cookie;
        # a browser would send the page's X-CSRF-Token as well.)
        http.cookies.clear()
        proxied = await http.post(
            url,
            json={"reason": "false alarm"},
            headers={"X-Forwarded-Email": "dana@example.com", "X-Auth-Proxy-Secret": PROXY_SECRET},
        )
        assert proxied.status_code == 200, proxied.text
    await until(lambda: phase_of(running), lambda p: p is Phase.CANCELLED)


def test_a_blank_secret_is_no_secret():
    """`PM_WEBHOOK_SECRET_GENERIC=` uncommented without a value: unset (the webhook is then
    refused, 403), never an empty key anyone can sign with."""
    blank = Settings(webhook_secret_generic="", webhook_token_grafana=SecretStr("  "))
    assert blank.webhook_secret_generic is None and blank.webhook_token_grafana is None
    assert Settings(webhook_secret_generic="s").webhook_secret_generic is not None


def test_unsafe_configurations_refuse_to_start():
    exposed = Settings(api_host="0.0.0.0", auth_user_header="X-Forwarded-Email")
    with pytest.raises(ConfigError, match="anyone reaching the API could send that header"):
        check_binding(exposed)
    check_binding(exposed.model_copy(update={"auth_proxy_secret": SecretStr("x")}))
    placeholder = Settings(operator_tokens=SecretStr("change-me-operator"))
    with pytest.raises(ConfigError, match="placeholder"):
        check_binding(placeholder)


async def test_another_sites_form_cannot_act_and_this_one_needs_its_token(
    dev_env, dev_settings, running
):
    """The default mode (loopback, everyone an operator): what a cross-site form would do."""
    settings = dev_settings.model_copy(update={"api_port": free_port()})
    form = {"operation": "cancel", "reason": "cross-site"}
    async with (
        scenario.serving_api(settings, dev_env.client) as base,
        httpx.AsyncClient(base_url=base) as http,
    ):
        path = f"/postmortems/{running.id}/operate"
        evil = await http.post(path, data=form, headers={"Origin": "https://attacker.example"})
        assert evil.status_code == 403 and "cross-site" in evil.json()["error"]
        evil_referer = await http.post(
            path, data=form, headers={"Referer": "https://attacker.example/page"}
        )
        assert evil_referer.status_code == 403
        api = await http.post(
            f"/api/postmortems/{running.id}/cancel",
            json={"reason": "cross-site"},
            headers={"Origin": "null"},
        )
        assert api.status_code == 403
        # Same origin, but without the page's token (a stale tab, a forged form): refused.
        page = await http.get(f"/postmortems/{running.id}")
        assert page.status_code == 200
        origin = {"Origin": base}
        no_token = await http.post(path, data=form, headers=origin)
        assert no_token.status_code == 403 and "token" in no_token.text
        assert await phase_of(running) is not Phase.CANCELLED
        # The page's own form, with its token: done.
        token = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert token is not None
        done = await http.post(
            path, data=form | {"csrf": token.group(1)}, headers=origin, follow_redirects=False
        )
        assert done.status_code == 303 and "done=cancel" in done.headers["location"]
    await until(lambda: phase_of(running), lambda p: p is Phase.CANCELLED)


async def test_hosts_headers_and_the_session_cookie(dev_env, dev_settings):
    settings = dev_settings.model_copy(
        update={
            "api_port": free_port(),
            "viewer_tokens": SecretStr("viewer-tok-1"),
            "operator_tokens": SecretStr("operator-tok-1"),
            "public_url": "https://pm.example.com",
        }
    )
    async with (
        scenario.serving_api(settings, dev_env.client) as base,
        httpx.AsyncClient(base_url=base) as http,
    ):
        rebound = await http.get("/healthz", headers={"Host": "attacker.example"})
        assert rebound.status_code == 400 and "unknown Host" in rebound.json()["error"]
        assert (await http.get("/healthz", headers={"Host": "pm.example.com"})).status_code == 200
        page = await http.get("/login")
        for name in ("Content-Security-Policy", "X-Content-Type-Options", "Referrer-Policy"):
            assert name in page.headers
        assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
        signed_in = await http.post(
            "/login", data={"token": "operator-tok-1", "next": "/"}, follow_redirects=False
        )
        assert signed_in.status_code == 303
        cookie = signed_in.headers["set-cookie"]
        assert "operator-tok-1" not in cookie
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
        # A forged session value is nobody.
        http.cookies.set("pm_session", "2.9999999999.AAAA")
        forged = await http.get("/api/overview")
        assert forged.status_code == 401
