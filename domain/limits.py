"""Every bound on a post-mortem's state, in one place (the README's "Limits" table).

Each text and list a person or a tool gives has a limit of its own, and the whole record
has one more: a post-mortem's state travels whole through Temporal (the `status` query,
continue-as-new), whose payloads stop at 2 MiB. `RECORD_BYTES` is what people's input may
fill; the engine's own additions (tickets, reminders, problems, phase changes, blameless
findings) have room reserved beside it, so the largest state allowed still fits (a test
builds it and reads it through `status`). The accounting still has gaps, listed in the
README under "Not yet".
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pydantic_core

if TYPE_CHECKING:
    from domain.messages import PostmortemInput
    from domain.models import Findings, PostmortemState, TimelineEntry

NAME = 200  # a title, an owner, a team, a responder
TEXT = 20_000  # a timeline entry, a cause, a contributing factor, a summary
NOTE = 4_000  # what was known at an entry, an action's description, one list item
REASON = 2_000  # the reason given with a change (drop, move, cancel, acknowledge)
SOURCE = 64  # where a timeline entry came from
URL = 2_000  # an incident's link (a longer one is left out)

TIMELINE_ENTRIES = 2_000  # on one post-mortem
IMPORTED_ENTRIES = 1_000  # taken from an incident tool's log; the rest is noted, not lost
RESPONDERS = 200
FACTORS = 100  # contributing factors
LIST_ITEMS = 100  # each of went well, went badly, got lucky
CORRECTIONS = 500  # timeline corrections in one review
ACTIONS = 2_500  # corrective actions on one post-mortem, all reviews and additions together

# What people's input may fill of the state (its JSON); each action counts with the room
# its ticket and follow-up take later (action_reserve()).
RECORD_BYTES = 1_800_000
# Of it, what the timeline may fill: findings and actions always have the rest.
TIMELINE_BYTES = 600_000
# What Temporal accepts for one payload; the largest state must stay under it.
PAYLOAD_BYTES = 2 * 1024 * 1024

# The engine's own additions, each bounded.
PROBLEMS = 50  # the newest are kept
PROBLEM_TEXT = 500
PHASE_CHANGES = 50  # the first and the newest are kept
PHASE_NOTE = 500
BLAMELESS_NOTES = 50  # findings of the blameless check kept at once
ACK_NOTE = 500  # why a finding's wording stays
SENTENCE = 300  # a flagged sentence, as quoted
NOTE_TEXT = 500  # a finding's reason and suggestion (from the team's word list)
# A ticket as the reserve counts it (not enforced: a longer GitHub key is filed all the same).
TICKET_TRACKER = 32
TICKET_KEY = 64
TICKET_URL = 200
LOCATIONS = 10  # where a document was published
LOCATION = 500

# Concurrency of one post-mortem's filing: tickets and follow-ups started per batch, well
# under Temporal's 2,000 pending activities or children per workflow.
FILING_BATCH = 100


def clip(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, saying so with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


@functools.cache
def action_reserve() -> int:
    """Bytes an action's JSON may grow after it is accepted: its ticket, its reminders and
    escalations, its closing. Measured on the model, so a new field is counted."""
    from domain.models import ActionState, ActionType, CorrectiveAction, TicketRef

    moment = datetime(2000, 1, 1, tzinfo=UTC)
    bare = CorrectiveAction(
        id="a", title="t", type=ActionType.REPAIR, owner="o", team="t", due=moment
    )
    grown = bare.model_copy(
        update={
            "state": ActionState.DROPPED,
            "ticket": TicketRef(
                tracker="t" * TICKET_TRACKER, key="k" * TICKET_KEY, url="u" * TICKET_URL
            ),
            "reminders_sent": 999,
            "last_reminder_at": moment,
            "escalation_level": 999,
            "last_escalation_at": moment,
            "completed_at": moment,
            "overdue": False,
        }
    )
    return len(grown.model_dump_json()) - len(bare.model_dump_json())


def record_problem(current_bytes: int, added_bytes: int, new_actions: int = 0) -> str | None:
    """Why an input would take the record past RECORD_BYTES, or None when it fits."""
    projected = current_bytes + added_bytes + new_actions * action_reserve()
    if projected <= RECORD_BYTES:
        return None
    return (
        f"this post-mortem's record would be {projected / 1e6:.2f} MB, over its limit of "
        f"{RECORD_BYTES / 1e6:.2f} MB: shorten the text, or link long material (logs, "
        "graphs) instead of pasting it"
    )


@functools.cache
def engine_extras() -> int:
    """The most bytes the engine's own additions beside the record take: problems, phase
    changes, blameless findings (with acknowledgements), publication notes, the tracking
    ticket. With RECORD_BYTES, the largest state; measured on the models."""
    from domain.models import BlamelessNote, Phase, PhaseChange, Problem, ProblemKind, TicketRef

    moment = datetime(2000, 1, 1, tzinfo=UTC)
    problem = Problem(
        kind=ProblemKind.TIMELINE_IMPORT,
        message="m" * PROBLEM_TEXT,
        action_id="a" * 40,
        since=moment,
    )
    change = PhaseChange(phase=Phase.REVIEW_SCHEDULED, at=moment, note="n" * PHASE_NOTE)
    note = BlamelessNote(
        id="i" * 40,
        rule="r" * 40,
        kind="k" * 40,
        field="f" * 60,
        sentence="s" * SENTENCE,
        reason="r" * NOTE_TEXT,
        suggestion="s" * NOTE_TEXT,
        acknowledged=True,
        note="n" * ACK_NOTE,
    )
    ticket = TicketRef(tracker="t" * TICKET_TRACKER, key="k" * TICKET_KEY, url="u" * TICKET_URL)
    return (
        PROBLEMS * (json_bytes(problem) + 1)
        + PHASE_CHANGES * (json_bytes(change) + 1)
        + BLAMELESS_NOTES * (json_bytes(note) + 1)
        + LOCATIONS * (LOCATION + 3)
        + PROBLEM_TEXT  # the publication note
        + json_bytes(ticket)
        + 1_000  # the fields' own keys, commas and brackets
    )


def json_bytes(value: object) -> int:
    """The size of `value` as Temporal's converter writes it (UTF-8 JSON)."""
    return len(pydantic_core.to_json(value))


def timeline_problem(
    timeline: Sequence[TimelineEntry], added: Sequence[TimelineEntry]
) -> str | None:
    """Why entries cannot be added to the timeline, or None when they fit."""
    if len(timeline) + len(added) > TIMELINE_ENTRIES:
        return f"the timeline holds at most {TIMELINE_ENTRIES} entries; it has {len(timeline)}"
    projected = json_bytes(list(timeline)) + json_bytes(list(added))
    if projected > TIMELINE_BYTES:
        return (
            f"the timeline would be {projected / 1e3:.0f} kB, over its limit of "
            f"{TIMELINE_BYTES / 1e3:.0f} kB: link long material (logs, graphs) instead of "
            "pasting it"
        )
    return None


def fitting_entries(
    state: PostmortemState, entries: Sequence[TimelineEntry]
) -> tuple[list[TimelineEntry], int]:
    """The imported entries the timeline has room for (oldest first), and how many not."""
    room = min(IMPORTED_ENTRIES, TIMELINE_ENTRIES - len(state.timeline))
    room_bytes = min(RECORD_BYTES - json_bytes(state), TIMELINE_BYTES - json_bytes(state.timeline))
    kept: list[TimelineEntry] = []
    for entry in sorted(entries, key=lambda e: e.at)[: max(room, 0)]:
        size = json_bytes(entry) + 1
        if size > room_bytes:
            break
        room_bytes -= size
        kept.append(entry)
    return kept, len(entries) - len(kept)


# -- the checks where input comes in (the models keep the limits they were released with,
# so that recorded histories always decode) ---------------------------------------------


def too_long(where: str, text: str | None, limit: int) -> list[str]:
    if text is not None and len(text) > limit:
        return [f"{where}: at most {limit:,} characters (this has {len(text):,})"]
    return []


def too_many(where: str, items: Sequence[object], limit: int) -> list[str]:
    if len(items) > limit:
        return [f"{where}: at most {limit:,} items (this has {len(items):,})"]
    return []


def entry_problems(entry: TimelineEntry, where: str = "entry") -> list[str]:
    return [
        *too_long(f"{where}.text", entry.text, TEXT),
        *too_long(f"{where}.known", entry.known, NOTE),
        *too_long(f"{where}.source", entry.source, SOURCE),
    ]


def findings_problems(findings: Findings) -> list[str]:
    """Each list and text of a review's findings within its limit, every problem named."""
    problems = [
        *too_long("summary", findings.summary, TEXT),
        *too_long("impact", findings.impact, TEXT),
        *too_many("contributing_factors", findings.contributing_factors, FACTORS),
        *too_many("timeline_corrections", findings.timeline_corrections, CORRECTIONS),
        *too_many("actions", findings.actions, ACTIONS),
    ]
    for name in ("went_well", "went_badly", "got_lucky"):
        items: list[str] = getattr(findings, name)
        problems += too_many(name, items, LIST_ITEMS)
        for index, item in enumerate(items[:LIST_ITEMS]):
            problems += too_long(f"{name}[{index}]", item, NOTE)
    for index, entry in enumerate(findings.timeline_corrections[:CORRECTIONS]):
        problems += entry_problems(entry, f"timeline_corrections[{index}]")
    return problems  # actions' descriptions: domain.findings.check_actions


def start_problems(inp: PostmortemInput) -> list[str]:
    """What an incident and its first timeline may hold when a post-mortem starts."""
    incident = inp.incident
    problems = [
        *too_long("summary", incident.summary, TEXT),
        *too_long("url", incident.url, URL),
        *too_long("external_id", incident.external_id, 200),
        *too_long("owner", inp.owner, NAME),
        *too_many("responders", incident.responders, RESPONDERS),
    ]
    for index, who in enumerate(incident.responders[:RESPONDERS]):
        problems += too_long(f"responders[{index}]", who, NAME)
    for index, entry in enumerate(inp.timeline[:TIMELINE_ENTRIES]):
        problems += entry_problems(entry, f"timeline[{index}]")
    timeline = timeline_problem([], inp.timeline)
    return [*problems, *([f"timeline: {timeline}"] if timeline else [])]
