"""The record (issue 14, first part): the schema from Alembic's migrations, upgraded in
place, and the projection's rule: an upsert keyed by workflow id that applies only a newer
version, with the actions and factors replaced in the same transaction. Each test runs on
SQLite and on a real PostgreSQL (tests/postgres.py)."""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from pydantic import SecretStr
from sqlalchemy import inspect
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DeleteWorkflowExecutionRequest
from temporalio.service import RPCError, RPCStatusCode

import engine
from config import load_routing
from domain.messages import ActionStateChange, CancelInput, CompleteReviewInput
from domain.models import (
    ActionState,
    ContributingFactor,
    CorrectiveAction,
    FactorCategory,
    Findings,
    Phase,
    PhaseChange,
    PostmortemDocument,
    PostmortemState,
    ReviewOutcome,
    TicketRef,
)
from record import reads
from record.schema import metadata
from record.store import Record, RecordUnavailable
from record.store import _postmortem_row as store_row
from tests import scenario
from tests.postgres import PostgresServer
from tests.scenario import until
from tests.test_lifecycle import reviewed
from worker import build_worker
from workflows.postmortem import PostmortemWorkflow

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def document(version: int, *, done: int = 0) -> PostmortemDocument:
    """A post-mortem as it is at `version`: later versions have moved on (phase, actions
    done, one more action)."""
    incident = scenario.incident(NOW, incident_id="INC-REC")
    actions = [
        CorrectiveAction(
            id=f"a{n}",
            title=f"Fix {n}",
            type="repair",
            owner="alex@example.com",
            team="payments",
            due=NOW + timedelta(days=30 + n),
            state=ActionState.DONE if n < done else ActionState.OPEN,
            completed_at=NOW + timedelta(days=n) if n < done else None,
            ticket=TicketRef(tracker="local", key=f"PAY-{n + 2}", url=f"http://t/PAY-{n + 2}"),
        )
        for n in range(1 + version % 5)
    ]
    closed = done and done >= len(actions)
    return PostmortemDocument(
        workflow_id=incident.workflow_id,
        incident=incident,
        phase=Phase.CLOSED if closed else Phase.FOLLOWING_UP,
        findings=ReviewOutcome(
            contributing_factors=[
                ContributingFactor(
                    category=FactorCategory.MISSING_SAFEGUARD, description=f"v{version}"
                )
            ],
            proximate_cause="a config push",
            root_cause="no canary for config",
            accepted_at=NOW,
        ),
        actions=actions,
        phase_history=[PhaseChange(phase=Phase.CLOSED, at=NOW + timedelta(days=40))]
        if closed
        else [],
    )


def test_the_schema_is_its_migrations_upgraded_in_place(record: Record):
    assert record.revision() == Record.head() == "0008"
    record.upgrade()  # again: nothing to do, nothing lost
    record.project(document(1), 1)
    record.upgrade()
    assert record.get(document(1).workflow_id) is not None
    # The tables the code uses are exactly what the migrations made.
    with record.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), metadata)
    assert differences == []


def test_an_upgrade_from_the_first_schema_loses_nothing(record_url: str):
    """A record made by the first release (0001), with a post-mortem in it, upgraded in place
    to the newest schema: the post-mortem is still read, listed and counted; its next
    projection fills what the new columns hold."""
    store = Record(record_url)
    store.upgrade("0001")
    old = document(2, done=1)
    row = {
        k: v
        for k, v in store_row(old, 1).items()
        if k in {c["name"] for c in inspect(store.engine).get_columns("postmortems")}
    }
    with store.engine.begin() as connection:
        connection.execute(metadata.tables["postmortems"].insert().values(**row))
    store.upgrade()
    assert store.revision() == Record.head()
    recorded = store.get(old.workflow_id)
    assert recorded is not None and recorded.state.document() == old
    listed = reads.postmortem_list(store, reads.PostmortemFilter(), 10)
    assert [(r.workflow_id, r.started_at) for r in listed] == [(old.workflow_id, None)]
    assert store.project(document(3, done=1), 2)  # the next change writes it whole
    store.dispose()


def test_a_newer_version_replaces_an_older_one_never_the_reverse(record: Record):
    first, newest, late = document(1), document(3, done=2), document(2)
    workflow_id = first.workflow_id
    assert record.project(first, 1)
    assert record.project(newest, 3)
    assert not record.project(late, 2)  # late: ignored
    assert not record.project(newest, 3)  # retried: ignored
    recorded = record.get(workflow_id)
    assert recorded is not None and recorded.version == 3
    assert recorded.state.document() == newest
    rows = record.action_rows(workflow_id)
    assert [(r["action_id"], r["state"], r["ticket_key"]) for r in rows] == [
        ("a0", "done", "PAY-2"),
        ("a1", "done", "PAY-3"),
        ("a2", "open", "PAY-4"),
        ("a3", "open", "PAY-5"),
    ]
    # Moments come back in UTC, aware, on both databases.
    assert rows[0]["due"] == NOW + timedelta(days=30)
    assert rows[0]["completed_at"] == NOW and rows[2]["completed_at"] is None


def test_a_closed_post_mortem_keeps_its_outcomes(record: Record):
    closed = document(4, done=5)
    assert closed.phase is Phase.CLOSED
    record.project(closed, 4)
    recorded = record.get(closed.workflow_id)
    assert recorded is not None and recorded.state.phase is Phase.CLOSED
    assert {r["state"] for r in record.action_rows(closed.workflow_id)} == {"done"}


def test_concurrent_projections_converge_on_the_newest(record: Record):
    versions = list(range(1, 41))
    random.Random(7).shuffle(versions)
    errors: list[BaseException] = []

    def write(chunk: list[int]) -> None:
        try:
            for version in chunk:
                record.project(document(version, done=version % 3), version)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(versions[n::4],)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    recorded = record.get(document(1).workflow_id)
    assert recorded is not None and recorded.version == 40
    assert recorded.state.document() == document(40, done=40 % 3)
    assert len(record.action_rows(recorded.state.workflow_id)) == len(document(40).actions)


def test_a_database_down_mid_write_is_unavailable_and_changes_nothing(
    postgres: PostgresServer,
):
    url = postgres.database(password="s3cret-password")
    store = Record(url)
    store.upgrade()
    store.project(document(1), 1)
    postgres.stop()
    try:
        with pytest.raises(RecordUnavailable) as down:
            store.project(document(2), 2)
        assert "s3cret" not in str(down.value)
    finally:
        postgres.start()
    recorded = store.get(document(1).workflow_id)
    assert recorded is not None and recorded.version == 1  # nothing half-written
    assert store.project(document(2), 2)  # the retry
    store.dispose()


async def test_a_closed_post_mortem_is_in_the_record_with_its_outcomes(
    env, client, settings, worker
):
    """The workflow projects each change: once closed, the record has the post-mortem as
    its workflow last had it, and each action's outcome."""
    handle, _, _, state = await reviewed(env, client, settings)
    for action in state.actions:
        await handle.execute_update(
            PostmortemWorkflow.set_action_state,
            ActionStateChange(action_id=action.id, state=ActionState.DONE, reason="shipped"),
        )
    final: PostmortemState = await handle.result()
    assert final.phase is Phase.CLOSED
    store = Record(settings.record_database)
    recorded = store.get(handle.id)
    assert recorded is not None and recorded.version == final.record_version
    assert recorded.state == final
    rows = store.action_rows(handle.id)
    assert [(r["action_id"], r["state"], r["state_reason"]) for r in rows] == sorted(
        (a.id, "done", "shipped") for a in final.actions
    )
    store.dispose()


async def test_the_record_outlives_the_workflow(dev_env, dev_settings):
    """Temporal's retention deletes a closed workflow (here: deleted through the client);
    the record still has the post-mortem."""
    client = dev_env.client
    team = min(load_routing(dev_settings.teams_file).teams)
    async with build_worker(client, dev_settings):
        handle = await scenario.start(
            client, dev_settings.task_queue, scenario.incident(datetime.now(UTC), team=team)
        )
        await until(lambda: handle.query(PostmortemWorkflow.phase), lambda p: p.awaits_review)
        await handle.execute_update(PostmortemWorkflow.cancel, CancelInput(reason="a duplicate"))
        final: PostmortemState = await handle.result()
    await client.workflow_service.delete_workflow_execution(
        DeleteWorkflowExecutionRequest(
            namespace=client.namespace,
            workflow_execution=WorkflowExecution(workflow_id=handle.id),
        )
    )

    async def gone() -> bool:
        try:
            await handle.describe()
        except RPCError as error:
            return error.status is RPCStatusCode.NOT_FOUND
        return False

    await until(gone, lambda deleted: deleted, seconds=60)
    store = Record(dev_settings.record_database)
    recorded = store.get(handle.id)
    assert recorded is not None and recorded.state.phase is Phase.CANCELLED
    assert recorded.state == final
    store.dispose()


def test_text_with_a_nul_character_is_recorded_not_refused(record: Record):
    """PostgreSQL's text refuses NUL; people's text may hold one (JSON's \\u0000). A write
    that failed on it would be retried for ever and hold the post-mortem open."""
    nul = document(5, done=1)
    nul.incident.title = "Checkout\x00errors"
    assert nul.findings is not None
    nul.findings.root_cause = "no canary\x00"
    nul.findings.contributing_factors[0].description = "\x00"
    nul.actions[0].state_reason = "shipped\x00"
    assert record.project(nul, 5)
    recorded = record.get(nul.workflow_id)
    assert recorded is not None and recorded.state.document() == nul  # the document keeps it
    assert record.action_rows(nul.workflow_id)[0]["state_reason"] == "shipped\ufffd"


async def test_a_deleted_closed_post_mortem_is_listed_shown_served_and_counted(
    dev_env, dev_settings
):
    """Issue 14's acceptance: a post-mortem closes (one action done, one dropped); Temporal
    deletes every workflow of it (here through the client, as retention does). The CLI's
    `list` and `status`, the API's list, detail and overview, the page and the metrics still
    have it, with its actions' outcomes."""
    from tests.test_cli import ok
    from tests.test_dashboard import OPERATOR, VIEWER, as_role
    from tests.test_webhooks import free_port

    client = dev_env.client
    team = min(load_routing(dev_settings.teams_file).teams)
    now = datetime.now(UTC)
    async with build_worker(client, dev_settings):
        handle = await scenario.start(
            client, dev_settings.task_queue, scenario.incident(now, team=team)
        )
        await until(
            lambda: handle.query(PostmortemWorkflow.status), lambda s: s.phase.awaits_review
        )
        actions = [
            scenario.findings(now)["actions"][0] | {"team": team},
            scenario.findings(now)["actions"][0]
            | {"id": "docs", "title": "Document the config path", "type": "process", "team": team},
        ]
        await handle.execute_update(
            PostmortemWorkflow.complete_review,
            CompleteReviewInput(
                findings=Findings.model_validate(scenario.findings(now, actions=actions))
            ),
        )
        await until(
            lambda: handle.query(PostmortemWorkflow.status),
            lambda s: all(a.ticket is not None for a in s.actions) and len(s.actions) == 2,
            seconds=60,
        )
        for action_id, state in (("canary", ActionState.DONE), ("docs", ActionState.DROPPED)):
            await handle.execute_update(
                PostmortemWorkflow.set_action_state,
                ActionStateChange(action_id=action_id, state=state, reason=f"{state.value} here"),
            )
        final: PostmortemState = await handle.result()
    assert final.phase is Phase.CLOSED

    # Every workflow of it, deleted: the post-mortem and its follow-ups.
    mine = f"WorkflowId STARTS_WITH {engine.quote(handle.id)}"
    ids = [w.id async for w in client.list_workflows(mine)]
    assert handle.id in ids and len(ids) >= 3
    for workflow_id in ids:
        await client.workflow_service.delete_workflow_execution(
            DeleteWorkflowExecutionRequest(
                namespace=client.namespace,
                workflow_execution=WorkflowExecution(workflow_id=workflow_id),
            )
        )

    async def remaining() -> int:
        return len([w async for w in client.list_workflows(mine)])

    await until(remaining, lambda n: n == 0, seconds=60)
    with pytest.raises(RPCError) as gone:
        await handle.describe()
    assert gone.value.status is RPCStatusCode.NOT_FOUND

    # The CLI: listed and shown (the workflow is gone, Temporal still answers).
    listed = json.loads(await asyncio.to_thread(ok, dev_settings, "list", "--json"))
    assert [(r["workflow_id"], r["phase"]) for r in listed] == [(handle.id, "closed")]
    shown = json.loads(await asyncio.to_thread(ok, dev_settings, "status", handle.id, "--json"))
    assert shown["phase"] == "closed"
    assert sorted((a["id"], a["state"]) for a in shown["actions"]) == [
        ("canary", "done"),
        ("docs", "dropped"),
    ]

    # The API: listed, served, counted, shown; operations say it has ended.
    settings = dev_settings.model_copy(
        update={
            "api_port": free_port(),
            "viewer_tokens": SecretStr(VIEWER),
            "operator_tokens": SecretStr(OPERATOR),
            "overview_cache_seconds": 0,
        }
    )
    async with (
        scenario.serving_api(settings, client) as base,
        httpx.AsyncClient(base_url=base, timeout=30) as http,
    ):
        viewer = as_role(VIEWER)
        page = (await http.get("/api/postmortems?phase=closed", headers=viewer)).json()
        assert [r["workflow_id"] for r in page["items"]] == [handle.id]
        detail = await http.get(f"/api/postmortems/{handle.id}", headers=viewer)
        assert detail.status_code == 200
        state = detail.json()["state"]
        assert state == final.model_dump(mode="json")  # as the workflow last had it
        overview = (await http.get(f"/api/overview?team={team}", headers=viewer)).json()
        assert overview["phases"]["closed"] == 1
        assert overview["weeks"][-1]["opened"] == 2 and overview["weeks"][-1]["closed"] == 2
        html = (await http.get(f"/postmortems/{handle.id}", headers=viewer)).text
        assert "Document the config path" in html
        metrics = (await http.get("/metrics", headers=viewer)).text
        assert 'postmortem_actions{state="done"} 1.0' in metrics
        assert 'postmortem_actions{state="dropped"} 1.0' in metrics
        cancelled = await http.post(
            f"/api/postmortems/{handle.id}/cancel",
            json={"reason": "too late"},
            headers=as_role(OPERATOR),
        )
        assert cancelled.status_code == 409 and "ended (closed)" in cancelled.json()["error"]


def test_each_turn_of_a_rotation_is_given_once_from_many_workers(record: Record):
    """Facilitator turns live in the record, shared by every worker: 8 threads asking for 25
    post-mortems each of one team (and each asking twice) give every turn 0..199 once, and a
    post-mortem the same turn every time it asks."""
    given: dict[str, int] = {}
    lock = threading.Lock()

    def ask(worker: int) -> None:
        for n in range(25):
            postmortem = f"postmortem-manual-T{worker}-{n}"
            first = record.turn("payments", postmortem)
            assert record.turn("payments", postmortem) == first  # a retried activity
            with lock:
                given[postmortem] = first

    threads = [threading.Thread(target=ask, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(given.values()) == list(range(200))
    assert record.turn("platform", "postmortem-manual-T0-0") == 0  # per team


def test_turns_kept_on_a_workers_disk_are_copied_in_once(record: Record, tmp_path):
    """Before the record, each worker kept turns in `rotation.sqlite3`: at start they are
    copied in (none lost on upgrade), and copying again adds nothing."""
    old = tmp_path / "rotation.sqlite3"
    with sqlite3.connect(old) as db:
        db.execute("CREATE TABLE turns (team TEXT, postmortem TEXT, turn INTEGER)")
        db.executemany(
            "INSERT INTO turns VALUES (?, ?, ?)",
            [("payments", "postmortem-manual-A", 0), ("payments", "postmortem-manual-B", 1)],
        )
    assert record.import_turns(old) == 2
    assert record.import_turns(old) == 0
    assert record.turn("payments", "postmortem-manual-B") == 1  # kept
    assert record.turn("payments", "postmortem-manual-C") == 2  # the next one
    assert record.import_turns(tmp_path / "none.sqlite3") == 0


async def test_the_api_answers_503_while_the_record_is_down_then_serves_it(
    client, settings, postgres: PostgresServer
):
    """The record's database stops under a running API: every reader answers 503 (retry),
    naming no password; a webhook-free health check still answers; once the database is
    back, the same requests answer 200 with what the record holds."""
    from tests.test_dashboard import VIEWER, as_role
    from tests.test_webhooks import free_port

    url = postgres.database(password="s3cret-password")
    served = settings.model_copy(
        update={
            "api_port": free_port(),
            "viewer_tokens": SecretStr(VIEWER),
            "record_url": SecretStr(url),
            "overview_cache_seconds": 0,
        }
    )
    closed = PostmortemState.model_validate(document(4, done=5).model_dump())
    paths = [
        "/api/overview",
        "/api/postmortems",
        "/api/actions?overdue=false",
        f"/api/postmortems/{closed.workflow_id}",
        "/metrics",
        "/overdue.csv",
    ]
    async with (
        scenario.serving_api(served, client) as base,
        httpx.AsyncClient(base_url=base, timeout=30, headers=as_role(VIEWER)) as http,
    ):
        store = Record(url)
        store.project(closed, 1)
        store.dispose()
        postgres.stop()
        try:
            for path in paths:
                answer = await http.get(path)
                assert answer.status_code == 503, (path, answer.text)
                assert "s3cret" not in answer.text
            assert (await http.get("/healthz")).status_code == 200
        finally:
            postgres.start()
        for path in paths:

            def back(path: str = path) -> Any:
                return http.get(path)

            answer = await until(back, lambda a: a.status_code == 200)
            assert "s3cret" not in answer.text
        detail = (await http.get(f"/api/postmortems/{closed.workflow_id}")).json()
        assert detail["state"]["phase"] == "closed"


def test_turns_continue_after_a_gap_left_by_copied_turns(record: Record, tmp_path):
    """Copied turns may leave a gap (a post-mortem already had a turn here): the next turn is
    the one after the highest, never a turn taken (which would jam the team for ever)."""
    assert record.turn("payments", "postmortem-manual-Q") == 0
    assert record.turn("payments", "postmortem-manual-P") == 1
    old = tmp_path / "rotation.sqlite3"
    with sqlite3.connect(old) as db:
        db.execute("CREATE TABLE turns (team TEXT, postmortem TEXT, turn INTEGER)")
        db.executemany(
            "INSERT INTO turns VALUES ('payments', ?, ?)",
            [(f"postmortem-manual-{p}", n) for n, p in enumerate("ABCPD")],
        )
    assert record.import_turns(old) == 2  # C (2) and D (4); A, B and P are taken
    assert record.turn("payments", "postmortem-manual-NEW") == 5


def test_a_post_mortem_started_again_under_the_same_id_replaces_the_old_one(record: Record):
    """Temporal deleted a closed post-mortem; the incident came again and a new one started
    under the same id, its versions from 1 again: it replaces the old one in the record, and
    the old one's late writes never come back."""
    old = document(3, done=5)
    old.phase_history = [PhaseChange(phase=Phase.DRAFTING, at=NOW), *old.phase_history]
    assert record.project(old, 40)
    again = document(1)
    again.phase_history = [PhaseChange(phase=Phase.DRAFTING, at=NOW + timedelta(days=90))]
    assert record.project(again, 1)
    recorded = record.get(again.workflow_id)
    assert recorded is not None and recorded.state.document() == again
    assert not record.project(old, 41)  # a late write of the old one
    assert not record.project(again, 1)  # a retry
    assert record.project(again, 2)


def test_reading_a_record_whose_tables_are_not_made_is_unavailable(record_url: str):
    """The API up before any worker made the tables (or without the privilege to read
    them): a 503 to retry, on SQLite and on PostgreSQL, never a 500."""
    store = Record(record_url)
    with pytest.raises(RecordUnavailable):
        reads.postmortem_list(store, reads.PostmortemFilter(), 10)
    with pytest.raises(RecordUnavailable):
        reads.overview(store, NOW, ["payments"])
    store.dispose()
