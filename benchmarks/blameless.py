"""The blameless check, measured: precision and recall on the held-out corpus, and its speed.

    .venv/bin/python benchmarks/blameless.py [--set heldout|dev|both] [--misses]

The corpus (tests/blameless/dev*.jsonl, tests/blameless/heldout.jsonl): sentences written in
the styles of public post-mortems, each labelled blameful or blameless with its kind, each
set by its own author who never saw the checker's code or word list. The development sets
are what the word list was tuned on; the held-out set is never tuned on (its misses are
printed only with --misses, for a reviewer, not to tune against).

Prints, per set: recall (blameful sentences flagged), the false-alarm rate (blameless ones
flagged), precision, and recall by kind. Then the speed: milliseconds per 1,000 sentences,
and for a whole post-mortem document (a typical one: 80 timeline entries with what was known,
12 contributing factors, causes, 10 actions; and the largest the limits allow), each against
a baseline in the same run: splitting the same text into sentences and tokens alone.
Goals (issue 15): recall >= 0.9 and false alarms <= 5 % on the held-out set; a whole
document under 50 ms. Not a test: machines are noisy.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from domain import limits
from domain.blameless import _tokens, check_postmortem, check_text, sentences
from domain.models import (
    ActionType,
    ContributingFactor,
    CorrectiveAction,
    FactorCategory,
    Incident,
    PostmortemState,
    ReviewOutcome,
    Severity,
    TimelineEntry,
)
from integrations.lexicon import load_lexicon

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "blameless"


def corpus(name: str) -> list[dict[str, Any]]:
    path = CORPUS / f"{name}.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def score(rows: list[dict[str, Any]], names: set[str]) -> dict[str, Any]:
    lexicon = load_lexicon("en")
    flagged = [bool(check_text(r["text"], "text", lexicon, names)) for r in rows]
    blame = [r["blame"] for r in rows]
    tp = sum(f and b for f, b in zip(flagged, blame, strict=True))
    fp = sum(f and not b for f, b in zip(flagged, blame, strict=True))
    fn = sum(b and not f for f, b in zip(flagged, blame, strict=True))
    tn = sum(not b and not f for f, b in zip(flagged, blame, strict=True))
    by_kind: dict[str, list[int]] = {}
    for row, hit in zip(rows, flagged, strict=True):
        tally = by_kind.setdefault(f"{'blame' if row['blame'] else 'clean'}:{row['kind']}", [0, 0])
        tally[0] += hit
        tally[1] += 1
    misses = [r for r, f in zip(rows, flagged, strict=True) if f != r["blame"]]
    return {
        "recall": tp / (tp + fn),
        "false_alarms": fp / (fp + tn),
        "precision": tp / (tp + fp) if tp + fp else 1.0,
        "counts": (tp, fn, fp, tn),
        "by_kind": by_kind,
        "misses": misses,
    }


def document(entries: int, factors: int, actions: int, words: int) -> PostmortemState:
    """A post-mortem written like the corpus: its sentences, in every field."""
    rows = corpus("dev") + corpus("dev2")
    texts = [r["text"] for r in rows]
    pick = lambda i: " ".join(texts[(i + k) % len(texts)] for k in range(words))  # noqa: E731
    now = datetime(2026, 11, 26, tzinfo=UTC)
    incident = Incident(
        id="BENCH-1",
        title="Checkout errors",
        severity=Severity.SEV2,
        team="payments",
        resolved_at=now,
        summary=pick(0),
        responders=[f"person{i}@example.com" for i in range(10)],
    )
    return PostmortemState(
        workflow_id="postmortem-bench",
        incident=incident,
        timeline=[
            TimelineEntry(at=now - timedelta(minutes=entries - i), text=pick(i), known=pick(i + 7))
            for i in range(entries)
        ],
        findings=ReviewOutcome(
            summary=pick(1),
            impact=pick(2),
            proximate_cause=pick(3),
            root_cause=pick(4),
            contributing_factors=[
                ContributingFactor(category=FactorCategory.PROCESS_GAP, description=pick(i))
                for i in range(factors)
            ],
            went_well=[pick(i) for i in range(5)],
            went_badly=[pick(i + 5) for i in range(5)],
            got_lucky=[pick(i + 9) for i in range(3)],
            accepted_at=now,
        ),
        actions=[
            CorrectiveAction(
                id=f"a{i}",
                title="Add a confirmation step to the cleanup script",
                type=list(ActionType)[i % len(ActionType)],
                owner="owner@example.com",
                team="payments",
                due=now + timedelta(days=30),
                description=pick(i + 3),
            )
            for i in range(actions)
        ],
    )


def timed(run: Any, repeat: int) -> float:
    """Median milliseconds of `repeat` runs."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def texts_of(state: PostmortemState) -> list[str]:
    found = [state.incident.summary]
    for entry in state.timeline:
        found += [entry.text, entry.known]
    assert state.findings is not None
    f = state.findings
    found += [f.summary, f.impact, f.proximate_cause, f.root_cause]
    found += [c.description for c in f.contributing_factors]
    found += [*f.went_well, *f.went_badly, *f.got_lucky]
    found += [a.description for a in state.actions]
    return found


def split_only(state: PostmortemState) -> None:
    for text in texts_of(state):
        for sentence in sentences(text):
            _tokens(sentence)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--set", choices=["heldout", "dev", "both"], default="both")
    parser.add_argument("--misses", action="store_true", help="print what each set got wrong")
    args = parser.parse_args()
    lexicon = load_lexicon("en")
    development = sorted(p.stem for p in CORPUS.glob("dev*.jsonl"))
    sets = {"both": [*development, "heldout"], "dev": development}.get(args.set, [args.set])
    names = {"sre-triage"}  # the example routing file's team with a name of its own
    for name in sets:
        rows = corpus(name)
        result = score(rows, names)
        tp, fn, fp, tn = result["counts"]
        print(
            f"{name}: {tp + fn} blameful, {fp + tn} blameless; recall {result['recall']:.3f}, "
            f"false alarms {result['false_alarms']:.3f}, precision {result['precision']:.3f}"
        )
        for kind, (hit, total) in sorted(result["by_kind"].items()):
            print(f"    {kind:32} flagged {hit:3} of {total:3}")
        if args.misses:
            for row in result["misses"]:
                print(f"    {'MISSED' if row['blame'] else 'FALSE ALARM'}: {row['text']}")

    every = [r["text"] for n in [*development, "heldout"] for r in corpus(n)]
    count = len(every)
    per_sentence = timed(lambda: [check_text(t, "t", lexicon, names) for t in every], 7)
    baseline = timed(lambda: [_tokens(s) for t in every for s in sentences(t)], 7)
    print(
        f"\nspeed: {per_sentence * 1000 / count:.1f} ms per 1,000 sentences "
        f"(tokenizing alone: {baseline * 1000 / count:.1f} ms; "
        f"ratio {per_sentence / baseline:.1f}x)"
    )
    typical = document(entries=80, factors=12, actions=10, words=1)
    largest = document(
        entries=limits.TIMELINE_ENTRIES // 10, factors=limits.FACTORS, actions=100, words=3
    )
    for label, state in (("typical", typical), ("large", largest)):
        sentences_in = sum(len(sentences(t)) for t in texts_of(state))
        whole = timed(lambda s=state: check_postmortem(s, lexicon), 5)
        split = timed(lambda s=state: split_only(s), 5)
        chars = sum(len(t) for t in texts_of(state))
        print(
            f"a {label} document ({sentences_in} sentences, {chars / 1000:.0f} kB): "
            f"{whole:.1f} ms (splitting and tokenizing alone: {split:.1f} ms; "
            f"ratio {whole / split:.1f}x)"
        )
    # The worst a field can hold: one text of the largest allowed size (limits.TEXT) made of
    # words that start searches and never fire (found by an independent attack: each took
    # 7-37 s before fields were read in windows).
    hostile_units = [
        "if Dana had the on-call engineer 's without checking because caused by never ",
        ", bad",
        "bad ",
        "the wrong ",
        ", causing",
        ") bad ",
        "\u0130 bad ",
        "Mr. ",
        "db-001 failed with bad gateway, ",
    ]
    worst_ms, worst_unit = 0.0, ""
    for unit in hostile_units:
        hostile = (unit * (limits.TEXT // len(unit) + 1))[: limits.TEXT]
        took = timed(lambda h=hostile: check_text(h, "t", lexicon, names), 3)
        if took > worst_ms:
            worst_ms, worst_unit = took, unit
    print(
        f"the worst of {len(hostile_units)} hostile {limits.TEXT // 1000} kB fields "
        f"({worst_unit.strip()!r} repeated): {worst_ms:.0f} ms"
    )
    kinds = Counter(r["kind"] for n in [*development, "heldout"] for r in corpus(n))
    print(f"\ncorpus: {count} sentences; kinds: {dict(sorted(kinds.items()))}")


if __name__ == "__main__":
    main()
