"""What the organisation learns, at size: 10,000 archived post-mortems in the record (two
years, 40 services, 20 teams, three contributing factors and three actions each).

    .venv/bin/python benchmarks/learning.py [--postmortems 10000] [--runs 30]
        [--record-url postgresql://...]   # default: a SQLite file, as `make run` has it

Measured in one run, on one record:
- the repeat lookup (`record.related.find`, what the worker's activity runs when a
  post-mortem starts and when its findings are recorded): a new post-mortem with a service
  and three factors, against the 90-day look-back; median and p95 over --runs lookups;
- baseline: the same answer without the stored terms: every post-mortem of the window read
  whole from the record and its findings stemmed at lookup time (what the lookup would cost
  had the record kept only the documents);
- `/learning` and `/api/learning` (a year, every team; and one service), through the API over
  HTTP: median and p95 over --runs;
- baseline: the same figures computed from every post-mortem's document read whole (no
  columns, no SQL), in process.
Goals (issue 16): the repeat lookup's p95 under 100 ms, `/learning` under 300 ms. Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from pydantic import SecretStr
from sqlalchemy import select

from benchmarks.dashboard import TEAMS, routing
from benchmarks.devserver import start_dev_server
from config import Settings
from domain import related, similarity
from domain.models import (
    ActionState,
    ActionType,
    ContributingFactor,
    CorrectiveAction,
    FactorCategory,
    Incident,
    Phase,
    PhaseChange,
    PostmortemDocument,
    PostmortemState,
    Priority,
    ReviewOutcome,
    Severity,
)
from record import related as related_reads
from record.schema import postmortems
from record.store import Record
from worker import api_server

SERVICES = [f"service-{n:02d}" for n in range(40)]
SUBJECTS = ["config pushes", "schema migrations", "certificate renewals", "cache invalidation",
            "failover drills", "queue consumers", "feature flags", "DNS records", "log retention",
            "rate limits", "disk alerts", "backup restores", "deploy pipelines", "on-call handoffs",
            "dependency upgrades", "load balancer health checks"]  # fmt: skip
GAPS = ["skip the canary stage", "have no owner after the reorganisation",
        "are not covered by an alert", "run without a dry run", "depend on a manual step",
        "are documented only in a chat thread", "have no rollback plan",
        "are not load tested before release"]  # fmt: skip
DAYS = 730


def archived(i: int, rng: random.Random, now: datetime) -> PostmortemState:
    resolved = now - timedelta(days=rng.uniform(1, DAYS))
    team = rng.choice(TEAMS)
    incident = Incident(
        id=f"INC-{i:06d}",
        source="bench",
        title=f"Incident {i}",
        severity=Severity.SEV2,
        team=team,
        resolved_at=resolved,
        service=rng.choice(SERVICES),
    )
    accepted = resolved + timedelta(days=rng.uniform(1, 10))
    closed = rng.random() < 0.6
    states = [ActionState.DONE, ActionState.DONE, ActionState.OPEN, ActionState.DROPPED]
    actions = [
        CorrectiveAction(
            id=f"a{k}",
            title=f"Fix {k} of {i}",
            type=rng.choice(list(ActionType)),
            priority=rng.choice(list(Priority)),
            owner="owner@example.com",
            team=team,
            due=accepted + timedelta(days=30),
            state=ActionState.DONE if closed else (state := rng.choice(states)),
            state_reason="superseded" if not closed and state is ActionState.DROPPED else "",
            completed_at=accepted + timedelta(days=rng.uniform(5, 45)) if closed else None,
        )
        for k in range(3)
    ]
    history = [PhaseChange(phase=Phase.DRAFTING, at=resolved)]
    if closed:
        history.append(PhaseChange(phase=Phase.CLOSED, at=accepted + timedelta(days=50)))
    return PostmortemState(
        workflow_id=f"postmortem-bench-INC-{i:06d}",
        incident=incident,
        phase=Phase.CLOSED if closed else Phase.FOLLOWING_UP,
        findings=ReviewOutcome(
            contributing_factors=[
                ContributingFactor(
                    category=rng.choice(list(FactorCategory)),
                    description=f"{rng.choice(SUBJECTS).capitalize()} {rng.choice(GAPS)}.",
                )
                for _ in range(3)
            ],
            proximate_cause=f"{rng.choice(SUBJECTS).capitalize()} failed on {incident.service}.",
            root_cause=f"{rng.choice(SUBJECTS).capitalize()} {rng.choice(GAPS)}.",
            accepted_at=accepted,
        ),
        actions=actions,
        phase_history=history,
    )


def new_postmortem(rng: random.Random, now: datetime) -> PostmortemDocument:
    state = archived(rng.randrange(10**6, 2 * 10**6), rng, now)
    state.incident.resolved_at = now
    return state.document()


def naive_related(record: Record, document: PostmortemDocument, days: int) -> int:
    """Baseline: every document of the window read whole, its findings stemmed now."""
    since = document.incident.resolved_at - timedelta(days=days)
    mine = related.Mine(
        service=document.incident.service,
        findings=related.findings_of(
            [(f.category.value, f.description) for f in document.findings.contributing_factors],
            document.findings.proximate_cause,
            document.findings.root_cause,
        )
        if document.findings
        else [],
    )
    candidates = []
    with record.reading() as connection:
        rows = connection.execute(
            select(postmortems.c.document).where(postmortems.c.resolved_at >= since)
        )
        for (raw,) in rows:
            other = PostmortemState.model_validate(raw)
            found = other.findings
            candidate = related.Candidate(
                workflow_id=other.workflow_id,
                incident_id=other.incident.id,
                title=other.incident.title,
                service=other.incident.service,
                team=other.incident.team,
                resolved_at=other.incident.resolved_at,
                findings=related.findings_of(
                    [(f.category.value, f.description) for f in found.contributing_factors],
                    found.proximate_cause,
                    found.root_cause,
                )
                if found
                else [],
            )
            candidates.append(candidate)
    return len(related.decide(mine, candidates, days))


def naive_learning(record: Record) -> int:
    """Baseline: every document read whole, the categories and outcomes counted here."""
    counted = 0
    with record.reading() as connection:
        for (raw,) in connection.execute(select(postmortems.c.document)):
            state = PostmortemState.model_validate(raw)
            counted += len(state.actions) + (
                len(state.findings.contributing_factors) if state.findings else 0
            )
    return counted


def timed(call: Callable[[], Any], runs: int) -> tuple[float, float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    times.sort()
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    return statistics.median(times) * 1000, p95 * 1000


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--postmortems", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--record-url", default=None, help="default: a SQLite file")
    args = parser.parse_args()
    rng = random.Random(16)
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        url = args.record_url or f"sqlite:///{folder / 'record.sqlite3'}"
        record = Record(url)
        record.upgrade()
        started = time.perf_counter()
        for i in range(args.postmortems):
            record.project(archived(i, rng, now), 1)
        seeded = time.perf_counter() - started
        news = [new_postmortem(rng, now) for _ in range(args.runs)]
        sizes: list[int] = []
        related_reads.find(record, new_postmortem(rng, now), 90)  # warm, as the HTTP reads
        picks = iter(news * 2)

        def lookup() -> None:
            sizes.append(len(related_reads.find(record, next(picks), 90).related))

        found = timed(lookup, args.runs)
        naive_picks = iter(news)
        baseline_related = timed(
            lambda: naive_related(record, next(naive_picks), 90), min(args.runs, 5)
        )
        terms_per_lookup = statistics.mean(
            len(similarity.terms(f.description))
            for n in news
            for f in (n.findings.contributing_factors if n.findings else [])
        )
        (folder / "teams.toml").write_text(routing())
        env = await start_dev_server(folder / "temporal.sqlite3")  # the API connects at start
        settings = Settings(
            temporal_address=env.client.service_client.config.target_host,
            teams_file=folder / "teams.toml",
            data_dir=folder / "data",
            api_port=18081,
            record_url=SecretStr(url),
        )
        server = api_server(settings)
        threading.Thread(target=server.run, daemon=True).start()
        while not server.started:
            time.sleep(0.05)
        pages: dict[str, tuple[float, float]] = {}
        with httpx.Client(base_url=f"http://127.0.0.1:{settings.api_port}", timeout=120) as http:
            for label, path in [
                ("/learning (a year, every team)", "/learning"),
                ("/api/learning (a year, every team)", "/api/learning"),
                ("/learning?service=service-07", "/learning?service=service-07"),
                ("/learning?days=730&team=team-03", "/learning?days=730&team=team-03"),
                ("/api/learning.csv?table=categories", "/api/learning.csv?table=categories"),
            ]:
                assert http.get(path).status_code == 200, path  # warm

                def get(path: str = path) -> None:
                    answer = http.get(path)
                    assert answer.status_code == 200, (path, answer.text[:300])

                pages[label] = timed(get, args.runs)
        server.should_exit = True
        await env.shutdown()
        baseline_learning = timed(lambda: naive_learning(record), min(args.runs, 5))
        record.dispose()
    where = "PostgreSQL" if url.startswith("postgres") else "SQLite"
    print(
        f"\n{args.postmortems} archived post-mortems over {DAYS} days on {where} "
        f"(seeded in {seeded:.0f} s); {args.runs} runs"
    )
    print(f"{'':44} {'median ms':>10} {'p95 ms':>8}")
    print(f"{'repeat lookup (record.related.find)':44} {found[0]:10.1f} {found[1]:8.1f}")
    print(f"{'baseline: documents read and stemmed':44} {baseline_related[0]:10.1f} "
          f"{baseline_related[1]:8.1f}")  # fmt: skip
    print(
        f"  ratio baseline / lookup (p95): {baseline_related[1] / found[1]:.1f}x; "
        f"{statistics.mean(sizes):.1f} related found on average "
        f"({terms_per_lookup:.1f} terms per factor)"
    )
    for label, (median, p95) in pages.items():
        print(f"{label:44} {median:10.1f} {p95:8.1f}")
    print(f"{'baseline: every document read and counted':44} {baseline_learning[0]:10.1f} "
          f"{baseline_learning[1]:8.1f}")  # fmt: skip
    page_p95 = pages["/learning (a year, every team)"][1]
    print(f"  ratio baseline / /learning (p95): {baseline_learning[1] / page_p95:.1f}x")
    print(
        f"goals: lookup p95 {found[1]:.0f} ms (< 100: {'met' if found[1] < 100 else 'NOT met'}), "
        f"/learning p95 {page_p95:.0f} ms (< 300: {'met' if page_p95 < 300 else 'NOT met'})"
    )


if __name__ == "__main__":
    asyncio.run(main())
