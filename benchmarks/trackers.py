"""Filing throughput through the real jira and PyGithub clients, against the emulators.

    .venv/bin/python benchmarks/trackers.py [--count 1000] [--threads 16] [--every 10]

For each tracker, two runs of N actions filed from a pool of threads (as the worker's activity
executor does): one clean, one where one create in k answers 429 with Retry-After. Each
failed attempt is retried the way Temporal retries the activity (honouring Retry-After), and
creation always looks the idempotency label up first. The faulty run also loses the answer
to some creates after the ticket was made: the case that yields duplicates elsewhere.
Prints actions/s, retries, and duplicates (tickets sharing a label), which must be 0.
Contract checks are off here: they measure the emulators, not the engine.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from integrations.errors import TrackerUnavailable
from integrations.github import GitHubTarget, GitHubTracker
from integrations.jira import JiraTarget, JiraTracker
from integrations.tracker import TicketRequest, Tracker
from tests.fakes.github import GitHubEmulator
from tests.fakes.jira import JiraEmulator
from tests.fakes.server import EmulatorServer, Fault


def file_all(tracker: Tracker, count: int, threads: int, run: str) -> tuple[float, int]:
    retries = 0
    lock = threading.Lock()

    def one(i: int) -> None:
        nonlocal retries
        request = TicketRequest(
            idempotency_key=f"bench-{run}/a{i}",
            team="bench",
            title=f"Action {i}",
            body="Benchmark action",
            labels=["postmortem"],
        )
        while True:
            try:
                tracker.create_ticket(request)
                return
            except TrackerUnavailable as exc:
                with lock:
                    retries += 1
                time.sleep(min(exc.retry_after or 0.05, 1.0))  # Temporal's next_retry_delay

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(count)))
    return time.perf_counter() - started, retries


def duplicates(labels: list[list[str]]) -> int:
    counts = Counter(label for issue in labels for label in issue if label.startswith("pm-"))
    return sum(n - 1 for n in counts.values() if n > 1)


def bench(
    name: str,
    make: Callable[[], tuple[EmulatorServer, Tracker, Callable[[], list[list[str]]], str]],
    args: argparse.Namespace,
) -> None:
    for faults in (False, True):
        emulator, tracker, labels_of, create_path = make()
        emulator.contract = None
        if faults:
            # Every k-th create is answered 429 (Retry-After: 0, so the run stays short).
            emulator.inject(
                Fault(
                    method="POST",
                    path=create_path,
                    status=429,
                    retry_after=0,
                    times=args.count // args.every,
                )
            )
            # ... and some are created but their answer is lost: the retry must find them.
            emulator.inject(
                Fault(
                    method="POST", path=create_path, lost=True, times=args.count // (2 * args.every)
                )
            )
        try:
            seconds, retries = file_all(tracker, args.count, args.threads, f"{name}-{faults}")
            labels = labels_of()
        finally:
            emulator.stop()
        label = "429s+lost" if faults else "clean    "
        print(
            f"{name:6} {label}: {args.count / seconds:7.1f} actions/s ({seconds:.1f} s), "
            f"retries {retries}, tickets {len(labels)}, duplicates {duplicates(labels)}"
        )


def jira_setup() -> tuple[EmulatorServer, Tracker, Callable[[], list[list[str]]], str]:
    jira = JiraEmulator().start()
    tracker = JiraTracker(
        JiraTarget(
            team="bench", url=jira.base_url, project="PAY", email=jira.email, token=jira.token
        )
    )
    return (
        jira,
        tracker,
        lambda: [i["fields"]["labels"] for i in jira.state.issues.values()],
        r".*/issue",
    )


def github_setup() -> tuple[EmulatorServer, Tracker, Callable[[], list[list[str]]], str]:
    github = GitHubEmulator().start()
    tracker = GitHubTracker(
        GitHubTarget(
            team="bench", repo=github.repo_name, api_url=github.base_url, token=github.token
        )
    )

    def labels() -> list[list[str]]:
        return [[label["name"] for label in i["labels"]] for i in github.state.issues.values()]

    return github, tracker, labels, r".*/issues"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--every", type=int, default=10, help="one create in k answers 429")
    args = parser.parse_args()
    print(
        f"{args.count} actions per run, {args.threads} threads; idempotency label looked up first"
    )
    bench("jira", jira_setup, args)
    bench("github", github_setup, args)


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    os._exit(0)
