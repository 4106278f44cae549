"""Every bound on a post-mortem's state, in one place (the README's "Limits" table).

Each text and list a person or a tool gives has a limit of its own, and the whole record
has one more: a post-mortem's state travels whole through Temporal (the `status` query,
continue-as-new), whose payloads stop at 2 MiB. `RECORD_BYTES` is what people's input may
fill; the engine's own additions (tickets, reminders, problems, phase changes, blameless
findings) have room reserved beside it, so the largest state allowed still fits (a test
builds it and reads it through `status`).

Sizes are bytes of the state's JSON as Temporal's converter writes it (UTF-8; a control
character takes six bytes as an escape), never characters: a limit that counts characters
is checked where input comes in, and the record check counts what that input really takes.
The engine's own texts are clipped by bytes (`clip_bytes`), so their room is exact.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING

import pydantic_core

if TYPE_CHECKING:
    from domain.messages import PostmortemInput
    from domain.models import (
        CorrectiveAction,
        Findings,
        PostmortemState,
        RelatedPostmortem,
        TimelineEntry,
    )

NAME = 200  # a title, an owner, a team, a responder
TEXT = 20_000  # a timeline entry, a cause, a contributing factor, a summary
NOTE = 4_000  # what was known at an entry, an action's description, one list item
REASON = 2_000  # the reason given with a change (drop, move, cancel, acknowledge)
SOURCE = 64  # where a timeline entry came from
URL = 2_000  # an incident's link (a longer one is left out)
SERVICE = 100  # the service (component, system) an incident was on, as normalised

TIMELINE_ENTRIES = 2_000  # on one post-mortem
IMPORTED_ENTRIES = 1_000  # taken from an incident tool's log; the rest is noted, not lost
RESPONDERS = 200
FACTORS = 100  # contributing factors
LIST_ITEMS = 100  # each of went well, went badly, got lucky
CORRECTIONS = 500  # timeline corrections in one review
# Corrective actions on one post-mortem, all reviews and additions together. Each is counted
# at the most its tracked form can take (about 1.35 kB for a one-word title: action_bytes()),
# and the record must hold them beside a full timeline: 1,000 is what Temporal's 2 MiB
# payload holds honestly. (2,500 minimal actions would take 3.4 MB at their worst.)
ACTIONS = 1_000

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
# A ticket as the state keeps it. GitHub's longest key (owner 39 + "/" + repository 100 +
# "#" + number) fits; a longer key is a filing problem, a longer link is left out (the key
# finds the ticket). The tracker's name is the team's configuration word.
TICKET_TRACKER = 32
TICKET_KEY = 160
TICKET_URL = 300
FILING_ERROR = 300  # a refused ticket's error, as the action keeps it (its problem says more)
ENGINE_REASON = 60  # an action's state reason set by the engine ("closed in the tracker")
LOCATIONS = 10  # where a document was published
LOCATION = 500
# Earlier post-mortems found related (same service, similar findings): the closest kept,
# each with its reasons and its actions still open or dropped.
# Did the action work? (domain/verification.py)
VERIFY_DAYS = 365  # asked at most this long after an action is done
VERIFY_QUESTION = 500  # bytes of the question asked (the type's default, or the findings')

RELATED = 10
RELATED_REASONS = 3
# The new post-mortem's terms a repeat lookup compares, in all: its causes first, then its
# factors in order, while they fit (a bound on the database's work: each term is a range of
# the record's index; ten findings of 64 terms, or a hundred of six).
LOOKUP_TERMS = 640
RELATED_REASON = 300
RELATED_ACTIONS = 5

# Concurrency of one post-mortem's filing: tickets and follow-ups started per batch, well
# under Temporal's 2,000 pending activities or children per workflow.
FILING_BATCH = 100


def clip(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, saying so with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def text_bytes(text: str) -> int:
    """What `text` takes inside the state's JSON, without its quotes."""
    return len(pydantic_core.to_json(text)) - 2


def clip_bytes(text: str, limit: int) -> str:
    """`text` cut so that it takes at most `limit` bytes inside the state's JSON (UTF-8,
    escapes counted), saying so with an ellipsis: the engine's own texts (problems, notes,
    quoted sentences) have room reserved by bytes, whatever characters they hold."""
    if text_bytes(text) <= limit:
        return text
    low, high = 0, min(len(text), limit)  # a character takes at least one byte
    while low < high:  # the longest prefix that fits beside the ellipsis (3 bytes)
        middle = (low + high + 1) // 2
        if text_bytes(text[:middle]) + 3 <= limit:
            low = middle
        else:
            high = middle - 1
    return text[:low] + "…"


@functools.cache
def action_reserve() -> int:
    """Bytes an action takes beyond the JSON of the ActionSpec a person wrote, once the
    engine tracks it: a generated id, its due instant, its ticket and a filing error (a
    follow-up that did not start keeps its error beside the ticket), the engine's state
    reason, its reminders, escalations and closing, its verification's state and dates (a
    question of its own and the answer's note are a person's input, counted by
    action_bytes). Measured on the models, so a new field is counted."""
    from domain.models import (
        ActionSpec,
        ActionState,
        ActionType,
        CorrectiveAction,
        TicketRef,
        Verification,
    )

    day = datetime(2000, 1, 1, tzinfo=UTC)
    moment = datetime(2000, 1, 1, 23, 59, 59, 999_999, tzinfo=timezone(timedelta(hours=-9)))
    written = ActionSpec(title="t", type=ActionType.REPAIR, owner="o", team="t", due=day.date())
    tracked = CorrectiveAction(
        id="a" * 40,
        title="t",
        type=ActionType.REPAIR,
        owner="o",
        team="t",
        due=moment,
        state=ActionState.DROPPED,
        state_reason="r" * ENGINE_REASON,
        reminders_sent=999_999,
        last_reminder_at=moment,
        escalation_level=999_999,
        last_escalation_at=moment,
        completed_at=moment,
        overdue=True,
        verify_after_days=VERIFY_DAYS,
        verification=Verification.INEFFECTIVE,
        verification_asked_at=moment,
        verified_at=moment,
    )
    grown = tracked.model_copy(
        update={
            "ticket": TicketRef(
                tracker="t" * TICKET_TRACKER, key="k" * TICKET_KEY, url="u" * TICKET_URL
            ),
            "filing_error": "e" * FILING_ERROR,
        }
    )
    return json_bytes(grown) - json_bytes(written)


def action_bytes(action: CorrectiveAction) -> int:
    """What an accepted action counts in the record: what a person wrote of it (as the
    ActionSpec it came from), its room to grow (action_reserve()), and a person's reason for
    its state beyond the engine's own."""
    written = {
        "title": action.title,
        "description": action.description,
        "type": action.type,
        "priority": action.priority,
        "owner": action.owner,
        "team": action.team,
    }
    reason = max(0, text_bytes(action.state_reason) - ENGINE_REASON)
    reason += text_bytes(action.verification_note)  # a person's answer: whether it worked
    reason += text_bytes(action.verify_question)  # a question of its own
    # The ActionSpec's keys and a bare date: the "id":null, "due":"…" and the verification's
    # nulls of the minimal spec.
    return json_bytes(written) + _SPEC_EXTRA + action_reserve() + reason


_SPEC_EXTRA = len(',"id":null,"due":"2000-01-01","verify_after_days":null,"verify_question":null')


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


# The short engine texts of a blameless finding, clipped by bytes where it is made.
NOTE_ID = 60  # its id, rule, kind and the field it was found in


@functools.cache
def engine_extras() -> int:
    """The most bytes the engine's own additions beside the record take: problems, phase
    changes, blameless findings, publication notes and locations, the tracking ticket, and
    the incident's title and ids carried beside the state at a continue-as-new. Each text is
    clipped by bytes where the engine writes it, so this is exact; with RECORD_BYTES, the
    largest state (a test builds it). Measured on the models."""
    from domain.models import (
        BlamelessNote,
        Phase,
        PhaseChange,
        Problem,
        ProblemKind,
        TicketRef,
    )

    moment = datetime(2000, 1, 1, 23, 59, 59, 999_999, tzinfo=timezone(timedelta(hours=-9)))
    problem = Problem(
        kind=ProblemKind.TIMELINE_IMPORT,
        message="m" * PROBLEM_TEXT,
        action_id="a" * 40,
        since=moment,
    )
    change = PhaseChange(phase=Phase.REVIEW_SCHEDULED, at=moment, note="n" * PHASE_NOTE)
    # An acknowledgement's note is a person's input: the record counts it.
    note = BlamelessNote(
        id="i" * NOTE_ID,
        rule="r" * NOTE_ID,
        kind="k" * NOTE_ID,
        field="f" * NOTE_ID,
        sentence="s" * SENTENCE,
        reason="r" * NOTE_TEXT,
        suggestion="s" * NOTE_TEXT,
        acknowledged=True,
    )
    ticket = TicketRef(tracker="t" * TICKET_TRACKER, key="k" * TICKET_KEY, url="u" * TICKET_URL)
    return (
        RELATED * (json_bytes(largest_related()) + 1)
        + PROBLEM_TEXT  # the related summary line
        + PROBLEMS * (json_bytes(problem) + 1)
        + PHASE_CHANGES * (json_bytes(change) + 1)
        + BLAMELESS_NOTES * (json_bytes(note) + 1)
        + (LOCATIONS + 1) * (LOCATION + 3)  # the locations, and the published link
        + PROBLEM_TEXT  # the publication note
        + 6 * REASON  # a cancellation's reason: a cancel is never refused for want of room
        + json_bytes(ticket)
        + continued_incident_bytes()
        + 1_000  # the fields' own keys, commas and brackets
    )


@functools.cache
def largest_related() -> RelatedPostmortem:
    """The largest related post-mortem the state keeps, made by the code that makes it
    (domain/related.py clips every text by bytes)."""
    from domain.models import ActionState, RelatedAction, TicketRef
    from domain.related import Candidate, entry

    moment = datetime(2000, 1, 1, 23, 59, 59, 999_999, tzinfo=timezone(timedelta(hours=-9)))
    worst = "\x01" * TEXT
    action = RelatedAction(
        id=worst,
        title=worst,
        state=ActionState.DROPPED,
        owner=worst,
        due=moment,
        state_reason=worst,
        ticket=TicketRef(tracker=worst, key=worst, url=worst),
    )
    candidate = Candidate(
        workflow_id=worst,
        incident_id=worst,
        title=worst,
        service=worst,
        team=worst,
        resolved_at=moment,
        actions=[action] * (RELATED_ACTIONS + 1),
    )
    return entry(candidate, [worst] * (RELATED_REASONS + 1), 1.0, later=True, verified_repeat=True)


def continued_incident_bytes() -> int:
    """The incident a continue-as-new carries beside the state (its title, team and ids; the
    rest is read from the state): the most it takes, a title and a team of six-byte
    escapes."""
    from domain.models import Incident, Severity

    moment = datetime(2000, 1, 1, 23, 59, 59, 999_999, tzinfo=timezone(timedelta(hours=-9)))
    incident = Incident(
        source="s" * 100,
        id="i" * 100,
        title="\x01" * NAME,
        severity=Severity.SEV1,
        team="\x01" * NAME,
        resolved_at=moment,
        started_at=moment,
    )
    return json_bytes(incident) + 200  # the input's own keys, and its policy fields


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
        *too_long("unrouted", incident.unrouted, PROBLEM_TEXT),
    ]
    for index, who in enumerate(incident.responders[:RESPONDERS]):
        problems += too_long(f"responders[{index}]", who, NAME)
    for index, entry in enumerate(inp.timeline[:TIMELINE_ENTRIES]):
        problems += entry_problems(entry, f"timeline[{index}]")
    timeline = timeline_problem([], inp.timeline)
    if timeline:
        problems.append(f"timeline: {timeline}")
    # The whole start within the record: the incident, its timeline, and the review's
    # participants (its responders, copied when the review is planned).
    record = record_problem(
        json_bytes(incident) + json_bytes(incident.responders), json_bytes(inp.timeline)
    )
    return [*problems, *([record] if record else [])]
