"""The dashboard's read model: the overdue list ranked by narrowing due-date ranges with
counts must equal a full listing sorted by hand (dev server, with the split threshold lowered
so that ranges really split), and the overview cache serves, refreshes and computes once."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pytest
from temporalio.service import RPCError

import engine
import readmodel
from config import load_routing
from tests.scenario import until
from workflows import search_attributes as sa

T = TypeVar("T")


async def seed_actions(client, team: str, count: int, overdue: int) -> None:
    """Follow-up workflows with their attributes on a queue no worker polls."""
    rng = random.Random(11)
    now = datetime.now(UTC)
    dues = [now - timedelta(days=rng.uniform(0.01, 400)) for _ in range(overdue)]
    dues += [now + timedelta(days=rng.uniform(0.01, 60)) for _ in range(count - overdue)]
    dues[1] = dues[0]  # two actions due at the same instant: ties are ordered by id

    async def start(i: int, due: datetime) -> None:
        pm = f"postmortem-rm-{team}-{i:04d}"
        await client.start_workflow(
            "ActionFollowUpWorkflow",
            {},
            id=f"{pm}/action-a",
            task_queue="idle-readmodel",
            memo={"postmortem_id": pm, "action_id": "a", "title": f"Action {i}"},
            search_attributes=sa.initial(
                {
                    sa.TEAM: team,
                    sa.SEVERITY: "SEV2" if i % 3 else "SEV1",
                    sa.OPEN_ACTIONS: 1,
                    sa.OVERDUE_ACTIONS: int(due < now),
                    sa.NEXT_ACTION_DUE: due,
                }
            ),
        )

    await asyncio.gather(*(start(i, due) for i, due in enumerate(dues)))


async def test_ranked_pages_equal_a_sorted_full_listing(dev_env, monkeypatch):
    client = dev_env.client
    team = f"rank-{uuid.uuid4().hex[:8]}"
    await seed_actions(client, team, count=160, overdue=120)
    query = readmodel.actions_query(overdue=True, team=team)
    await until(lambda: client.count_workflows(query), lambda c: c.count >= 120, 60)
    now = datetime.now(UTC)
    everything = [r async for r in engine.list_overdue_actions(client, query)]
    expected = [r.workflow_id for r in sorted(everything, key=lambda r: (r.due, r.workflow_id))]
    assert len(expected) == 120

    monkeypatch.setattr(readmodel, "LIST_AT_MOST", 7)  # force many splits
    pages = []
    for offset in range(0, 130, 25):
        total, rows = await readmodel.ranked_actions(
            client, now, team=team, offset=offset, limit=25
        )
        assert total == 120
        pages += [r.workflow_id for r in rows]
    assert pages == expected

    total, sev1 = await readmodel.ranked_actions(client, now, team=team, severity="SEV1", limit=500)
    assert [r.workflow_id for r in sev1] == [
        r.workflow_id
        for r in sorted(everything, key=lambda r: (r.due, r.workflow_id))
        if r.severity == "SEV1"
    ]
    assert total == len(sev1)
    assert (await readmodel.ranked_actions(client, now, team=team, offset=500))[1] == []


def overview_at(moment: datetime) -> readmodel.Overview:
    return readmodel.Overview(
        now=moment, phases={}, overdue_by_team={}, ageing={}, late_reviews=0, completion={}
    )


async def _async(value: T) -> T:
    return value


async def test_overview_cache_serves_fresh_then_stale_and_refreshes_once():
    calls: list[str | None] = []
    release = asyncio.Event()
    ages = iter([timedelta(0), timedelta(seconds=30), timedelta(0)])

    async def compute(team: str | None) -> readmodel.Overview:
        calls.append(team)
        if len(calls) == 2:
            await release.wait()
        return overview_at(datetime.now(UTC) - next(ages))

    cache = readmodel.OverviewCache(compute, fresh=timedelta(seconds=15))
    first = await cache.get(None)
    assert await cache.get(None) is first and calls == [None]  # fresh: from memory

    cache._known[None] = overview_at(datetime.now(UTC) - timedelta(seconds=20))  # now stale
    stale = cache._known[None]
    answers = await asyncio.gather(*(cache.get(None) for _ in range(5)))
    assert all(a is stale for a in answers)  # served at once while one refresh runs
    assert calls == [None, None]
    release.set()
    refreshed = await cache._running[None]  # the one background refresh, awaited to its end
    assert cache._known[None] is refreshed and refreshed is not stale

    await cache.get("payments")  # another team: computed for itself
    assert calls == [None, None, "payments"]


async def test_overview_cache_off_computes_every_time():
    calls = []

    async def compute(team):
        calls.append(team)
        return overview_at(datetime.now(UTC))

    cache = readmodel.OverviewCache(compute, fresh=timedelta(0))
    await cache.get(None)
    await cache.get(None)
    assert calls == [None, None]


async def test_the_overview_is_kept_warm_and_a_failure_does_not_stop_it(caplog):
    calls: list[str | None] = []

    async def compute(team):
        calls.append(team)
        if len(calls) == 2:
            raise RuntimeError("Temporal unreachable")
        return overview_at(datetime.now(UTC))

    cache = readmodel.OverviewCache(compute, fresh=timedelta(seconds=0.5))
    warming = asyncio.ensure_future(cache.keep_warm([None]))
    # The second turn fails, the third succeeds: the warmer went on after the failure.
    await until(lambda: _async(len(calls)), lambda n: n >= 3 and None in cache._known, 10)
    count = len(calls)
    served = await cache.get(None)  # fresh from the warmer: no computation of its own
    assert served is cache._known[None] and len(calls) == count
    assert "overview of every team not refreshed: Temporal unreachable" in caplog.text
    warming.cancel()
    await asyncio.gather(warming, return_exceptions=True)
    assert len(calls) == count


async def test_counts_failing_together_leave_no_error_unread():
    """Temporal down: every count of a page fails; the first error answers the page (a 503),
    and the others are read, not logged later as "Task exception was never retrieved"."""
    import gc

    from temporalio.client import Client
    from temporalio.contrib.pydantic import pydantic_data_converter

    client = await Client.connect(
        "127.0.0.1:9", lazy=True, data_converter=pydantic_data_converter
    )  # the discard port: nothing answers
    loop = asyncio.get_running_loop()
    gc.collect()  # other tests' garbage first: only this test's futures are looked at
    unread: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, context: unread.append(context))
    try:
        counter = readmodel.Counter(client)
        # As a page does: every count started at once, each awaited when its answer is needed.
        counts = [counter(f"WorkflowId = 'w{n}'") for n in range(4)]
        ours = {id(c) for c in counts}
        with pytest.raises((RPCError, RuntimeError)):  # down after, or since, connecting
            await counts[0]
        # The page answered 503 from the first; the others ended too, never awaited.
        await asyncio.wait([asyncio.ensure_future(c) for c in counts])
        del counts, counter
        gc.collect()
        await asyncio.sleep(0)
        assert [c for c in unread if id(c.get("future")) in ours] == []
    finally:
        loop.set_exception_handler(None)


async def test_the_overview_cache_keeps_only_configured_teams(settings, tmp_path):
    """A viewer may name any team: an unknown one is answered (computed for the request) and
    not kept, so naming thousands of teams grows neither the memory nor the warmer's rounds.
    Through the app's own cache, on a real (empty) record, with the routing file's teams."""
    from api.app import create_app
    from record.store import Record

    record = Record(f"sqlite:///{tmp_path / 'record.sqlite3'}")
    record.upgrade()
    try:
        configured = sorted(load_routing(settings.teams_file).teams)[0]
        app = create_app(
            settings.model_copy(update={"overview_cache_seconds": 60}), client=None, record=record
        )
        cache: readmodel.OverviewCache = app.state.overviews
        await cache.get(None)
        kept = await cache.get(configured)
        assert await cache.get(configured) is kept  # a configured team: held
        for n in range(50):
            unknown = await cache.get(f"no-such-team-{n}")
            assert sum(unknown.phases.values()) == 0 and unknown.overdue_by_team == {
                f"no-such-team-{n}": 0
            }
        assert set(cache._known) == {None, configured}
        assert not set(cache._running) - {None, configured}
    finally:
        record.dispose()
