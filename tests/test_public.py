"""The public version (issue 16, part 5): a customer-facing summary made from the record,
without private entries, people's names, internal links or secrets; checked by the blameless
check before `postmortem public --publish` writes it to the team's own public folder."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from domain import public
from domain.models import (
    ActionState,
    ContributingFactor,
    CorrectiveAction,
    FactorCategory,
    Phase,
    PostmortemState,
    ReviewOutcome,
    ReviewSlot,
    TeamInfo,
    TimelineEntry,
)
from integrations.lexicon import load_lexicon
from record.store import open_record
from tests import scenario

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
SECRET = "s3cr3t-token-value-42"
LEAKS = ["alex", "kim", "sam", "rivera", "ria", "dana", "acme", "grafana.internal", "ghp_",
         SECRET, "@example.com", "owner@", "payments"]  # fmt: skip


def state(**findings: str) -> PostmortemState:
    incident = scenario.incident(
        NOW,
        incident_id="PUB-1",
        title="Checkout errors after Alex Kim's config push",
        responders=["alex.kim@example.com", "Sam Rivera"],
        service="checkout-api",
    )
    texts = {
        "summary": "Sam Rivera rolled the config back; status at "
        "https://status.example.com/incidents/1 and graphs at "
        "https://grafana.internal.example/d/1 (token " + SECRET + ").",
        "impact": "12% of checkouts failed for 40 minutes.",
    }
    texts.update(findings)
    return PostmortemState(
        workflow_id=incident.workflow_id,
        incident=incident,
        phase=Phase.FOLLOWING_UP,
        owner="owner@example.com",
        team=TeamInfo(
            name="payments", tracker="local", manager="dana.manager@example.com", timezone="UTC"
        ),
        review=ReviewSlot(
            start=NOW,
            window_end=NOW,
            timezone="UTC",
            facilitator="ria.facilitator@example.com",
            participants=["alex.kim@example.com"],
        ),
        timeline=[
            TimelineEntry(
                at=NOW - timedelta(hours=2),
                text="Alex paged @sam-r: errors on https://grafana.internal.example/d/1 "
                "ghp_abcdefghijklmnopqrstuvwxyz0123456789ABCD",
                known="the push was the only change (Alex)",
            ),
            TimelineEntry(
                at=NOW - timedelta(hours=1), text="ACME Corp's checkouts failed", private=True
            ),
            TimelineEntry(at=NOW - timedelta(minutes=30), text="Error rate back under 0.1%"),
        ],
        findings=ReviewOutcome(
            summary=texts["summary"],
            impact=texts["impact"],
            contributing_factors=[
                ContributingFactor(
                    category=FactorCategory.MISSING_SAFEGUARD,
                    description="Config pushes skip the canary stage (Dana knew)",
                )
            ],
            proximate_cause="A timeout of 0 ms",
            root_cause="No validation of config",
            accepted_at=NOW,
        ),
        actions=[
            CorrectiveAction(
                id=f"a{n}",
                title=title,
                type=kind,
                owner="alex.kim@example.com",
                team="payments",
                due=NOW + timedelta(days=n),
                state=state_,
            )
            for n, (title, kind, state_) in enumerate(
                [
                    ("Add a canary stage to config pushes", "prevent", ActionState.DONE),
                    ("Alert on checkout error rate", "detect", ActionState.OPEN),
                    ("Find out why Sam's dashboard lagged", "investigate", ActionState.OPEN),
                    ("Rewrite the config service", "repair", ActionState.DROPPED),
                ]
            )
        ],
    )


def test_the_public_version_keeps_what_customers_need_and_nothing_else():
    summary = public.public_version(
        state(),
        load_lexicon("en"),
        public_hosts=["status.example.com"],
        secrets=[SECRET],
    )
    text = public.render(summary)
    html = public.render(summary, html=True)
    for rendered in (text, html):
        lowered = rendered.lower()
        for leak in LEAKS:
            assert leak.lower() not in lowered, (leak, rendered)
        assert "12% of checkouts failed for 40 minutes." in rendered
        assert "https://status.example.com/incidents/1" in rendered  # a public host stays
        assert public.LINK in rendered and "an engineer" in rendered
        assert "Error rate back under 0.1%" in rendered
        assert "canary stage" in rendered  # a change made: done
        assert "Config pushes skip" not in rendered  # the team's factors stay inside
    assert "- Add a canary stage to config pushes (done)" in text
    assert "- Alert on checkout error rate (planned)" in text
    assert "Rewrite the config service" not in text  # dropped
    assert "dashboard lagged" not in text  # an investigation is internal
    assert "after 1 h 55 min" in text  # started two hours, resolved five minutes, before NOW
    assert summary.removed >= 8
    assert summary.notes == []


def test_a_private_incident_shows_no_timeline():
    private = state()
    private.incident.private = True
    summary = public.public_version(private, load_lexicon("en"))
    assert summary.timeline == [] and "Timeline" not in public.render(summary)


def test_blame_in_the_public_text_is_found_before_it_is_published():
    summary = public.public_version(
        state(impact="Checkouts failed because the on-call engineer was careless."),
        load_lexicon("en"),
    )
    assert summary.notes and summary.notes[0].startswith("impact:")


@pytest.mark.parametrize(
    "text",
    [
        "Ping alex.kim@example.com or @alexk",
        "Logs at http://10.0.0.7:9000/x and ftp://files.corp/y",
        "Alex Kim and alex KIM",
        "Mary Johnson restarted it",  # a first name and a surname: not one of ours, still out
    ],
)
def test_scrubbing_catches_each_kind(text: str):
    scrub = public.Scrubber(
        people=public.people_of(state()),
        first_names=load_lexicon("en").first_names,
        public_hosts=frozenset(),
    )
    cleaned, removed = scrub(text)
    assert removed >= 1
    assert not re.search(r"alex|kim|mary|johnson|10\.0\.0\.7|files\.corp", cleaned, re.I)


async def test_the_cli_publishes_to_the_teams_public_folder_only_when_clean(env, settings):
    """From the record (its workflow gone): refused while blame is in it, then published to
    public/ under the publish folder, never beside the internal documents."""
    from tests.test_cli import cli, ok
    from tests.test_visibility import cli_env

    settings = settings.model_copy(
        update={"temporal_address": env.client.service_client.config.target_host}
    )
    store = open_record(settings)
    blamed = state(impact="Checkouts failed because the on-call engineer was careless.")
    assert store.project(blamed, 1)
    workflow_id = blamed.workflow_id
    refused = cli(settings, "public", workflow_id, "--publish", env=cli_env(settings))
    assert refused.returncode != 0 and "blameless check found" in refused.stderr
    assert not (settings.published_dir / "public").exists()  # nothing written
    assert store.project(state(), 2)
    preview = ok(settings, "public", workflow_id)
    assert "# Checkout errors after an engineer" in preview
    done = ok(settings, "public", workflow_id, "--publish")
    assert "published: file://" in done
    folder = settings.published_dir / "public"
    written = sorted(p.name for p in folder.rglob("*.md"))
    assert written == ["2026-06-01-manual-PUB-1.md"]
    body = next(folder.rglob("*.md")).read_text()
    for leak in ("alex", "sam rivera", "grafana.internal", "ghp_"):
        assert leak not in body.lower()
    assert not list((settings.published_dir).glob("*/*.md"))  # no internal document beside
    store.dispose()


# -- found by an independent attack -------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "gone"),
    [
        ("curl http://[2001:db8::1]:8080/health failed", "2001:db8"),  # was a crash
        ("see https://admin:hunter2@grafana.internal.corp/d/abc", "grafana.internal"),
        ("mail jordan@[10.0.0.1] now", "10.0.0.1"),
    ],
)
def test_odd_links_and_addresses_are_taken_out_whole(text: str, gone: str):
    scrub = public.Scrubber(people=frozenset(), first_names=frozenset(), public_hosts=frozenset())
    cleaned, removed = scrub(text)
    assert gone not in cleaned and "hunter2" not in cleaned and removed >= 1


def test_the_service_is_scrubbed_and_checked_like_the_rest():
    odd = state()
    odd.incident.service = "alex kim's sandbox https://grafana.internal.example/d/1"
    summary = public.public_version(odd, load_lexicon("en"))
    assert "alex" not in summary.service and "grafana.internal" not in summary.service
    assert ("service", summary.service) in list(public.as_text_fields(summary))


VIEWER, OPERATOR = "viewer-token-p1", "operator-token-p2"


async def test_the_api_and_the_page_show_the_public_version_and_operators_publish_it(
    env, client, settings
):
    """Viewers read it (HTML, and JSON with what the blameless check finds); operators
    publish it from the API or the page's form, only when clean. Every refusal writes
    nothing: no token, a viewer, a forged token or form, blame in the text, an unknown id,
    a public folder that cannot be written."""
    import httpx
    from pydantic import SecretStr

    from tests.test_webhooks import free_port

    served = settings.model_copy(
        update={
            "api_port": free_port(),
            "viewer_tokens": SecretStr(VIEWER),
            "operator_tokens": SecretStr(OPERATOR),
            "webhook_secret_jira": SecretStr(SECRET),  # one of the engine's secrets
        }
    )
    store = open_record(served)
    blamed = state(impact="Checkouts failed because the on-call engineer was careless.")
    assert store.project(blamed, 1)
    wid = blamed.workflow_id
    folder = served.published_dir / "public"
    viewer = {"Authorization": f"Bearer {VIEWER}"}
    operator = {"Authorization": f"Bearer {OPERATOR}"}
    async with (
        scenario.serving_api(served, client) as base,
        httpx.AsyncClient(base_url=base) as http,
    ):
        read = await http.get(f"/api/postmortems/{wid}/public", headers=viewer)
        assert read.status_code == 200, read.text
        said = read.json()
        assert said["publishable"] is False and any("careless" in n for n in said["notes"])
        assert said["markdown"].startswith("# Checkout errors after an engineer")
        shown = await http.get(f"/postmortems/{wid}/public", headers=viewer)
        assert shown.status_code == 200 and "<h1>Checkout errors after an engineer" in shown.text
        for text in (said["markdown"].lower(), shown.text.lower()):
            for leak in ("alex", "sam rivera", "grafana.internal", "ghp_", SECRET):
                assert leak not in text, leak
        assert (await http.get(f"/api/postmortems/{wid}/public")).status_code == 401
        missing = await http.get("/api/postmortems/postmortem-manual-NOPE/public", headers=viewer)
        assert missing.status_code == 404

        url = f"/api/postmortems/{wid}/public/publish"
        for headers, status, reason in [
            ({}, 401, ""),
            (viewer, 403, ""),
            ({"Authorization": "Bearer forged"}, 401, ""),
            (operator, 409, "blameless check found"),
        ]:
            answer = await http.post(url, headers=headers)
            assert answer.status_code == status, answer.text
            assert reason in answer.text
        assert not folder.exists()  # nothing written

        assert store.project(state(), 2)  # the findings revised: clean now
        said = (await http.get(f"/api/postmortems/{wid}/public", headers=viewer)).json()
        assert said["publishable"] is True and said["notes"] == []
        done = await http.post(url, headers=operator)
        assert done.status_code == 200, done.text
        (place,) = done.json()["published"]
        assert place.startswith("file://") and done.json()["removed"] > 0
        again = await http.post(url, headers=operator)  # the same file, written again
        assert again.status_code == 200
        assert sorted(p.name for p in folder.rglob("*.md")) == ["2026-06-01-manual-PUB-1.md"]

        # The page: a link for everyone, the form for operators, its token checked.
        await http.post("/login", data={"token": OPERATOR, "next": "/"})
        page = await http.get(f"/postmortems/{wid}")
        assert f"/postmortems/{wid}/public" in page.text and 'id="public"' in page.text
        token = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert token is not None

        async def operate(csrf: str) -> httpx.Response:
            return await http.post(
                f"/postmortems/{wid}/operate",
                data={"operation": "public", "csrf": csrf},
                headers={"Origin": base},
                follow_redirects=False,
            )

        for path in folder.rglob("*.md"):
            path.unlink()
        assert (await operate("forged")).status_code == 403
        assert not list(folder.rglob("*.md"))
        published = await operate(token.group(1))
        assert published.status_code == 303
        assert "public+version+published" in published.headers["location"]
        assert len(list(folder.rglob("*.md"))) == 1

        # A public folder that cannot be written: 502 with why, nothing claimed.
        for path in folder.rglob("*"):
            if path.is_file():
                path.unlink()
        for path in sorted(folder.rglob("*"), reverse=True):
            path.rmdir()
        folder.rmdir()
        folder.write_text("not a folder")
        failed = await http.post(url, headers=operator)
        assert failed.status_code == 502 and "cannot write" in failed.json()["error"]
        failed_form = await operate(token.group(1))
        assert "error=" in failed_form.headers["location"]
    store.dispose()


# -- found by an independent attack of the page and the API ---------------------------------


async def test_a_private_incidents_public_version_is_never_published(env, client, settings):
    """Nothing of a private incident is published: the API refuses (409) and writes nothing,
    says it is not publishable, and the page offers no form."""
    import httpx
    from pydantic import SecretStr

    from tests.test_webhooks import free_port

    served = settings.model_copy(
        update={"api_port": free_port(), "operator_tokens": SecretStr(OPERATOR)}
    )
    store = open_record(served)
    hidden = state()
    hidden.incident.private = True
    assert store.project(hidden, 1)
    wid = hidden.workflow_id
    operator = {"Authorization": f"Bearer {OPERATOR}"}
    async with (
        scenario.serving_api(served, client) as base,
        httpx.AsyncClient(base_url=base) as http,
    ):
        said = (await http.get(f"/api/postmortems/{wid}/public", headers=operator)).json()
        assert said["publishable"] is False
        refused = await http.post(f"/api/postmortems/{wid}/public/publish", headers=operator)
        assert refused.status_code == 409 and "private incident" in refused.json()["error"]
        await http.post("/login", data={"token": OPERATOR, "next": "/"})
        page = await http.get(f"/postmortems/{wid}")
        assert page.status_code == 200 and 'id="public"' not in page.text
    assert not (served.published_dir / "public").exists()
    store.dispose()


def test_two_incidents_never_share_a_public_file():
    """An id with a dot (read as the extension: `2026.06.01-db.1` and `.2` wrote one file) or
    other characters gets them replaced and a digest of the whole id; a plain id stays."""
    names = set()
    for incident_id in ("2026.06.01-db.1", "2026.06.01-db.2", "db/1", "db 1", "db-1", "DB-1"):
        doc = state()
        doc.incident.id = incident_id
        name = public.document_name(doc)
        assert re.fullmatch(r"2026-06-01-manual-[A-Za-z0-9_-]+", name), name
        names.add(name)
    assert len(names) == 6
    assert "2026-06-01-manual-DB-1" in names


def test_every_target_is_tried_and_a_partial_publication_says_where_it_went(settings, tmp_path):
    """Two public targets, the first unwritable: the second is still written, and the error
    says both what failed and where it went (a 502 from the API: nothing claimed as done)."""
    import engine
    from integrations.errors import IntegrationError

    blocked, good = tmp_path / "blocked", tmp_path / "good"
    blocked.write_text("a file, not a folder")
    teams = settings.teams_file.read_text().replace(
        'postmortem_owner = "owner@example.com"\n',
        'postmortem_owner = "owner@example.com"\n'
        f'public = [{{ kind = "folder", dir = "{blocked}/sub" }}, '
        f'{{ kind = "folder", dir = "{good}" }}]\n',
        1,
    )
    settings.teams_file.write_text(teams)
    with pytest.raises(IntegrationError) as failed:
        engine.publish_public(settings, state())
    assert isinstance(failed.value, engine.PublishIncomplete)
    assert "cannot write in" in str(failed.value) and f"published to file://{good}" in str(
        failed.value
    )
    assert len(list(good.rglob("*.md"))) == 1
