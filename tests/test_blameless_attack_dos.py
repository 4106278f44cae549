"""An attack on the blameless check's cost (found by an independent review): a text field may
hold limits.TEXT (20,000) characters, and a whole post-mortem is checked in one activity with
a 10 s timeout and on the draft page. Made of words that start searches but never fire, one
field took 10-40 s, because each candidate match walked the whole sentence (O(matches x
words)) and the sentence splitter searched the whole pending text after every abbreviation.

The bound is structural, so it is tested as such (no clock): the sentence model is never
built on more than WINDOW_WORDS words, a rule looks at no more than MATCHES_PER_RULE of its
matches in one window, and the splitter looks at the end of the pending text only.
`benchmarks/blameless.py` measures the worst field's time."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import pytest

import domain.blameless as blameless
from domain import limits
from domain.blameless import MATCHES_PER_RULE, WINDOW_WORDS, check_text, sentences
from integrations.lexicon import load_lexicon

LEXICON = load_lexicon("en")


def _field(unit: str) -> str:
    return (unit * (limits.TEXT // len(unit) + 1))[: limits.TEXT]


@pytest.mark.parametrize(
    "unit",
    [
        ", bad",  # judged-act (owned): possessor and passive agent per match
        "bad ",
        "the wrong ",  # without (clause): the clause's subject per match
        ", causing",  # consequence (main): the sentence's subject per match
        ") bad ",  # ")" made the clause's start read back over every aside
        "İ bad ",  # the other path (a character whose lower case is longer)
        "db-001 failed with bad gateway, ",  # a pasted run-on list, as a user would
    ],
)
def test_a_full_field_is_read_in_bounded_windows_with_bounded_matches(
    unit: str, monkeypatch: pytest.MonkeyPatch
):
    built: list[int] = []
    looked: Counter[tuple[str, int]] = Counter()
    model_init = blameless._Sentence.__init__
    fires = blameless._fires

    def counting_init(self: Any, sentence: str, *args: Any) -> None:
        model_init(self, sentence, *args)
        built.append(len(self.tokens))

    alive: list[Any] = []  # kept, so that no two windows share an id()

    def counting_fires(rule: Any, match: re.Match[str], sentence: Any) -> Any:
        alive.append(sentence)
        looked[(rule.id, id(sentence))] += 1
        return fires(rule, match, sentence)

    monkeypatch.setattr(blameless._Sentence, "__init__", counting_init)
    monkeypatch.setattr(blameless, "_fires", counting_fires)
    check_text(_field(unit), "t", LEXICON)
    assert built, "the field was not read"
    # Tokens include punctuation: a window of WINDOW_WORDS words holds at most ~3x as many.
    assert max(built) <= 3 * WINDOW_WORDS
    assert max(looked.values()) <= MATCHES_PER_RULE


@pytest.mark.parametrize("unit", ["Mr. ", "a. "])
def test_the_sentence_splitter_looks_at_the_end_of_the_pending_text_only(
    unit: str, monkeypatch: pytest.MonkeyPatch
):
    """sentences() searched the whole pending text after every piece: a field of 5,000
    "Mr." was O(n^2) (9-12 s for 20 kB)."""
    lengths: list[int] = []
    pattern = blameless._ABBREVIATION

    class Recording:
        def search(self, text: str) -> re.Match[str] | None:
            lengths.append(len(text))
            return pattern.search(text)

    monkeypatch.setattr(blameless, "_ABBREVIATION", Recording())
    found = sentences(_field(unit))
    assert lengths and max(lengths) <= 12
    assert "".join(found).replace(" ", "") == _field(unit).replace(" ", "")  # nothing lost
