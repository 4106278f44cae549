"""An independent attack on the blameless check's word list as data (a team edits en.toml):
what the file says must be what the check does, and a broken list must be refused when it is
loaded, not crash a post-mortem's check."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from domain.blameless import Lexicon, Rule, check_action_title, check_text
from integrations.lexicon import load_lexicon

LEXICON = load_lexicon("en")


def _with(*rules: Rule, **actions: list[str]) -> Lexicon:
    data = LEXICON.model_dump(exclude={"first_names"})
    data["rules"] = [*data["rules"], *(r.model_dump() for r in rules)]
    data["actions"] = data["actions"] | actions
    return Lexicon.model_validate(data).model_copy(update={"first_names": LEXICON.first_names})


def _rule(pattern: str, unless: str | None = None) -> Rule:
    return Rule(
        id="team-rule",
        kind="blame",
        pattern=pattern,
        unless=unless,
        reason="r",
        suggestion="s",
    )


def _fired(text: str, lexicon: Lexicon) -> bool:
    return any(f.rule == "team-rule" for f in check_text(text, "t", lexicon))


def test_a_broken_action_pattern_is_refused_at_load_not_at_check_time():
    """Guards: ActionRules.vague/broad are not validated (Rule patterns are): a team's typo
    loads, then every post-mortem's check raises re.error in check_action_title."""
    with pytest.raises(ValidationError):
        lexicon = _with(vague=["(", "^be (more )?careful\\b"])
        check_action_title("Add a confirmation prompt", "actions[0].title", lexicon)


def test_a_pattern_with_capital_letters_is_case_insensitive_as_the_word_list_says():
    """Guards: en.toml promises case-insensitive patterns, but Rule.lower / Part.lower are
    compiled without IGNORECASE and run on lowered text, so a capital letter in a team's
    pattern never matches (it did before this change: re.search(..., re.IGNORECASE)) —
    except in a sentence holding a character like "İ", where the other path is taken."""
    lexicon = _with(_rule(r"\bPagerDuty was muted\b"))
    assert _fired("PagerDuty was muted by the platform team.", lexicon)
    assert _fired("İ: PagerDuty was muted by the platform team.", lexicon)  # passes today


def test_an_unless_pattern_with_capital_letters_still_applies():
    """Guards: `unless` is searched in lowered text without IGNORECASE."""
    lexicon = _with(_rule(r"\bskipped the soak\b", unless=r"\bRFC-\d+\b"))
    assert _fired("Dana skipped the soak.", lexicon)
    assert not _fired("Dana skipped the soak, as RFC-12 allows.", lexicon)


def test_a_verbose_pattern_keeps_its_flag_in_every_alternative():
    """Guards: Rule.parts splits at top-level "|" and compiles each piece on its own: a
    global flag ("(?x)" verbose, "(?a)") then applies to the first piece only, and the
    other alternatives silently never match."""
    verbose = r"(?x) \b blamed \s+ it \b | \b pinned \s+ it \s+ on \b"
    text = "Ops pinned it on the vendor."
    assert re.search(verbose, text, re.IGNORECASE)
    assert _fired(text, _with(_rule(verbose)))


def test_a_back_reference_keeps_its_group_when_the_pattern_is_split():
    """Guards: split into alternatives, a back-reference is renumbered: \\1 meant the first
    alternative's group and now means the piece's own, so the check fires on text the
    pattern does not match."""
    backref = r"(x)(y)|\b(\w+) \1\b"  # \1 is (x): the second alternative never matches
    assert not re.search(backref, "the the", re.IGNORECASE)
    assert not _fired("the the", _with(_rule(backref)))
