"""The blameless check: sentences that blame people, judge with hindsight, or ask for actions
that change nothing. Deterministic and pure; the words are data (domain/lexicon/*.toml).

A sentence is read as a small model, not matched against a list of phrases:

- its **agents**: people by name (a first-name list derived from a maintained dataset, the
  incident's responders and owners, `@login` mentions), pronouns, roles ("the on-call
  engineer", "the DBA"), teams ("the platform team", the routing file's team names) and
  groups ("operations", "QA");
- its **predicates**: failure and fault words, judgements of people, accountability,
  counterfactual hindsight, each a rule of the word list;
- the **relation** between them, which decides: a rule fires when an agent is the subject
  of its predicate (or, in the passive, named with "by"), the possessor of its fault word, or
  stands after a cause frame ("caused by", "the root cause was"). Some words (judgements of
  character, "human error") are blame wherever they stand.

So "At 10:02 Dana restarted the consumer" passes (a timeline fact with a person as its
neutral subject), "the deploy failed to start" passes (a system as subject), and "Dana
forgot to drain the node", "the cause was Lee's change" and "if the on-call had looked, we
would have caught it" are flagged, each with why and a system-level rewording."""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal, NamedTuple

import ahocorasick
from pydantic import BaseModel, ConfigDict, Field, field_validator

from domain import limits
from domain.models import BlamelessNote, PostmortemDocument

Relation = Literal[
    "anywhere",
    "subject",
    "clause",
    "main",
    "possessor",
    "owned",
    "after",
    "inside",
    "credited",
    "sentence",
]


class Agents(BaseModel):
    """Who can be blamed. Strong agents are certainly people; weak ones ("they", "operations")
    often are not, so only the rules marked `weak_agents` count them."""

    model_config = ConfigDict(extra="forbid")
    pronouns: list[str]  # he, she, someone, we ...
    weak_pronouns: list[str] = Field(default_factory=list)  # they
    possessives: list[str] = Field(default_factory=list)  # his, her, their ("their" weak)
    roles: list[str]  # head nouns and phrases: engineer, on-call, dba, release manager
    team_words: list[str]  # "<anything> team": team, squad ...
    groups: list[str] = Field(default_factory=list)  # weak: operations, support, qa
    # Capitalised words the name list holds that are, in incident reports, products.
    not_people: list[str] = Field(default_factory=list)
    # Words that never start a name, whatever the name list says ("The", "May" as a month).
    not_names: list[str] = Field(default_factory=list)
    # Things named like roles: "secrets manager", "package manager".
    not_roles: list[str] = Field(default_factory=list)


class Grammar(BaseModel):
    """The function words the sentence model reads past or stops at."""

    model_config = ConfigDict(extra="forbid")
    fillers: list[str]  # between a subject and its verb: did, had, then, also, not ...
    passive: list[str]  # was, were, been ...: "was missed" is passive, its agent after "by"
    coordinators: list[str]  # and, but, then: "Dana restarted X but forgot Y"
    boundaries: list[str]  # which, because, while ...: a new clause, a new subject
    prepositions: list[str]  # "the page to Dana": Dana is not the subject
    acts: list[str] = Field(default_factory=list)  # "Dana's decision": a person's act
    modified: list[str]  # "the on-call rotation": a role word as a modifier is no agent
    leading: list[str]  # before a clause's subject: "At 14:02 UTC, ...", "In short, ..."
    subordinators: list[str]  # "When ..., ...": the comma ends the opening clause
    reporting: list[str]  # "the review found that ...": "that" opens a clause of its own
    determiners: list[str]  # "Make the script ...": a capitalised word before one is a verb
    honorifics: list[str]  # "Mr Pálsson", "Dr. Okafor": a person
    irregular_participles: list[str]  # "was made by", "was run by": the passive


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    kind: str
    pattern: str
    reason: str
    suggestion: str
    # Where the agent must stand for the rule to fire:
    # anywhere: no agent needed (the words themselves judge a person);
    # subject: the agent does it (or, passive, is named with "by" after it);
    # clause: the agent is the subject of the clause ("Dana ran it on prod instead of ...");
    # main: the agent is the sentence's first subject, or owns it ("Dana's cutover left the
    # API resolving to ...", "Lwazi approved it, which broke ...");
    # possessor: "Dana's mistake", "a mistake by/of the intern";
    # owned: a possessor, or the agent of the clause's passive ("the faulty flag was
    # switched on by the product manager");
    # after: an agent in the rest of the clause ("caused by", "the root cause was");
    # inside: an agent within the match's `agent` group ("if Dana had ...");
    # credited: an agent named with "by" or "from" before it in the clause ("a glance by
    # Farida would have shown ...");
    # sentence: any person in the sentence.
    relation: Relation = "anywhere"
    weak_agents: bool = False  # also "they", "operations": for words only people do
    # A pattern that, found in the sentence, means the rule does not apply here.
    unless: str | None = None

    @field_validator("pattern", "unless")
    @classmethod
    def _compiles(cls, pattern: str | None) -> str | None:
        """A word list with a broken pattern is refused when it is loaded, with the reason,
        not when a post-mortem is checked."""
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return pattern

    @cached_property
    def regex(self) -> re.Pattern[str]:
        return re.compile(self.pattern, re.IGNORECASE)

    @cached_property
    def lower(self) -> re.Pattern[str]:
        """For text already in lower case: twice as fast as `regex` (measured). A pattern
        with capital letters of its own keeps matching without regard to case."""
        return _lower_compile(self.pattern)

    @cached_property
    def unless_lower(self) -> re.Pattern[str] | None:
        return _lower_compile(self.unless) if self.unless else None

    @cached_property
    def required(self) -> frozenset[str] | None:
        """Strings of which every match holds one (None: unknown): a sentence holding none
        is not searched, which spares most rules most sentences."""
        return _required(self.pattern)

    @cached_property
    def parts(self) -> tuple[_Part, ...]:
        """The pattern's top-level alternatives, each searched only in a sentence holding
        one of its own required strings (a rule of 20 alternatives costs what the ones
        whose words are there cost: measured 3x faster on the corpus). The whole pattern
        when it cannot be split."""
        pieces = _alternatives(self.pattern)
        try:
            return tuple(
                _Part(_lower_compile(p), re.compile(p, re.IGNORECASE), _required(p)) for p in pieces
            )
        except re.error:  # a back-reference across alternatives, say
            return (_Part(self.lower, self.regex, self.required),)


class _Part(NamedTuple):
    lower: re.Pattern[str]
    regex: re.Pattern[str]
    required: frozenset[str] | None


_ESCAPE = re.compile(r"\\.")
# Whole-pattern flags ("(?x)") and back-references ("\1", "(?P=name)") tie the alternatives
# together: such a pattern is searched whole.
_TIED = re.compile(r"\(\?[aiLmsux]+\)|\\[1-9]|\(\?P=")


def _lower_compile(pattern: str) -> re.Pattern[str]:
    """Compiled for lower-case text: without IGNORECASE (faster) unless the pattern has
    capital letters of its own ("PagerDuty", "[A-Z]")."""
    literal = _ESCAPE.sub("", pattern)
    return re.compile(pattern, re.IGNORECASE if literal != literal.lower() else 0)


def _alternatives(pattern: str) -> list[str]:
    """Split a pattern at its top-level "|" (outside groups and character classes)."""
    if _TIED.search(pattern):
        return [pattern]
    parts, current, depth, in_class, escaped = [], "", 0, False, False
    for ch in pattern:
        if escaped:
            current, escaped = current + ch, False
            continue
        if ch == "\\":
            current, escaped = current + ch, True
            continue
        if in_class:
            in_class = ch != "]" or current.endswith("[")
        elif ch == "[":
            in_class = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "|" and depth == 0:
            parts.append(current)
            current = ""
            continue
        current += ch
    return [*parts, current]


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

    @field_validator("vague", "broad")
    @classmethod
    def _compile(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern!r} is not a valid regular expression: {exc}") from None
        return patterns


class Lexicon(BaseModel):
    model_config = ConfigDict(extra="forbid")
    agents: Agents
    grammar: Grammar
    rules: list[Rule]
    actions: ActionRules
    # First names (a derived list, one per line, shipped beside the word list): set by
    # the loader, empty when a language has none.
    first_names: frozenset[str] = frozenset()

    @cached_property
    def model(self) -> _Model:
        return _Model.of(self)

    @cached_property
    def _strings(self) -> ahocorasick.Automaton:
        """Every string a rule or one of its alternatives requires, in one automaton."""
        automaton = ahocorasick.Automaton()
        for rule in self.rules:
            for required in (rule.required, *(part.required for part in rule.parts)):
                for string in required or ():
                    automaton.add_word(string, string)
        automaton.make_automaton()
        return automaton

    def present(self, lowered: str) -> frozenset[str]:
        """Which of the required strings `lowered` holds: one pass over it (a Python loop of
        substring tests per rule was most of the check's time)."""
        if not len(self._strings):
            return frozenset()
        return frozenset(found for _, found in self._strings.iter(lowered))


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
# Abbreviations a full stop does not end a sentence after ("Mr. Adeyemi", "2 a.m. with").
_ABBREVIATION = re.compile(
    r"(?:\b(?:mr|mrs|ms|mx|dr|st|vs|etc|approx|inc|ltd|no|e\.g|i\.e|a\.m|p\.m|cf|fig|est)|\b[a-z])\.$",
    re.IGNORECASE,
)
_QUESTION_WORDS = re.compile(r"\b(why|whether|how|what|which|when|where|who)\b|\?", re.I)
# Words (with an inner apostrophe or hyphen: "on-call", "Lee's", "didn't"), @logins,
# numbers and times, and the punctuation that separates clauses.
_TOKEN = re.compile(
    r"@[\w.-]*\w|[^\W\d_](?:[\w'\u2019-]*\w)?(?:['\u2019]s\b|['\u2019](?=\s|$))?|\d[\d:.,]*\w*|[;:,()\u2014\u2013]|\s-\s"
)
_POSSESSIVE = re.compile(r"['\u2019]s?$")


def _required(pattern: str) -> frozenset[str] | None:
    """From the pattern's parse tree (the standard library's own parser): literal runs of
    two characters or more, one of which any match must contain. None when the pattern
    does not say (a character class first, an optional part, a parser that changed)."""
    try:
        from re import _constants, _parser

        found = _required_in(list(_parser.parse(pattern)), _constants)
    except Exception:
        return None
    return frozenset(s.lower() for s in found) if found else None


def _required_in(items: list[Any], c: Any) -> set[str] | None:
    best: set[str] | None = None

    def keep(candidate: set[str] | None) -> None:
        nonlocal best
        if candidate and (best is None or min(map(len, candidate)) > min(map(len, best))):
            best = candidate

    run = ""
    for op, value in [*items, (None, None)]:
        if op is c.LITERAL:
            run += chr(value)
            continue
        if len(run) >= 2:
            keep({run})
        run = ""
        if op is c.SUBPATTERN:
            keep(_required_in(list(value[3]), c))
        elif op is c.BRANCH:
            branches = [_required_in(list(b), c) for b in value[1]]
            if all(branches):
                keep(set().union(*branches))  # type: ignore[arg-type]
        elif op in (c.MAX_REPEAT, c.MIN_REPEAT) and value[0] >= 1:
            keep(_required_in(list(value[2]), c))
    return best


def sentences(text: str) -> list[str]:
    """Split at a full stop, ! or ? followed by space, and at line breaks; not after an
    abbreviation ("Mr.", "a.m.", "e.g.") or an initial."""
    found: list[str] = []
    for line in text.splitlines():
        pending = ""
        for piece in _SENTENCE_END.split(line):
            pending = f"{pending} {piece}" if pending else piece
            # Only the end is looked at: a line of thousands of "Mr." stays linear.
            if _ABBREVIATION.search(pending[-12:]):
                continue
            if pending.strip():
                found.append(pending.strip())
            pending = ""
        if pending.strip():
            found.append(pending.strip())
    return found


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


# -- the sentence model -----------------------------------------------------------------------


class _Token(NamedTuple):  # a tuple: a document makes tens of thousands of them
    text: str  # as written
    word: str  # lower case, without a possessive ending
    start: int
    end: int
    possessive: bool


@dataclass(frozen=True)
class _Model:
    pronouns: frozenset[str]
    weak_pronouns: frozenset[str]
    roles: frozenset[str]  # one-word roles
    role_phrases: dict[str, tuple[tuple[str, ...], ...]]  # by first word, longest first
    team_words: frozenset[str]
    groups: frozenset[str]
    not_people: frozenset[str]
    not_names: frozenset[str]
    first_names: frozenset[str]
    fillers: frozenset[str]
    passive: frozenset[str]
    coordinators: frozenset[str]
    boundaries: frozenset[str]
    prepositions: frozenset[str]
    modified: frozenset[str]
    possessives: frozenset[str]
    not_roles: frozenset[str]
    acts: frozenset[str]
    leading: frozenset[str]
    subordinators: frozenset[str]
    reporting: frozenset[str]
    determiners: frozenset[str]
    honorifics: frozenset[str]
    irregular_participles: frozenset[str]

    @cached_property
    def grammatical(self) -> frozenset[str]:
        """Function words, never a name ("Had the alert fired ...")."""
        return (
            self.fillers
            | self.passive
            | self.coordinators
            | self.boundaries
            | self.prepositions
            | self.leading
        )

    @classmethod
    def of(cls, lexicon: Lexicon) -> _Model:
        a, g = lexicon.agents, lexicon.grammar
        low = lambda words: frozenset(w.lower() for w in words)  # noqa: E731
        phrases = [tuple(r.lower().split()) for r in a.roles]
        return cls(
            pronouns=low(a.pronouns),
            weak_pronouns=low(a.weak_pronouns),
            roles=frozenset(p[0] for p in phrases if len(p) == 1),
            role_phrases={
                first: tuple(
                    sorted((p for p in phrases if len(p) > 1 and p[0] == first), key=len)[::-1]
                )
                for first in {p[0] for p in phrases if len(p) > 1}
            },
            team_words=low(a.team_words),
            groups=low(a.groups),
            not_people=low(a.not_people),
            not_names=low(a.not_names),
            first_names=lexicon.first_names,
            fillers=low(g.fillers),
            passive=low(g.passive),
            coordinators=low(g.coordinators),
            boundaries=low(g.boundaries),
            prepositions=low(g.prepositions),
            modified=low(g.modified),
            possessives=low(a.possessives),
            not_roles=low(a.not_roles),
            acts=low(g.acts),
            leading=low(g.leading),
            subordinators=low(g.subordinators),
            reporting=low(g.reporting),
            determiners=low(g.determiners),
            honorifics=low(g.honorifics),
            irregular_participles=low(g.irregular_participles),
        )

    def participle(self, word: str) -> bool:
        return word.endswith(("ed", "en", "wn")) or word in self.irregular_participles


_ENDINGS = ("'s", "\u2019s", "'", "\u2019")


def _tokens(sentence: str) -> list[_Token]:
    found = []
    for m in _TOKEN.finditer(sentence):
        text = m.group().strip()
        possessive = len(text) > 2 and text.endswith(_ENDINGS)
        word = _POSSESSIVE.sub("", text).lower() if possessive else text.lower()
        found.append(_Token(text, word, m.start(), m.end(), possessive))
    return found


@dataclass(frozen=True)
class _Agent:
    first: int  # token index where it starts
    last: int  # token index of its head (the possessive, if any, is on this one)
    strong: bool
    text: str


class _Sentence:
    """One sentence's tokens and the agents among them."""

    def __init__(self, sentence: str, model: _Model, names: set[str]) -> None:
        self.text = sentence
        self.model = model
        self.tokens = _tokens(sentence)
        self.agents: dict[int, _Agent] = {}  # by head index
        self.starting: dict[int, _Agent] = {}  # by first index
        self._find_agents(names)

    def _find_agents(self, names: set[str]) -> None:
        words = [t.word for t in self.tokens]
        i = 0
        while i < len(self.tokens):
            found = self._agent_at(i, words, names)
            if found is None:
                i += 1
                continue
            self.agents[found.last] = found
            self.starting[found.first] = found
            i = found.last + 1

    def _agent_at(self, i: int, words: list[str], names: set[str]) -> _Agent | None:
        m, token = self.model, self.tokens[i]
        text = lambda a, b: self.text[self.tokens[a].start : self.tokens[b].end]  # noqa: E731
        # Roles of several words first ("release manager", "on call engineer").
        for phrase in m.role_phrases.get(words[i], ()):
            if tuple(words[i : i + len(phrase)]) == phrase:
                last = self._extend_head(i + len(phrase) - 1, words)
                if self._modifies(last, words):
                    return None
                return _Agent(i, last, True, text(i, last))
        if token.text.startswith("@"):
            return _Agent(i, i, True, token.text)
        if (
            token.word in m.honorifics
            and i + 1 < len(self.tokens)
            and self.tokens[i + 1].text[:1].isupper()
        ):
            return _Agent(i, i + 1, True, text(i, i + 1))  # "Mr Pálsson's", "Dr. Okafor"
        if token.word in m.pronouns:
            return _Agent(i, i, True, token.text)
        if token.word in m.weak_pronouns:
            return _Agent(i, i, False, token.text)
        if token.word in m.possessives:  # "on his part", "their mistake"
            return _Agent(i, i, token.word != "their", token.text)  # "their": often things
        if token.word in m.roles:
            if i > 0 and f"{words[i - 1]} {token.word}" in m.not_roles:
                return None  # "the secrets manager", "the package manager"
            last = self._extend_head(i, words)
            if self._modifies(last, words):
                return None  # "the on-call rotation"
            return _Agent(i, last, True, text(i, last))
        if self._is_name(i, names):
            last = i
            # "Alex Kim", "Priya S." : a surname or initial after a first name is one agent.
            while (
                last + 1 < len(self.tokens)
                and not self.tokens[last].possessive
                and self.tokens[last + 1].text[:1].isupper()
                and (
                    self._is_name(last + 1, names)
                    or (
                        words[last + 1] not in m.boundaries | m.fillers
                        and self.tokens[last + 1].text.isalpha()
                        and len(self.tokens[last + 1].text) > 1
                        and not self.tokens[last + 1].text.isupper()
                    )
                )
                and last + 1 - i < 3
            ):
                last += 1
            return _Agent(i, last, True, text(i, last))
        # "<anything> team": the payments team, the on-call squad, Team Phoenix.
        if token.word in m.team_words and i > 0 and not self._is_verbish(i - 1, words):
            return _Agent(i - 1, i, True, text(i - 1, i))
        if token.text == "IT":  # the department, not "it"
            return _Agent(i, i, True, token.text)
        if token.word in m.groups:
            # "Operations let the disk fill up", "blamed on support": a group starting its
            # clause or named with "by" is the people; "write operations", "no support
            # for X" are things.
            before = words[i - 1] if i > 0 else ""
            starts = (
                i == 0
                or not before[:1].isalnum()
                or before in m.boundaries
                or before in m.coordinators
                or before in ("the", "our", "by", "blamed", "on")
            )
            after = words[i + 1] if i + 1 < len(words) else ""
            return _Agent(i, i, starts and after not in m.modified, token.text)
        return None

    def _modifies(self, last: int, words: list[str]) -> bool:
        """Is the role word a modifier of a thing ("the on-call rotation")?"""
        return (
            not self.tokens[last].possessive
            and last + 1 < len(words)
            and words[last + 1] in self.model.modified
        )

    def _extend_head(self, last: int, words: list[str]) -> int:
        """'the on-call engineer': the role word may be followed by another role word or a
        team word, which is then the head."""
        m = self.model
        while (
            last + 1 < len(words)
            and not self.tokens[last].possessive
            and (words[last + 1] in m.roles or words[last + 1] in m.team_words)
        ):
            last += 1
        return last

    def _is_verbish(self, i: int, words: list[str]) -> bool:
        return words[i] in self.model.fillers or words[i] in self.model.boundaries

    def _is_name(self, i: int, names: set[str]) -> bool:
        m, token = self.model, self.tokens[i]
        if token.word in names:
            return True
        if not token.text[:1].isupper() or (token.text.isupper() and len(token.text) > 1):
            return False
        if token.word in m.not_people or token.word in m.not_names or token.word in m.grammatical:
            return False
        if token.word not in m.first_names:
            return False
        # "Make the script refuse ...": a capitalised first word followed by a determiner
        # is an imperative verb, not a person.
        first = i == 0 or not self.tokens[i - 1].word[:1].isalnum()
        after = self.tokens[i + 1].word if i + 1 < len(self.tokens) else ""
        return not (first and after in m.determiners)

    # -- relations ------------------------------------------------------------------

    def index_at(self, offset: int) -> int:
        """The first token at or after a character offset."""
        for i, token in enumerate(self.tokens):
            if token.end > offset:
                return i
        return len(self.tokens)

    def _clause_start(self, i: int) -> int:
        m = self.model
        j = i - 1
        while j >= 0:
            if self.tokens[j].text == ")":  # an aside: read past it
                while j >= 0 and self.tokens[j].text != "(":
                    j -= 1
                j -= 1
                continue
            if self.tokens[j].word in m.boundaries or self.tokens[j].text in (";", ":", "("):
                return j + 1
            if self.tokens[j].word == "that" and j > 0 and self.tokens[j - 1].word in m.reporting:
                return j + 1  # "the review found that the DBA ...": a clause of its own
            if self.tokens[j].text == "," and self._subordinate_first:
                return j + 1  # "When Dana restarted it, the logs pointed at ...": a new clause
            j -= 1
        return 0

    @cached_property
    def _subordinate_first(self) -> bool:
        """Does the sentence open with a subordinate clause ("When ..., ...")?"""
        for token in self.tokens:
            if token.word[:1].isalpha() and token.word not in self.model.leading:
                return token.word in self.model.subordinators
        return False

    def _clause_end(self, i: int) -> int:
        m = self.model
        for j in range(i, len(self.tokens)):
            if self.tokens[j].word in m.boundaries or self.tokens[j].text in (";", ")"):
                return j
        return len(self.tokens)

    def _counts(self, agent: _Agent | None, weak: bool) -> _Agent | None:
        return agent if agent is not None and (agent.strong or weak) else None

    def subject(self, start: int, weak: bool) -> _Agent | None:
        """The agent doing the verb that starts at token `start`, if any: the nearest noun
        before it (past auxiliaries and adverbs) when it is an agent, or the clause's first
        one when a coordinator joins two verbs of one subject; None when the verb is passive
        (then its agent is what "by" names after it)."""
        m, tokens = self.model, self.tokens
        j = start - 1
        passive = False
        while j >= 0 and (tokens[j].word in m.fillers or tokens[j].word.endswith("ly")):
            passive = passive or tokens[j].word in m.passive
            j -= 1
        if passive and start < len(tokens) and m.participle(tokens[start].word):
            return self._by_agent(start, weak)
        if j < 0:
            return None
        if tokens[j].word in m.coordinators or tokens[j].text == ",":
            return self.clause_subject(j, weak)  # one subject, two verbs; or the passive's
        agent = self.agents.get(j)
        if agent is None:
            # "Lee's change broke checkout": the possessor of the subject, a strong agent.
            for k in (j - 1, j - 2):
                owner = self.agents.get(k)
                if k >= 0 and owner is not None and tokens[k].possessive and owner.strong:
                    return owner
            return None
        if agent.first > 0 and tokens[agent.first - 1].word in m.prepositions:
            return None  # "the page to Dana failed": Dana is not the subject
        return self._counts(agent, weak)

    def _first_agent(self, j: int) -> _Agent | None:
        """The subject of the clause that ends at `j`: its first noun, past times, dates,
        determiners and dashes ("14:02 UTC — Sven restarted the pod, but ...")."""
        k = self._clause_start(j)
        while k < j:
            if k in self.starting:
                agent = self.starting[k]
                if not self.tokens[agent.last].possessive or agent.last + 1 >= j:
                    return agent
                if self._owns_act(agent):
                    return agent  # "Nilufar's bulk import, started at peak, ...": their act
                k = agent.last + 1  # "the vendor's technician": the possessed is the subject
                continue
            token = self.tokens[k]
            if (
                not token.word[:1].isalpha()
                or token.word in self.model.leading
                or token.word in self.model.fillers
                or token.possessive  # "the customer's engineer"
            ):
                k += 1
                continue
            # "a junior developer", "the field technician": a role after a word or two
            for ahead in (k + 1, k + 2):
                if ahead in self.starting and ahead < j:
                    between = self.tokens[k:ahead]
                    if all(
                        t.word.isalpha() and t.word not in self.model.boundaries for t in between
                    ):
                        return self.starting[ahead]
            return None  # the clause starts with something else: a system, a thing
        return None

    def passive_agent(self, i: int, weak: bool) -> _Agent | None:
        """The agent a passive clause names with "by" ("... was pushed by the intern")."""
        return self._named_by(i, weak, after_participle=True)

    def _named_by(self, i: int, weak: bool, *, after_participle: bool) -> _Agent | None:
        """The first agent named with "by" in the clause of token `i` ("by Dana", "by the
        intern"); with `after_participle`, only a "by" within three words of a participle."""
        begin = self._clause_start(i)
        for k in range(begin, self._clause_end(i) - 1):
            if self.tokens[k].word != "by":
                continue
            previous = self.tokens[max(begin, k - 3) : k]
            if after_participle and not any(self.model.participle(t.word) for t in previous):
                continue
            for h in (k + 1, k + 2):
                if h in self.starting:
                    return self._counts(self.starting[h], weak)
        return None

    def _by_agent(self, end: int, weak: bool) -> _Agent | None:
        stop = self._clause_end(end)
        for k in range(end, stop - 1):
            if self.tokens[k].word == "by":
                for h in range(k + 1, min(stop, k + 6)):
                    if h in self.agents:
                        return self._counts(self.agents[h], weak)
                return None
        return None

    def possessor(self, start: int, end: int, weak: bool) -> _Agent | None:
        """'Dana's mistake', 'the intern's error', 'his mistake', 'a mistake by / of the
        intern'."""
        tokens = self.tokens
        for j in range(start - 1, max(-1, start - 4), -1):
            agent = self.agents.get(j)
            if agent is not None and (
                tokens[j].possessive or tokens[j].word in self.model.possessives
            ):
                return self._counts(agent, weak)  # "Dana's", "his"
            if tokens[j].word in self.model.boundaries or not tokens[j].word[:1].isalnum():
                break
        if end < len(tokens) and tokens[end].word in ("by", "of", "from", "on"):
            for h in range(end + 1, min(len(tokens), end + 5)):
                if h in self.agents:
                    return self._counts(self.agents[h], weak)
        return None

    def _owns_act(self, agent: _Agent) -> bool:
        """Is what this possessive agent owns an act of theirs ("Dana's change")?"""
        owned = [t.word for t in self.tokens[agent.last + 1 : agent.last + 4]]
        return any(word in self.model.acts for word in owned)

    def credited(self, i: int, weak: bool) -> _Agent | None:
        """'a second pair of eyes from Viktor would have ...', 'one glance by Farida ...'."""
        for k in range(self._clause_start(i), i - 1):
            if self.tokens[k].word in ("by", "from") and k + 1 in self.starting:
                return self._counts(self.starting[k + 1], weak)
        return None

    def main_subject(self, weak: bool) -> _Agent | None:
        """The sentence's first subject, or its possessor ("the commander's call ..."), or
        the agent its passive names ("the rule was removed by the networking team, ...")."""
        found = self._main_subject(weak)
        if found is not None and self.tokens[found.last].possessive and not self._owns_act(found):
            found = None  # "the data team's backfill job ...": a thing, not an act
        if found is None and self.tokens:
            return self.passive_agent(0, weak)
        return found

    def _main_subject(self, weak: bool) -> _Agent | None:
        for k, token in enumerate(self.tokens):
            if k in self.starting:
                return self._counts(self.starting[k], weak)
            if not token.word[:1].isalpha() or token.word in self.model.leading:
                continue
            for ahead in (k + 1, k + 2):  # "the junior developer", "the incident commander's"
                if ahead in self.starting and all(
                    t.word.isalpha() and t.word not in self.model.boundaries
                    for t in self.tokens[k:ahead]
                ):
                    return self._counts(self.starting[ahead], weak)
            return None
        return None

    def clause_subject(self, start: int, weak: bool) -> _Agent | None:
        """The subject of the whole clause ("Dana ran it against prod instead of staging"),
        or in the passive its agent ("it was run by Dana without a review")."""
        first = self._first_agent(start)
        if first is not None and (not self.tokens[first.last].possessive or self._owns_act(first)):
            return self._counts(first, weak)
        return self._named_by(start, weak, after_participle=False)

    def after(self, end: int, weak: bool) -> _Agent | None:
        """An agent in the rest of the clause ("the root cause was that the DBA ..."), not
        one inside a phrase of its own ("because the chain for sre-triage was empty")."""
        m = self.model
        if end < len(self.tokens) and self.tokens[end].word in ("that", "when", "where"):
            end += 1
        for k in range(end, self._clause_end(end)):
            agent = self.starting.get(k)
            if agent is None:
                continue
            before = agent.first - 1
            if before >= end and self.tokens[before].word in m.prepositions:
                continue
            if not agent.strong and self.tokens[agent.first].word in m.groups and k - end < 2:
                return agent  # "the root cause was operations applying ...": the people
            return self._counts(agent, weak)
        return None

    def inside(self, start: int, end: int, weak: bool) -> _Agent | None:
        for k in range(start, end):
            if k in self.agents:
                return self._counts(self.agents[k], weak)
        return None


def _fires(rule: Rule, match: re.Match[str], sentence: _Sentence) -> _Agent | bool | None:
    """True (no agent needed), the agent that makes the rule fire, or None."""
    if rule.relation == "anywhere":
        return True
    weak = rule.weak_agents
    if rule.relation == "inside":
        named = [g for g in match.re.groupindex if g.startswith("agent") and match.group(g)]
        start, end = match.span(named[0] if named else 0)
        first, last = sentence.index_at(start), sentence.index_at(max(start, end - 1)) + 1
        return sentence.inside(first, last, weak)
    first = sentence.index_at(match.start())
    last = sentence.index_at(max(match.start(), match.end() - 1)) + 1
    if rule.relation == "subject":
        return sentence.subject(first, weak)
    if rule.relation == "clause":
        return sentence.clause_subject(first, weak)
    if rule.relation == "main":
        return sentence.main_subject(weak)
    if rule.relation == "credited":
        return sentence.credited(first, weak)
    if rule.relation == "sentence":
        return next((a for a in sentence.agents.values() if a.strong or weak), None)
    if rule.relation == "possessor":
        return sentence.possessor(first, last, weak)
    if rule.relation == "owned":
        return sentence.possessor(first, last, weak) or sentence.passive_agent(first, weak)
    return sentence.after(last, weak)


_QUOTES = "'\"\u2018\u2019\u201c\u201d`"


# A sentence is read in windows of at most this many words (a run-on list of 20,000
# characters is not a sentence: read whole, each of its matches walks all of it, which made
# one field take seconds). Real sentences are far shorter; a window's findings are the
# window's. And a rule looks at most at this many of its matches in one window.
WINDOW_WORDS = 80
MATCHES_PER_RULE = 12
_WORD = re.compile(r"\S+")


def _windows(sentence: str) -> list[str]:
    spans = [m.span() for m in _WORD.finditer(sentence)]
    if len(spans) <= WINDOW_WORDS:
        return [sentence]
    return [
        sentence[spans[i][0] : spans[min(i + WINDOW_WORDS, len(spans)) - 1][1]]
        for i in range(0, len(spans), WINDOW_WORDS)
    ]


def _quoted(sentence: str, start: int, end: int) -> bool:
    """Is the match a quoted phrase (a mention, not a use)?"""
    before = sentence[:start].rstrip()
    after = sentence[end:].lstrip()
    return bool(before) and bool(after) and before[-1] in _QUOTES and after[0] in _QUOTES


def check_text(
    text: str,
    field: str,
    lexicon: Lexicon,
    names: set[str] = frozenset(),  # type: ignore[assignment]
) -> list[BlamelessNote]:
    """Every sentence of `text`, one finding per rule that fires in it. `names`: people known
    to be in it (lower case), beyond the first-name list."""
    findings = []
    model = lexicon.model
    for sentence in (w for s in sentences(text) for w in _windows(s)):
        parsed: _Sentence | None = None
        lowered = sentence.lower()
        same = len(lowered) == len(sentence)  # offsets hold ("İ" lowers to two characters)
        holds = lexicon.present(lowered)
        for rule in lexicon.rules:
            if rule.required is not None and rule.required.isdisjoint(holds):
                continue
            if rule.unless_lower is not None and rule.unless_lower.search(lowered):
                continue
            found = (
                match
                for part in rule.parts
                if part.required is None or not part.required.isdisjoint(holds)
                for match in (part.lower if same else part.regex).finditer(
                    lowered if same else sentence
                )
            )
            for match in itertools.islice(found, MATCHES_PER_RULE):
                if parsed is None:
                    parsed = _Sentence(sentence, model, names)
                if _quoted(sentence, match.start(), match.end()):
                    continue  # "this review avoids the phrase 'human error'": a mention
                fired = _fires(rule, match, parsed)
                if fired is None:
                    continue
                reason = rule.reason
                if isinstance(fired, _Agent):
                    # Quoted only from what the finding keeps of the sentence (clipped to
                    # limits.SENTENCE bytes): nothing cut from it comes back in the reason.
                    end = max(match.end(), parsed.tokens[fired.last].end)
                    if len(sentence[:end].encode()) <= limits.SENTENCE:
                        words = sentence[match.start() : match.end()].strip()
                        reason = f"{reason} ({fired.text}: “{words}”)"
                findings.append(
                    _finding(rule.id, rule.kind, field, sentence, reason, rule.suggestion)
                )
                break
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


def check_document(
    text: str, lexicon: Lexicon, names: Iterable[str] = (), teams: Iterable[str] = ()
) -> list[BlamelessNote]:
    """Any Markdown or text: each line is checked on its own (its number is the field)."""
    tokens = name_tokens(names) | _team_tokens(teams)
    findings: list[BlamelessNote] = []
    for number, line in enumerate(text.splitlines(), start=1):
        findings += check_text(line, f"line {number}", lexicon, tokens)
    return findings


def _team_tokens(teams: Iterable[str]) -> set[str]:
    """A team of the routing file is an agent by its name ("sre-triage"); a name that is an
    ordinary word ("payments") counts when written as "the payments team" (team words)."""
    return {t.lower() for t in teams if "-" in t or "_" in t}


def check_postmortem(
    state: PostmortemDocument, lexicon: Lexicon, teams: Iterable[str] = ()
) -> list[BlamelessNote]:
    """Every free-text field of a post-mortem, with its people's names as possible subjects."""
    people = [*state.incident.responders, *(a.owner for a in state.actions)]
    if state.owner:
        people.append(state.owner)
    tokens = name_tokens(people) | _team_tokens([*teams, state.incident.team])
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
