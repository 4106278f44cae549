"""The public version of a post-mortem: a customer-facing summary (what happened, its impact,
how long it lasted, what changed), made from the record, without what must stay inside.

Left out: private timeline entries (and every entry of a private incident), what responders
knew at each point, contributing factors and causes as written for the team, owners, teams,
ticket links and the blameless check's notes. Scrubbed from what is kept: the engine's own
secrets and secret-looking strings (domain/document.redact), email addresses, @handles,
the post-mortem's people by name ("Alex", "alex.kim", "Alex Kim"), a first name followed by
a surname, and links whose host is not one the team made public (`public_hosts`). Then the
blameless check reads the result: publication waits until it has nothing to say.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlsplit

from domain import limits
from domain.blameless import Lexicon, check_text
from domain.document import environment, human_duration, redact
from domain.models import ActionState, ActionType, PostmortemDocument

PERSON = "an engineer"
LINK = "[internal link removed]"
EMAIL = "[address removed]"
HANDLE = "[name removed]"
TIMELINE_ENTRIES = 50  # the public timeline's first entries, in order
# What changed: the actions that change the system (an investigation is internal).
CHANGING = (ActionType.MITIGATE, ActionType.REPAIR, ActionType.DETECT, ActionType.PREVENT,
            ActionType.PROCESS)  # fmt: skip

# Bounded parts, anchored where a part cannot continue: linear on any text.
_EMAIL = re.compile(
    r"(?<![\w.+-])[\w.+-]{1,64}@(?:\[[^\]\s]{1,64}\]|[\w-]{1,63}(?:\.[\w-]{1,63}){1,8})"
)
_HANDLE = re.compile(r"(?<![\w@])@[A-Za-z0-9][A-Za-z0-9_.-]{0,38}")
_URL = re.compile(r"\b(?:https?|ftp)://[^\s<>\"')]+", re.IGNORECASE)
_CAPITALISED_PAIR = re.compile(r"\b([A-Z][a-z]{1,20})\s+([A-Z][a-z]{1,30})\b")


@dataclass
class PublicSummary:
    title: str
    service: str
    started_at: datetime | None
    resolved_at: datetime
    duration: str | None
    summary: str
    impact: str
    timeline: list[tuple[datetime, str]]
    changes: list[tuple[str, str]]  # (what, "done" | "planned")
    removed: int = 0  # names, addresses, links and secrets taken out
    notes: list[str] = field(default_factory=list)  # the blameless check's, if any


@dataclass(frozen=True)
class Scrubber:
    people: frozenset[str]  # lower-case names and name tokens of the post-mortem's people
    first_names: frozenset[str]
    public_hosts: frozenset[str]
    secrets: tuple[str, ...] = ()

    def __call__(self, text: str) -> tuple[str, int]:
        # Links first: a secret inside one (user:password@) must not leave its host behind.
        before = text.count(LINK)
        text = _URL.sub(self._link, text)
        count = text.count(LINK) - before
        text, n = redact(text, self.secrets)
        count += n
        text, n = _EMAIL.subn(EMAIL, text)
        count += n
        text, n = _HANDLE.subn(HANDLE, text)
        count += n
        text, n = self._names(text)
        return text, count + n

    def _link(self, match: re.Match[str]) -> str:
        try:
            host = (urlsplit(match.group(0)).hostname or "").lower()
        except ValueError:  # not a link a reader could follow (a broken IPv6 host): out
            return LINK
        public = any(host == h or host.endswith("." + h) for h in self.public_hosts)
        return match.group(0) if public else LINK

    def _names(self, text: str) -> tuple[str, int]:
        count = 0
        if self.people:
            # The longest first: "alex kim" before "alex".
            names = sorted(self.people, key=len, reverse=True)
            pattern = re.compile(
                r"\b(?:" + "|".join(re.escape(n).replace(r"\ ", r"\s+") for n in names) + r")\b"
                r"(?:'s)?",
                re.IGNORECASE,
            )
            text, count = pattern.subn(PERSON, text)

        def pair(match: re.Match[str]) -> str:
            nonlocal count
            if match.group(1).lower() in self.first_names:
                count += 1
                return PERSON
            return match.group(0)

        return _CAPITALISED_PAIR.sub(pair, text), count


def people_of(state: PostmortemDocument) -> frozenset[str]:
    """Every person the post-mortem names, as lower-case names to look for: each address's
    or name's first word (a given name), and the whole name."""
    found = [*state.incident.responders, *(a.owner for a in state.actions)]
    found += [state.owner or ""]
    if state.review:
        found += [state.review.facilitator or "", *state.review.participants]
    if state.team:
        found += [state.team.manager, state.team.postmortem_owner or ""]
    tokens: set[str] = set()
    for person in filter(None, found):
        local = person.split("@", 1)[0]
        words = [w for w in re.split(r"[\s._-]+", local.lower()) if len(w) > 2]
        if not words:
            continue
        tokens.add(words[0])
        tokens.add(local.lower())
        if len(words) > 1:
            tokens.add(" ".join(words))
    return frozenset(t for t in tokens if len(t) > 2)


def summarise(state: PostmortemDocument, scrub: Scrubber) -> PublicSummary:
    incident = state.incident
    removed = 0

    def clean(text: str, limit: int = limits.TEXT) -> str:
        nonlocal removed
        cleaned, n = scrub(text[:limit])
        removed += n
        return cleaned.strip()

    findings = state.findings
    duration = None
    if incident.started_at is not None:
        duration = human_duration((incident.resolved_at - incident.started_at).total_seconds())
    entries = [] if incident.private else [e for e in state.timeline if not e.private]
    entries.sort(key=lambda e: e.at)
    timeline = [(e.at, clean(e.text, limits.NOTE)) for e in entries[:TIMELINE_ENTRIES]]
    changes = [
        (clean(a.title, limits.NAME), "done" if a.state is ActionState.DONE else "planned")
        for a in sorted(state.actions, key=lambda a: (a.state is not ActionState.DONE, a.due))
        if a.type in CHANGING and a.state is not ActionState.DROPPED
    ]
    return PublicSummary(
        title=clean(incident.title, limits.NAME),
        service=clean(incident.service, limits.SERVICE),
        started_at=incident.started_at,
        resolved_at=incident.resolved_at,
        duration=duration,
        summary=clean((findings.summary if findings else "") or incident.summary),
        impact=clean(findings.impact if findings else ""),
        timeline=timeline,
        changes=changes,
        removed=removed,
    )


def as_text_fields(summary: PublicSummary) -> Iterable[tuple[str, str]]:
    """The summary's texts, for the blameless check."""
    yield "title", summary.title
    yield "service", summary.service
    yield "summary", summary.summary
    yield "impact", summary.impact
    for i, (_, text) in enumerate(summary.timeline):
        yield f"timeline[{i}]", text
    for i, (text, _) in enumerate(summary.changes):
        yield f"changes[{i}]", text


def render(summary: PublicSummary, html: bool = False) -> str:
    """Markdown, or HTML (escaped), from the documents' own templates folder."""
    name = "public.html.j2" if html else "public.md.j2"
    return environment(None, html).get_template(name).render(s=summary)


def document_name(state: PostmortemDocument) -> str:
    """The public file's name: the date and the incident's id, no title (names may hide
    in it). An id with other characters than letters, digits, `-` and `_` (a dot would be
    read as the file's extension) gets them replaced and a short digest of the whole id, so
    that two incidents never share a file."""
    incident = state.incident
    safe = _UNSAFE.sub("-", incident.id)[:80]
    if safe != incident.id:
        safe += "-" + hashlib.sha256(f"{incident.source}:{incident.id}".encode()).hexdigest()[:10]
    return f"{incident.resolved_at:%Y-%m-%d}-{incident.source}-{safe}"


_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def public_version(
    state: PostmortemDocument,
    lexicon: Lexicon,
    *,
    public_hosts: Iterable[str] = (),
    secrets: Iterable[str] = (),
) -> PublicSummary:
    """The summary, scrubbed, with what the blameless check still finds in it (`notes`:
    publication waits for none)."""
    people = people_of(state)
    scrub = Scrubber(
        people=people,
        first_names=lexicon.first_names,
        public_hosts=frozenset(h.lower().strip(".") for h in public_hosts if h.strip(".")),
        secrets=tuple(secrets),
    )
    summary = summarise(state, scrub)
    for where, text in as_text_fields(summary):
        for note in check_text(text, where, lexicon, set(people)):
            summary.notes.append(f"{where}: “{note.sentence}”: {note.reason}")
    return summary
