"""The blameless check: sentences that blame people, judge with hindsight, or ask for actions
that change nothing. Deterministic and pure; the word list is data (domain/lexicon/*.toml)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field

from domain import limits
from domain.models import BlamelessNote, PostmortemDocument


class People(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pronouns: list[str] = Field(default_factory=list)
    roles: list[str] = Field(default_factory=list)


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    kind: str
    pattern: str
    reason: str
    suggestion: str
    person_subject: bool = False


class ActionRules(BaseModel):
    model_config = ConfigDict(extra="forbid")
    vague: list[str]
    vague_reason: str
    vague_suggestion: str
    broad: list[str]
    broad_reason: str
    broad_suggestion: str
    question_verbs: list[str]
    question_reason: str
    question_suggestion: str


class Lexicon(BaseModel):
    model_config = ConfigDict(extra="forbid")
    people: People
    rules: list[Rule]
    actions: ActionRules


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_QUESTION_WORDS = re.compile(r"\b(why|whether|how|what|which|when|where|who)\b|\?", re.I)


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def _finding(
    rule: str, kind: str, field: str, sentence: str, reason: str, hint: str
) -> BlamelessNote:
    """A finding whose id is stable: the same sentence in the same field keeps it across runs,
    so an acknowledgement still applies after the text around it changes."""
    digest = hashlib.sha256(f"{rule}|{field}|{sentence}".encode()).hexdigest()[:8]
    # Clipped by bytes: the state keeps room for each finding by bytes, whatever the text's
    # characters (limits.engine_extras). The id keeps the whole sentence.
    return BlamelessNote(
        id=f"{limits.clip_bytes(rule, limits.NOTE_ID - 9)}-{digest}",
        rule=limits.clip_bytes(rule, limits.NOTE_ID),
        kind=limits.clip_bytes(kind, limits.NOTE_ID),
        field=limits.clip_bytes(field, limits.NOTE_ID),
        sentence=limits.clip_bytes(sentence, limits.SENTENCE),
        reason=limits.clip_bytes(reason, limits.NOTE_TEXT),
        suggestion=limits.clip_bytes(hint, limits.NOTE_TEXT),
    )


def name_tokens(people: Iterable[str]) -> set[str]:
    """'alex.kim@example.com' and 'Alex Kim' both give {'alex', 'kim', 'alex kim'}."""
    tokens: set[str] = set()
    for person in people:
        local = person.split("@", 1)[0]
        words = [w for w in re.split(r"[\s._-]+", local.lower()) if len(w) > 1]
        tokens.update(words)
        if len(words) > 1:
            tokens.add(" ".join(words))
    return tokens


def _person_subject(before: str, names: set[str], lexicon: Lexicon) -> bool:
    """Is a person the subject of the verb? Looks at the few words before it only."""
    words = re.findall(r"[a-z'\u2019-]+", before.lower())[-6:]  # ' and the typographic one
    tail = " ".join(words)
    people = set(lexicon.people.pronouns) | names
    if any(w in people for w in words):
        return True
    return any(re.search(rf"\b{re.escape(role)}\b", tail) for role in lexicon.people.roles)


def check_text(
    text: str,
    field: str,
    lexicon: Lexicon,
    names: set[str] = frozenset(),  # type: ignore[assignment]
) -> list[BlamelessNote]:
    findings = []
    for sentence in sentences(text):
        for rule in lexicon.rules:
            match = re.search(rule.pattern, sentence, re.IGNORECASE)
            if match is None:
                continue
            if rule.person_subject and not _person_subject(
                sentence[: match.start()], names, lexicon
            ):
                continue
            findings.append(
                _finding(rule.id, rule.kind, field, sentence, rule.reason, rule.suggestion)
            )
    return findings


def check_action_title(title: str, field: str, lexicon: Lexicon) -> list[BlamelessNote]:
    rules, text = lexicon.actions, title.strip().rstrip(".").lower()
    if any(re.search(p, text) for p in rules.vague):
        return [
            _finding(
                "vague-action", "action", field, title, rules.vague_reason, rules.vague_suggestion
            )
        ]
    if any(re.search(p, text) for p in rules.broad):
        return [
            _finding(
                "broad-action", "action", field, title, rules.broad_reason, rules.broad_suggestion
            )
        ]
    verb = next((v for v in rules.question_verbs if text.startswith(v)), None)
    if verb is not None and not _QUESTION_WORDS.search(text[len(verb) :]):
        return [
            _finding(
                "unbounded-investigation",
                "action",
                field,
                title,
                rules.question_reason,
                rules.question_suggestion,
            )
        ]
    return []


def check_document(text: str, lexicon: Lexicon, names: Iterable[str] = ()) -> list[BlamelessNote]:
    """Any Markdown or text: each line is checked on its own (its number is the field)."""
    tokens = name_tokens(names)
    findings: list[BlamelessNote] = []
    for number, line in enumerate(text.splitlines(), start=1):
        findings += check_text(line, f"line {number}", lexicon, tokens)
    return findings


def check_postmortem(state: PostmortemDocument, lexicon: Lexicon) -> list[BlamelessNote]:
    """Every free-text field of a post-mortem, with its people's names as possible subjects."""
    people = [*state.incident.responders, *(a.owner for a in state.actions)]
    if state.owner:
        people.append(state.owner)
    tokens = name_tokens(people)
    fields: list[tuple[str, str]] = [("summary", state.incident.summary)]
    for i, entry in enumerate(state.timeline):
        fields += [(f"timeline[{i}].text", entry.text), (f"timeline[{i}].known", entry.known)]
    if state.findings:
        f = state.findings
        fields += [("findings.summary", f.summary), ("findings.impact", f.impact)]
        fields += [("proximate_cause", f.proximate_cause), ("root_cause", f.root_cause)]
        fields += [
            (f"contributing_factors[{i}]", c.description)
            for i, c in enumerate(f.contributing_factors)
        ]
        for name, items in (
            ("went_well", f.went_well),
            ("went_badly", f.went_badly),
            ("got_lucky", f.got_lucky),
        ):
            fields += [(f"{name}[{i}]", text) for i, text in enumerate(items)]
    findings: list[BlamelessNote] = []
    for field, text in fields:
        findings += check_text(text, field, lexicon, tokens)
    for i, action in enumerate(state.actions):
        findings += check_action_title(action.title, f"actions[{i}].title", lexicon)
        findings += check_text(action.description, f"actions[{i}].description", lexicon, tokens)
    return findings
