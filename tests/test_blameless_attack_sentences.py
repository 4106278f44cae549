"""An independent attack on the blameless check's sentence splitter: sentences() says it
splits "at line breaks", but a line ending with an abbreviation or an initial ("2 a.m.",
"plan B.", "etc.") is joined with the next line, even across a blank line: the
`not piece.endswith("\\n")` guard is dead, since the split has consumed the newline. Two
lines then read as one sentence: its subject reaches into the next line (a false finding),
and its id changes with the line above."""

from __future__ import annotations

from domain.blameless import check_text, sentences
from integrations.lexicon import load_lexicon

LEXICON = load_lexicon("en")


def test_a_line_break_after_an_abbreviation_still_ends_the_sentence():
    assert sentences("Paged the DBA at 2 a.m.\nRestarted the replica.") == [
        "Paged the DBA at 2 a.m.",
        "Restarted the replica.",
    ]
    assert sentences("We chose plan B.\n\nDana restarted it.") == [
        "We chose plan B.",
        "Dana restarted it.",
    ]


def test_a_person_on_one_line_is_not_the_subject_of_the_next():
    text = "Paged the DBA at 2 a.m.\nRestarted the replica, which broke the cache."
    # Line two alone has no agent; today "the DBA" of line one is its subject ("consequence").
    assert check_text("Restarted the replica, which broke the cache.", "t", LEXICON) == []
    assert check_text(text, "t", LEXICON) == []
