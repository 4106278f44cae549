"""The dashboard in a real browser: Debian's Chromium driven by Playwright, against the API
on the dev server with seeded post-mortems. Numbers on the pages are checked against the JSON
API; a filter is used, the CSV downloaded; screenshots land in tests/artifacts/ (not kept).

`make test` installs Chromium where it can (root with apt); elsewhere these tests are
skipped with the reason, except in CI, where a missing browser fails them."""

from __future__ import annotations

import csv
import io
import os
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.test_dashboard import (  # noqa: F401 - api is a fixture
    OPERATOR,
    VIEWER,
    api,
    settled_overview,
    visible,
)


def session(token: str, base: str) -> Any:
    """The cookie /login would set for this token: a signed role, not the token."""
    from pydantic import SecretStr

    from api.access import COOKIE, Role, session_cookie
    from config import Settings

    settings = Settings(  # as the api fixture of tests.test_dashboard
        viewer_tokens=SecretStr(f"other-viewer,{VIEWER}"), operator_tokens=SecretStr(OPERATOR)
    )
    role = Role.OPERATOR if token == OPERATOR else Role.VIEWER
    return {"name": COOKIE, "value": session_cookie(settings, role), "url": base}


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parent / "artifacts"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

if not Path(CHROMIUM).exists():
    if os.environ.get("CI"):
        pytest.fail(
            "Chromium is missing in CI: `make test` should have installed it", pytrace=False
        )
    pytest.skip(
        "Chromium is not installed (as root: apt-get install -y chromium); browser tests skipped",
        allow_module_level=True,
    )


@pytest.fixture
async def browser():
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=FLAGS
        )
        yield launched
        await launched.close()


async def test_the_dashboard_in_chromium(api, browser):  # noqa: F811
    base, s = api
    ARTIFACTS.mkdir(exist_ok=True)
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        overview = await settled_overview(http, s)
        overdue = await visible(
            http, f"/api/actions?overdue=true&team={s.team}", lambda p: p["total"] == 1
        )

    context = await browser.new_context(
        viewport={"width": 1280, "height": 900}, accept_downloads=True
    )
    page = await context.new_page()
    await page.goto(f"{base}/")
    assert "/login" in page.url  # signed out: sent to sign in
    await page.fill("input[name=token]", VIEWER)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{base}/")

    # The overview, narrowed to the seeded team with its filter.
    await page.select_option("#team-filter", s.team)
    await page.click("form.filters button[type=submit]")
    await page.wait_for_url(f"**/?team={s.team}")
    for phase, n in overview["phases"].items():
        shown = await page.inner_text(f'#phases [data-phase="{phase}"] .n')
        assert int(shown) == n, phase
    assert int(await page.inner_text('[data-metric="late-reviews"] .n')) == overview["late_reviews"]
    for bucket, n in overview["ageing"].items():
        assert int(await page.inner_text(f'#ageing [data-bucket="{bucket}"] .n')) == n
    assert await page.locator("#weekly-chart rect.opened").count() == 12
    await page.screenshot(path=str(ARTIFACTS / "overview.png"), full_page=True)

    # The overdue page: the same rows as the API, then the CSV.
    await page.click(f'#overdue-by-team a:has-text("{s.team}")')
    await page.wait_for_url(f"**/overdue?team={s.team}")
    rows = page.locator("#overdue tbody tr")
    assert await rows.count() == overdue["total"]
    first = overdue["items"][0]
    assert await rows.nth(0).get_attribute("data-action") == first["action_id"]
    assert first["title"] in await rows.nth(0).inner_text()
    async with page.expect_download() as download_info:
        await page.click("#csv")
    download = await download_info.value
    target = ARTIFACTS / "overdue.csv"
    await download.save_as(target)
    csv_rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert [r["postmortem"] for r in csv_rows] == [i["postmortem_id"] for i in overdue["items"]]
    await page.screenshot(path=str(ARTIFACTS / "overdue.png"), full_page=True)

    # A post-mortem's page from the list.
    await rows.nth(0).locator("a").first.click()
    await page.wait_for_url(f"**/postmortems/{s.following_up}")
    assert await page.inner_text("#phase") == "following up"
    assert await page.locator("#actions tbody tr").count() == 2
    await page.screenshot(path=str(ARTIFACTS / "postmortem.png"), full_page=True)
    # Its public version, from the page's link: the summary as customers would read it.
    await page.click('a:has-text("Public version")')
    await page.wait_for_url(f"**/postmortems/{s.following_up}/public")
    assert await page.locator("h1").count() == 1
    assert "What we changed" in await page.inner_text("body")
    await page.screenshot(path=str(ARTIFACTS / "public.png"), full_page=True)
    await context.close()

    # On a phone: readable, nothing wider than the screen but the tables' own scroll.
    phone = await browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    await phone.add_cookies([session(VIEWER, base)])
    mobile = await phone.new_page()
    await mobile.goto(f"{base}/?team={s.team}")
    overflow = await mobile.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 1
    await mobile.screenshot(path=str(ARTIFACTS / "overview-phone.png"), full_page=True)
    await phone.close()


async def test_operators_act_from_the_page_and_viewers_do_not_see_the_forms(api, browser):  # noqa: F811
    base, s = api
    viewer = await browser.new_context()
    await viewer.add_cookies([session(VIEWER, base)])
    page = await viewer.new_page()
    await page.goto(f"{base}/postmortems/{s.scheduled}")
    assert await page.locator("#reschedule").count() == 0
    await viewer.close()

    operator = await browser.new_context()
    await operator.add_cookies([session(OPERATOR, base)])
    page = await operator.new_page()
    await page.goto(f"{base}/postmortems/{s.scheduled}")
    await page.fill("#reschedule input[name=at]", "next tuesday")
    await page.click("#reschedule button")
    assert "is not a time with its zone" in await page.inner_text("#error")
    await page.fill("#reschedule input[name=at]", "2030-01-07T10:00:00+01:00")
    await page.fill("#reschedule input[name=reason]", "the team is on call this week")
    await page.click("#reschedule button")
    assert await page.inner_text("#done") == "Done: schedule."
    text = await page.inner_text("main")
    assert "2030-01-07 09:00 UTC" in text, text
    await page.fill("#cancel input[name=reason]", "merged into another incident")
    await page.click("#cancel button")
    await page.wait_for_selector("#done")
    await page.screenshot(path=str(ARTIFACTS / "operated.png"), full_page=True)
    await operator.close()


async def test_the_learning_page_in_chromium(api, browser):  # noqa: F811
    """/learning shows what /api/learning says: its filters, its chart, a table, its CSV."""
    base, s = api
    ARTIFACTS.mkdir(exist_ok=True)
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        await settled_overview(http, s)  # the seeded post-mortems are in the record
        data = await visible(http, f"/api/learning?team={s.team}&days=90", lambda d: True)
    context = await browser.new_context(
        viewport={"width": 1280, "height": 900}, accept_downloads=True
    )
    await context.add_cookies([session(VIEWER, base)])
    page = await context.new_page()
    await page.goto(f"{base}/learning")
    await page.select_option("#team-filter", s.team)
    await page.select_option("#days-filter", "90")
    await page.click("form.filters button[type=submit]")
    await page.wait_for_url(f"**/learning?team={s.team}&service=&days=90")
    assert f"{data['postmortems']} post-mortem(s)" in await page.inner_text("#period")
    cells = sum(1 for counts in data["categories"].values() for n in counts if n)
    assert cells >= 1
    assert await page.locator("#category-chart rect[data-category]").count() == cells
    for kind, outcome in data["by_type"].items():
        row = page.locator(f'#outcomes tr[data-type="{kind}"] td.num')
        assert int(await row.nth(0).inner_text()) == outcome["due"], kind
    async with page.expect_download() as download_info:
        await page.click('a[href^="/api/learning.csv?table=categories"]')
    download = await download_info.value
    target = ARTIFACTS / "learning-categories.csv"
    await download.save_as(target)
    rows = {
        r[0]: [int(n) for n in r[1:]] for r in list(csv.reader(io.StringIO(target.read_text())))[1:]
    }
    assert rows == data["categories"]
    await page.screenshot(path=str(ARTIFACTS / "learning.png"), full_page=True)
    await context.close()

    phone = await browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    await phone.add_cookies([session(VIEWER, base)])
    mobile = await phone.new_page()
    await mobile.goto(f"{base}/learning?team={s.team}")
    overflow = await mobile.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 1
    await phone.close()
