"""Repeats (issue 16, part 1 and 2): a service on every incident, from every source; earlier
post-mortems of the same service or with similar findings found in the record, linked both
ways, and said in `status`, the documents, the tracking ticket, the invitation and the page.

The record's tests run on SQLite and on a real PostgreSQL; the end-to-end ones on the dev
server with a real worker (the record on each database)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from config import Settings, load_routing
from domain import limits, related, similarity
from domain.intake import IncidentEvent, SourceMapping, map_event
from domain.invitation import describe
from domain.messages import CompleteReviewInput
from domain.models import (
    ActionState,
    ContributingFactor,
    CorrectiveAction,
    FactorCategory,
    Findings,
    Incident,
    Phase,
    PostmortemDocument,
    ReviewOutcome,
    ReviewSlot,
    service_name,
)
from integrations import alerting, generic, incidentio, pagerduty
from integrations.local import LocalTracker
from record import related as related_reads
from record.schema import links
from record.store import Record
from tests import scenario
from tests.scenario import until
from tests.test_lifecycle import record as record_history
from worker import build_worker
from workflows.postmortem import PostmortemWorkflow

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


# -- the service, from each source ----------------------------------------------------------


def test_a_service_is_one_line_lower_case_and_bounded():
    assert service_name("  Checkout\tAPI\x00 ") == "checkout api"
    assert service_name(None) == service_name("") == ""
    assert len(service_name("x" * 500)) == limits.SERVICE
    assert Incident(
        id="i", title="t", severity="SEV2", team="t", resolved_at=NOW, service="Checkout-API"
    ).service == ("checkout-api")


def test_each_source_names_the_service_it_carries():
    pd = pagerduty.parse_webhook(
        {
            "event": {
                "event_type": "incident.resolved",
                "occurred_at": "2026-06-01T10:00:00Z",
                "data": {"id": "Q1", "title": "t", "service": {"id": "PX1", "summary": "Checkout"}},
            }
        }
    )
    assert (pd.service, pd.service_name) == ("PX1", "Checkout")
    am = alerting.alertmanager(
        {
            "groupKey": "{}:{alertname=x}",
            "status": "resolved",
            "commonLabels": {"svc": "search-api"},
            "alerts": [{"endsAt": "2026-06-01T10:00:00Z"}],
        },
        service_label="svc",
    )
    assert am.service == "search-api"
    grafana = {
        "event": {"type": "resolve", "time": "2026-06-01T10:00:00Z"},
        "alert_group": {"id": "G1", "labels": {}},
        "integration": {"name": "Ledger DB"},
    }
    assert alerting.grafana_oncall(grafana).service == "Ledger DB"  # the integration
    grafana["alert_group"]["labels"] = {"service": "ledger"}  # type: ignore[index]
    assert alerting.grafana_oncall(grafana).service == "ledger"  # the label first
    og = {"action": "Close", "alert": {"alertId": "a1", "tags": ["team:x", "service:cdn"]}}
    assert alerting.opsgenie(og).service == "cdn"
    og["alert"]["entity"] = "edge"  # type: ignore[index]
    assert alerting.opsgenie(og).service == "edge"
    body = {
        "event_type": "public_incident.incident_status_updated_v2",
        "public_incident.incident_status_updated_v2": {
            "incident": {
                "id": "01H",
                "reference": "INC-1",
                "updated_at": "2026-06-01T10:00:00Z",
                "affected_components": [{"id": "c1", "name": "Payments API"}],
                "custom_field_entries": [],
            },
            "new_status": {"category": "closed"},
            "previous_status": {"category": "live"},
        },
    }
    assert incidentio.parse_webhook(body).service == "Payments API"
    incident = body["public_incident.incident_status_updated_v2"]["incident"]  # type: ignore[index]
    incident["custom_field_entries"] = [
        {"custom_field": {"name": "Service"}, "values": [{"value_text": "checkout-api"}]}
    ]
    assert incidentio.parse_webhook(body).service == "checkout-api"  # the field first
    plain = generic.GenericIncident.model_validate(
        {
            "incident_id": "g1",
            "title": "t",
            "severity": "SEV2",
            "team": "payments",
            "resolved_at": "2026-06-01T10:00:00Z",
            "service": "Checkout API",
        }
    )
    assert generic.to_event(plain).service == "Checkout API"


def _event(**fields: Any) -> IncidentEvent:
    values: dict[str, Any] = {
        "source": "pagerduty",
        "kind": "resolved",
        "incident_id": "Q1",
        "title": "t",
        "resolved_at": NOW,
    }
    values.update(fields)
    return IncidentEvent(**values)


def test_the_routing_maps_services_to_teams_for_every_source():
    teams = {"payments", "platform"}
    on_checkout = _event(service="PX1", service_name="Checkout API")
    mapped = map_event(on_checkout, SourceMapping(), teams, None, {"checkout api": "payments"})
    assert mapped.incident is not None
    assert (mapped.incident.team, mapped.incident.service) == ("payments", "checkout api")
    # The source's own mapping (by the tool's id) comes first.
    own = SourceMapping(service_teams={"PX1": "platform"})
    mapped = map_event(on_checkout, own, teams, None, {"checkout api": "payments"})
    assert mapped.incident is not None and mapped.incident.team == "platform"
    # No mapping: the triage team, and the service is kept.
    mapped = map_event(_event(service="PX9"), SourceMapping(), teams, "platform", {})
    assert mapped.incident is not None
    assert (mapped.incident.team, mapped.incident.service) == ("platform", "px9")
    assert mapped.incident.unrouted


def test_the_routing_refuses_a_service_mapped_to_an_unknown_team(tmp_path: Path):
    from config import ConfigError

    path = tmp_path / "teams.toml"
    path.write_text(
        '[teams.payments]\nmanager = "m@example.com"\ntimezone = "UTC"\n'
        '[services]\n"checkout-api" = "nobody"\n'
    )
    with pytest.raises(ConfigError, match="nobody"):
        load_routing(path)


# -- similarity ------------------------------------------------------------------------


def test_similar_findings_are_found_by_their_stems_deterministically():
    a = similarity.terms("The deploy pipeline had no canary stage for config changes")
    b = similarity.terms("No canary step in the deployment pipeline for configuration changes")
    unrelated = similarity.terms("The on-call rota had no backup over the holidays")
    assert similarity.similar(a, b)
    assert not similarity.similar(a, unrelated)
    assert similarity.terms("Deploys") == similarity.terms("deployment") == {"deploy"}
    # Words every post-mortem uses say nothing: two texts of them alone are not similar.
    assert similarity.terms("The incident was caused by an issue") == frozenset()
    # One shared word is a coincidence, however short the texts.
    assert not similarity.similar(similarity.terms("disk full"), similarity.terms("disk slow"))
    # A letter alone is not a word; digits split words ("v2api" is "api").
    assert similarity.terms("x " * 10_000) == frozenset()
    assert similarity.terms("v2api") == {"api"}


def _candidate(n: int, *, service: str = "checkout-api", factor: str = "", days: int = 10):
    c = related.Candidate(
        workflow_id=f"postmortem-manual-INC-{n}",
        incident_id=f"INC-{n}",
        title=f"Incident {n}",
        service=service,
        team="payments",
        resolved_at=NOW - timedelta(days=days),
    )
    if factor:
        c.findings = related.findings_of([("missing_safeguard", factor)], "", "")
    return c


def test_similar_findings_rank_before_the_same_service_and_the_list_is_bounded():
    mine = related.Mine(
        service="checkout-api",
        findings=related.findings_of(
            [("missing_safeguard", "Config pushes skip the canary stage")], "", ""
        ),
    )
    candidates = [_candidate(n, days=n + 1) for n in range(limits.RELATED + 5)]
    candidates.append(
        _candidate(99, service="search", factor="Config pushes skipped their canary stage", days=40)
    )
    found = related.decide(mine, candidates, 90)
    assert len(found) == limits.RELATED
    assert found[0].workflow_id == "postmortem-manual-INC-99"
    assert found[0].reasons[0].startswith("similar factor [missing_safeguard]")
    assert found[1].reasons == ["same service checkout-api within 90 days"]
    assert [r.incident_id for r in found[1:4]] == ["INC-0", "INC-1", "INC-2"]  # newest first
    assert all(r.similarity == 0 for r in found[1:])


def test_the_summary_counts_the_repeat_and_names_what_is_still_open():
    action = CorrectiveAction(
        id="canary",
        title="Add a canary stage",
        type="prevent",
        owner="alex@example.com",
        team="payments",
        due=NOW,
    )
    earlier = related.entry(_candidate(1), ["same service checkout-api within 90 days"], 0.0)
    earlier.actions = [
        related.related_action(
            related.RelatedAction(
                id=action.id,
                title=action.title,
                state=ActionState.OPEN,
                owner=action.owner,
                due=action.due,
            )
        )
    ]
    line = related.summary("checkout-api", 2, 90, [earlier])
    assert line == (
        "third incident on checkout-api in 90 days; earlier: INC-1 (2026-05-22); "
        "still open from them: Add a canary stage (INC-1)"
    )
    assert related.summary("checkout-api", 0, 90, []) == ""
    # The facilitator hears of it in the invitation.
    document = PostmortemDocument(
        workflow_id="postmortem-manual-INC-2",
        incident=scenario.incident(NOW, service="checkout-api"),
        related=[earlier],
        related_summary=line,
    )
    slot = ReviewSlot(start=NOW, window_end=NOW, timezone="UTC", facilitator="ria@example.com")
    text = describe(document, slot, "http://draft")
    assert "For the facilitator: still open from earlier post-mortems" in text
    assert "- Add a canary stage (INC-1; owner alex@example.com; due 2026-06-01)" in text


# -- the record ----------------------------------------------------------------------------


# Causes unlike each other (a shared cause would relate the post-mortems: it is meant to).
CAUSES = [
    ("Memory exhausted on the queue brokers.", "Broker capacity was never reviewed."),
    ("Certificates expired on the edge.", "Renewal depends on a calendar reminder."),
    ("A schema migration locked the orders table.", "Migrations run without a lock timeout."),
    ("Traffic shifted to a cold region.", "Failover drills stopped last year."),
    ("The cache returned stale prices.", "Invalidation relies on a cron job."),
    ("Log volume filled the disks.", "Retention settings differ per host."),
    ("DNS answers pointed at retired hosts.", "Records are edited by hand."),
]


def archived(
    n: int,
    *,
    service: str,
    factors: list[str],
    days_before: int,
    team: str = "payments",
    private: bool = False,
    states: tuple[ActionState, ...] = (ActionState.OPEN, ActionState.DONE),
) -> PostmortemDocument:
    incident = scenario.incident(
        NOW - timedelta(days=days_before),
        incident_id=f"INC-{n}",
        service=service,
        team=team,
        private=private,
    )
    return PostmortemDocument(
        workflow_id=incident.workflow_id,
        incident=incident,
        phase=Phase.FOLLOWING_UP,
        findings=ReviewOutcome(
            contributing_factors=[
                ContributingFactor(category=FactorCategory.MISSING_SAFEGUARD, description=f)
                for f in factors
            ],
            proximate_cause=CAUSES[n % len(CAUSES)][0],
            root_cause=CAUSES[n % len(CAUSES)][1],
            accepted_at=incident.resolved_at,
        ),
        actions=[
            CorrectiveAction(
                id=f"a{k}",
                title=f"Action {k} of INC-{n}",
                type="prevent",
                owner="alex@example.com",
                team=team,
                due=NOW + timedelta(days=k),
                state=state,
                state_reason="not worth it" if state is ActionState.DROPPED else "",
            )
            for k, state in enumerate(states)
        ],
    )


def test_the_record_finds_the_same_service_and_similar_findings_within_the_look_back(
    record: Record,
):
    docs = [
        archived(
            1, service="checkout-api", factors=["Nobody owns the retry budget"], days_before=10
        ),
        archived(
            2,
            service="search-api",
            factors=["The deploy pipeline has no canary stage for config changes"],
            days_before=20,
            states=(ActionState.DROPPED,),
        ),
        archived(3, service="checkout-api", factors=["x"], days_before=200),  # too old
        archived(4, service="ledger", factors=["Disk filled up overnight"], days_before=5),
        # Private: never related (its texts would leak into ours).
        archived(
            5,
            service="checkout-api",
            factors=["No canary stage for config changes in the deploy pipeline"],
            days_before=3,
            team="platform",
            private=True,
        ),
    ]
    for doc in docs:
        assert record.project(doc, 1)
    mine = archived(
        6,
        service="checkout-api",
        factors=["Config changes reach production without a canary stage in the pipeline"],
        days_before=0,
    )
    found = related_reads.find(record, mine, 90)
    assert [r.incident_id for r in found.related] == ["INC-2", "INC-1"]
    similar_one, same_service = found.related
    assert similar_one.reasons[0].startswith("similar factor [missing_safeguard]")
    assert [(a.id, a.state, a.state_reason) for a in similar_one.actions] == [
        ("a0", ActionState.DROPPED, "not worth it")
    ]
    assert same_service.reasons == ["same service checkout-api within 90 days"]
    assert [(a.id, a.state) for a in same_service.actions] == [("a0", ActionState.OPEN)]
    assert found.same_service == 1
    assert found.summary.startswith("second incident on checkout-api in 90 days; earlier: INC-2")
    assert "still open from them: Action 0 of INC-1 (INC-1)" in found.summary
    # Not even its own team's private post-mortem: its texts would reach the documents.
    own = mine.model_copy(
        update={"incident": mine.incident.model_copy(update={"team": "platform"})}
    )
    assert "INC-5" not in [r.incident_id for r in related_reads.find(record, own, 90).related]

    # Written with what it found: the earlier one shows it, as later.
    mine.related = found.related
    assert record.project(mine, 1)
    later = related_reads.later(record, docs[0].workflow_id)
    assert [(r.workflow_id, r.later) for r in later] == [(mine.workflow_id, True)]
    assert related_reads.later(record, docs[3].workflow_id) == []
    # Its next write replaces its links; gone with it when its row is deleted.
    mine.related = found.related[:1]
    assert record.project(mine, 2)
    assert related_reads.later(record, docs[0].workflow_id) == []
    with record.engine.begin() as connection:
        assert connection.execute(select(links.c.related_id)).scalars().all() == [
            docs[1].workflow_id
        ]


def test_nothing_related_and_no_service_find_nothing(record: Record):
    assert record.project(archived(1, service="", factors=["a b c"], days_before=1), 1)
    lone = archived(2, service="", factors=["Something else entirely here"], days_before=0)
    found = related_reads.find(record, lone, 90)
    assert (found.related, found.same_service, found.summary) == ([], 0, "")


# -- end to end: the dev server, a worker, the record on each database -----------------------


def _findings(now: datetime, team: str, factor: str, action_id: str) -> CompleteReviewInput:
    data = scenario.findings(
        now,
        contributing_factors=[{"category": "missing_safeguard", "description": factor}],
        actions=[
            {
                "id": action_id,
                "title": f"Guard config pushes ({action_id})",
                "type": "prevent",
                "owner": "alex@example.com",
                "team": team,
                "due": (now + timedelta(days=30)).isoformat(),
            }
        ],
    )
    return CompleteReviewInput(findings=Findings.model_validate(data))


async def test_repeats_are_found_linked_both_ways_and_said_everywhere(
    dev_env, dev_settings: Settings, record_url: str
):
    """Two incidents on one service: the second names the first (its open action called out
    to the facilitator, on its ticket, in its documents); a third on another service whose
    findings resemble the first's names it too; the first shows both, as later."""
    from pydantic import SecretStr

    from cli import status_text
    from tests.test_webhooks import free_port

    settings = dev_settings.model_copy(
        update={"record_url": SecretStr(record_url), "api_port": free_port()}
    )
    client = dev_env.client
    team = min(load_routing(settings.teams_file).teams)
    store = Record(record_url)
    now = datetime.now(UTC)  # the dev server's clock: given to the incidents, never asserted
    tag = uuid.uuid4().hex[:6]

    async def settled(handle: Any, phase: Phase) -> Any:
        state = await until(
            lambda: handle.query(PostmortemWorkflow.status), lambda s: s.phase is phase
        )
        # The record has it as it is (the projection follows each change).
        await until(
            lambda: _recorded_phase(store, handle.id), lambda p: p == phase.value, seconds=60
        )
        return state

    async with build_worker(client, settings):
        first = await scenario.start(
            client,
            settings.task_queue,
            scenario.incident(
                now - timedelta(days=3), incident_id=f"A-{tag}", team=team, service="Checkout-API"
            ),
        )
        await settled(first, Phase.REVIEW_SCHEDULED)
        await first.execute_update(
            PostmortemWorkflow.complete_review,
            _findings(now, team, "Config pushes reach production without a canary stage", "canary"),
        )
        await settled(first, Phase.FOLLOWING_UP)

        second = await scenario.start(
            client,
            settings.task_queue,
            scenario.incident(now, incident_id=f"B-{tag}", team=team, service="checkout-api"),
        )
        state = await settled(second, Phase.REVIEW_SCHEDULED)
        assert [r.workflow_id for r in state.related] == [first.id]
        assert state.related[0].reasons == ["same service checkout-api within 90 days"]
        assert [(a.id, a.state) for a in state.related[0].actions] == [("canary", "open")]
        assert state.related_summary.startswith(
            f"second incident on checkout-api in 90 days; earlier: A-{tag}"
        )
        assert "still open from them: Guard config pushes (canary)" in state.related_summary
        tracker = LocalTracker(settings.tracker_db, {})
        assert state.tracking_ticket is not None
        (ticket,) = tracker.list_tickets(key=state.tracking_ticket.key)
        assert "Related: second incident on checkout-api" in ticket.body
        assert "open: Guard config pushes (canary)" in ticket.body

        await record_history("related", second)  # PM_RECORD_HISTORIES: for tests/test_replay
        third = await scenario.start(
            client,
            settings.task_queue,
            scenario.incident(now, incident_id=f"C-{tag}", team=team, service="search-api"),
        )
        state = await settled(third, Phase.REVIEW_SCHEDULED)
        assert state.related == []  # another service, no findings yet
        await third.execute_update(
            PostmortemWorkflow.complete_review,
            _findings(now, team, "A config push reached production with no canary stage", "gate"),
        )
        state = await settled(third, Phase.FOLLOWING_UP)
        assert [r.workflow_id for r in state.related] == [first.id]
        assert state.related[0].reasons[0].startswith("similar factor [missing_safeguard]")
        assert (
            state.related_summary
            == f"earlier: A-{tag} ({(now - timedelta(days=3)):%Y-%m-%d})"
            + ("; still open from them: Guard config pushes (canary) (A-" + tag + ")")
        )
        assert state.tracking_ticket is not None
        comments = [c.body for c in tracker.list_tickets(key=state.tracking_ticket.key)[0].comments]
        assert any(c.startswith("The findings resemble earlier post-mortems:") for c in comments)
        assert state.published_url is not None
        published = Path(state.published_url.removeprefix("file://")).read_text()
        assert '<h2 id="related">Related post-mortems</h2>' in published
        assert f"<strong>A-{tag}</strong>" in published

        # The first shows both later ones: in status, the API and its page.
        first_state = await first.query(PostmortemWorkflow.status)
        assert first_state.related == []  # its own: none earlier
        shown = related_reads.both_ways(store, first_state)
        assert {(r.workflow_id, r.later) for r in shown.related} == {
            (second.id, True),
            (third.id, True),
        }
        text = status_text(shown)
        assert f"later {second.id}" in text and f"later {third.id}" in text
        async with (
            scenario.serving_api(settings, client) as base,
            httpx.AsyncClient(base_url=base, timeout=30) as http,
        ):
            page = (await http.get(f"/postmortems/{first.id}")).text
            assert f'data-workflow="{second.id}"' in page and "(later: it names this one)" in page
            api = (await http.get(f"/api/postmortems/{first.id}")).json()["state"]
            assert {r["workflow_id"] for r in api["related"]} == {second.id, third.id}
            page = (await http.get(f"/postmortems/{second.id}")).text
            assert "second incident on checkout-api in 90 days" in page
    store.dispose()


def _recorded_phase(store: Record, workflow_id: str) -> Any:
    async def read() -> str | None:
        recorded = store.get(workflow_id)
        return recorded.state.phase.value if recorded else None

    return read()


# -- found by an independent attack -------------------------------------------------------


def test_private_post_mortems_stay_out_of_repeats_either_way(record: Record):
    """A private one is never found (its texts would reach another's document and ticket),
    finds nothing, and a link written before it became private is not shown."""
    hidden = archived(
        1, service="checkout-api", factors=["No canary stage for config"], days_before=5,
        private=True,
    )  # fmt: skip
    assert record.project(hidden, 1)
    open_one = archived(2, service="checkout-api", factors=["No canary stage"], days_before=0)
    assert related_reads.find(record, open_one, 90).related == []
    # Private and looking: nothing found, no link written.
    earlier = archived(3, service="checkout-api", factors=["x"], days_before=9)
    assert record.project(earlier, 1)
    looking = archived(4, service="checkout-api", factors=["y"], days_before=0, private=True)
    assert related_reads.find(record, looking, 90) == related_reads.Found([], 0, "")
    # A link from a post-mortem that is private now: not shown on the earlier one.
    found = related_reads.find(record, open_one, 90).related
    assert [r.incident_id for r in found] == ["INC-3"]
    open_one.related = found
    assert record.project(open_one, 1)
    assert [r.incident_id for r in related_reads.later(record, earlier.workflow_id)] == ["INC-2"]
    now_private = open_one.model_copy(deep=True)
    now_private.incident.private = True
    assert record.project(now_private, 2)
    assert related_reads.later(record, earlier.workflow_id) == []


def test_the_routing_file_services_come_before_a_sources_default_team():
    mapping = SourceMapping(default_team="platform")
    event = _event(service="PX1", service_name="Checkout API")
    mapped = map_event(event, mapping, {"payments", "platform"}, None, {"checkout api": "payments"})
    assert mapped.incident is not None and mapped.incident.team == "payments"
    mapped = map_event(_event(service="other"), mapping, {"payments", "platform"}, None, {})
    assert mapped.incident is not None and mapped.incident.team == "platform"


def test_ordinals_say_what_they_count():
    one = [related.entry(_candidate(1), ["same service x within 90 days"], 0.0)]
    for count, word in [(2, "third"), (9, "10th"), (10, "11th"), (20, "21st"), (21, "22nd"),
                        (22, "23rd"), (100, "101st"), (110, "111th")]:  # fmt: skip
        assert related.summary("x", count, 90, one).startswith(f"{word} incident on x"), count


def test_a_long_texts_terms_are_its_first_words_not_the_alphabets_first():
    words = " ".join(f"alpha{chr(97 + n % 26)}{chr(97 + n // 26 % 26)}" for n in range(200))
    found = similarity.terms(words + " pipeline timeout")
    assert len(found) == similarity.MAX_TERMS and "pipelin" not in found
    found = similarity.terms("pipeline timeout " + words)
    assert {"pipelin", "timeout"} <= found
    assert max(len(t) for t in similarity.terms("x" * 5_000)) <= 40


def test_an_upgrade_keeps_archived_private_post_mortems_private(record_url: str):
    """Rows written before 0006 get their privacy from their stored document, and their
    findings' terms: found similar like new ones, the private one never."""
    from sqlalchemy import inspect

    from record.schema import metadata
    from record.store import _postmortem_row as store_row

    store = Record(record_url)
    store.upgrade("0005")
    columns = {c["name"] for c in inspect(store.engine).get_columns("postmortems")}
    for n, private in ((1, True), (2, False)):
        doc = archived(n, service="", factors=["No canary stage for config"], days_before=3,
                       private=private)  # fmt: skip
        row = {k: v for k, v in store_row(doc, 1).items() if k in columns}
        with store.engine.begin() as connection:
            connection.execute(metadata.tables["postmortems"].insert().values(**row))
            connection.execute(
                metadata.tables["factors"]
                .insert()
                .values(
                    workflow_id=doc.workflow_id,
                    position=0,
                    category="missing_safeguard",
                    description="No canary stage for config",
                )
            )
    store.upgrade()
    mine = archived(3, service="", factors=["Config pushes have no canary stage"], days_before=0)
    assert [r.incident_id for r in related_reads.find(store, mine, 90).related] == ["INC-2"]
    store.dispose()


# -- the database counts shared terms: the same answer as the rule -------------------------


def _brute_similar(
    mine: related.Mine, docs: list[PostmortemDocument], since: datetime, until_: datetime
) -> dict[str, list[tuple[str, str, frozenset[str]]]]:
    """What `_similar` must return, computed the slow way: every finding of every visible
    post-mortem of the look-back compared with every one of mine by similarity.score."""
    scores: dict[str, float] = {}
    found: dict[str, list[tuple[str, str, frozenset[str]]]] = {}
    for doc in docs:
        if doc.incident.private or not since <= doc.incident.resolved_at <= until_:
            continue
        assert doc.findings is not None
        theirs = [
            (f"factor [{f.category.value}]", f.description, similarity.terms(f.description))
            for f in doc.findings.contributing_factors
        ] + [
            (label, text, similarity.terms(text))
            for label, text in (
                ("root cause", doc.findings.root_cause),
                ("proximate cause", doc.findings.proximate_cause),
            )
        ]
        for label, text, their_terms in theirs:
            best = max(similarity.score(t, their_terms) for _l, _x, t in mine.findings)
            if best:
                scores[doc.workflow_id] = max(best, scores.get(doc.workflow_id, 0.0))
                found.setdefault(doc.workflow_id, []).append((label, text, their_terms))
    resolved = {d.workflow_id: d.incident.resolved_at for d in docs}
    kept = sorted(scores, key=lambda w: (-scores[w], -resolved[w].timestamp(), w))
    return {w: found[w] for w in kept[: related_reads.SIMILAR_READ]}


def _mine(doc: PostmortemDocument) -> related.Mine:
    assert doc.findings is not None
    return related.Mine(
        service=doc.incident.service,
        findings=related.findings_of(
            [(f.category.value, f.description) for f in doc.findings.contributing_factors],
            doc.findings.proximate_cause,
            doc.findings.root_cause,
        ),
    )


def test_the_database_keeps_exactly_the_findings_the_rule_calls_similar(record: Record):
    """The lookup's SQL (shared terms counted per finding, the Dice bound in HAVING, the
    closest SIMILAR_READ by their best pair) against the rule applied to every finding:
    random texts over a small vocabulary, so that shares of 1, 2 and more terms, Dice just
    under, at and over 0.5, ties, private ones and the look-back's edges all occur."""
    import random

    words = ["canary", "config", "pipeline", "alert", "owner", "rollback", "disk", "quota",
             "retry", "budget", "failover", "drill"]  # fmt: skip
    rng = random.Random(1608)

    def text() -> str:
        return " ".join(rng.sample(words, rng.randint(1, 6)))

    docs = []
    for n in range(80):
        doc = archived(
            n, service=f"svc-{n % 7}", factors=[text() for _ in range(rng.randint(1, 4))],
            days_before=rng.choice([0, 1, 30, 89, 90, 91, 120]), private=rng.random() < 0.1,
        )  # fmt: skip
        docs.append(doc)
        assert record.project(doc, 1)
    for attempt in range(12):
        mine_doc = archived(
            1000 + attempt, service="svc-x", factors=[text() for _ in range(rng.randint(1, 3))],
            days_before=0,
        )  # fmt: skip
        mine = _mine(mine_doc)
        until_ = mine_doc.incident.resolved_at
        since = until_ - timedelta(days=90)
        with record.reading() as connection:
            got = related_reads._similar(connection, mine, since, until_, mine_doc.workflow_id)
        want = _brute_similar(mine, docs, since, until_)
        assert list(got) == list(want), attempt
        for workflow_id, findings_ in want.items():
            assert sorted(got[workflow_id]) == sorted(findings_), (attempt, workflow_id)
    assert len(want) == related_reads.SIMILAR_READ  # the cut was reached


def test_similarity_is_kept_at_its_bounds_and_dropped_past_them(record: Record):
    """Dice exactly 0.5 with two shared terms: similar; 4/9: not; one shared term of one
    each (Dice 1.0): not, one word is a coincidence."""
    cases = {
        1: "canary config alert owner",  # shares canary, config of 4 with 4: 0.5, kept
        2: "canary config alert owner disk",  # 2 of 4 with 5: 4/9, dropped
        3: "quota",  # one shared of one: dropped
    }
    for n, factor in cases.items():
        assert record.project(archived(n, service="", factors=[factor], days_before=1), 1)
    mine = related.Mine(
        service="",
        findings=[
            ("factor [other]", "", similarity.terms("canary config rollback retry")),
            ("factor [other]", "", similarity.terms("quota")),
        ],
    )
    with record.reading() as connection:
        got = related_reads._similar(connection, mine, NOW - timedelta(days=90), NOW, "me")
    assert {w: [t for _l, t, _s in f] for w, f in got.items()} == {
        archived(1, service="", factors=["x"], days_before=1).workflow_id: [cases[1]]
    }


def test_ties_at_the_cut_rank_as_the_rule_does_whatever_the_databases_collation(
    postgres: Any, tmp_path: Path
):
    """More equally similar post-mortems, resolved at the same moment, than are read: the id
    in code point order (as related.decide ranks them), on SQLite and on a PostgreSQL database
    whose collation is a language's (the official image's default is en_US.utf8, where
    "a1" sorts before "B1"; by code point "B1" comes first). Found by an independent attack."""
    import uuid as uuid_

    import psycopg

    name = f"icu_{uuid_.uuid4().hex[:8]}"
    with psycopg.connect(postgres.url, autocommit=True) as connection:
        connection.execute(
            f'CREATE DATABASE "{name}" TEMPLATE template0 LOCALE_PROVIDER icu '
            "ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'"
        )
    urls = [f"sqlite:///{tmp_path / 'ties.sqlite3'}", postgres.url.rsplit("/", 1)[0] + f"/{name}"]
    ids = [f"a{i}" for i in range(13)] + [f"B{i}" for i in range(12)]
    docs = [
        archived(0, service="", factors=["config pushes skip canary checks"], days_before=1)
        for _ in ids
    ]
    for doc, incident_id in zip(docs, ids, strict=True):
        doc.incident.id = incident_id
        doc.workflow_id = f"postmortem-manual-{incident_id}"
    mine_doc = archived(
        1, service="", factors=["config pushes skip the canary checks"], days_before=0
    )
    mine = _mine(mine_doc)
    until_ = mine_doc.incident.resolved_at
    want = list(_brute_similar(mine, docs, until_ - timedelta(days=90), until_))
    assert "postmortem-manual-B5" in want and "postmortem-manual-a9" not in want
    answers = []
    for url in urls:
        store = Record(url)
        store.upgrade()
        for doc in docs:
            assert store.project(doc, 1)
        with store.reading() as connection:
            got = related_reads._similar(
                connection, mine, until_ - timedelta(days=90), until_, mine_doc.workflow_id
            )
        assert list(got) == want, url
        answers.append([r.workflow_id for r in related_reads.find(store, mine_doc, 90).related])
        store.dispose()
    assert answers[0] == answers[1]


def test_a_lookup_compares_its_causes_then_its_factors_while_their_terms_fit(record: Record):
    """The database's work has a bound (limits.LOOKUP_TERMS terms in all): the causes first,
    then the factors in order; a factor past the bound is not compared (found by an
    independent attack: 100 factors of 64 terms took seconds per thousand post-mortems)."""
    words = [
        f"w{chr(97 + n % 26)}{chr(97 + n // 26 % 26)}{chr(97 + n // 676)}x" for n in range(64 * 12)
    ]
    big = [" ".join(words[64 * k : 64 * (k + 1)]) for k in range(12)]  # 64 terms each
    findings = related.findings_of([("other", text) for text in big], "a b", "c d e")
    assert [len(t) for _l, _x, t in findings][:2] == [64, 64]
    kept = related.within_budget(findings)
    assert sum(len(t) for _l, _x, t in kept) <= limits.LOOKUP_TERMS
    assert [label for label, _x, _t in kept][-2:] == ["root cause", "proximate cause"]
    assert len(kept) == 2 + (limits.LOOKUP_TERMS - sum(len(f[2]) for f in findings[-2:])) // 64
    # A factor within the bound is compared; the same text past it is not.
    earlier = archived(1, service="", factors=[big[0]], days_before=1)
    later_one = archived(2, service="", factors=[big[-1]], days_before=1)
    assert record.project(earlier, 1) and record.project(later_one, 1)
    mine = archived(3, service="", factors=big, days_before=0)
    by_factor = {
        r.incident_id
        for r in related_reads.find(record, mine, 90).related
        if any(reason.startswith("similar factor") for reason in r.reasons)
    }
    assert by_factor == {"INC-1"}
