"""The blameless check and gate at their edges: the cases mutation testing showed no test
pinned down."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from domain.blameless import check_action_title, check_document, check_postmortem, check_text
from domain.blameless import name_tokens as tokens_of
from domain.models import (
    ActionType,
    BlamelessNote,
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

LEXICON = load_lexicon("en")
NOW = datetime(2026, 11, 26, tzinfo=UTC)


def test_finding_ids_are_the_rule_and_eight_hex_digits_of_field_and_sentence():
    (first,) = check_text("Sam should have caught it.", "root_cause", LEXICON)
    (other_field,) = check_text("Sam should have caught it.", "summary", LEXICON)
    (other_sentence,) = check_text("Sam could have caught it.", "root_cause", LEXICON)
    assert re.fullmatch(r"should-have-[0-9a-f]{8}", first.id)
    assert len({first.id, other_field.id, other_sentence.id}) == 3


def test_name_tokens_are_words_of_two_letters_or_more_and_the_full_name():
    assert tokens_of(["Alex Kim"]) == {"alex", "kim", "alex kim"}
    assert tokens_of(["al.wu@example.com"]) == {"al", "wu", "al wu"}
    assert tokens_of(["j.smith@example.com"]) == {"smith"}
    assert tokens_of(["kim.lee@relay@example.com"]) == {"kim", "lee", "kim lee"}
    assert tokens_of(["Ana Maria Costa"]) == {"ana", "maria", "costa", "ana maria costa"}


def test_the_subject_is_the_noun_just_before_the_verb_not_any_person_before_it():
    names = tokens_of(["zqxwv@example.com"])
    script = "Zqxwv said the new deploy script forgot to drain the node."
    person = "Zqxwv said the new deploy script was fine, then forgot to drain the node."
    assert check_text(script, "text", LEXICON, names) == []
    assert [f.rule for f in check_text(person, "text", LEXICON, names)] == ["failed-to"]


def test_a_rule_skipped_for_want_of_a_person_does_not_stop_the_next_rules():
    found = check_text("The deploy failed to start, obviously.", "text", LEXICON)
    assert [f.rule for f in found] == ["obviously"]


@pytest.mark.parametrize(
    ("title", "rule"),
    [
        ("Be more careful.", "vague-action"),
        ("Improve monitoring.", "broad-action"),
        ("Improve monitoring..", "broad-action"),
        ("Investigate the outage", "unbounded-investigation"),
    ],
)
def test_every_kind_of_weak_action_is_named_as_such(title: str, rule: str):
    (finding,) = check_action_title(title, "actions[0].title", LEXICON)
    assert (finding.rule, finding.kind, finding.field) == (rule, "action", "actions[0].title")
    assert finding.sentence == title


def test_only_trailing_full_stops_are_ignored_in_an_action_title():
    assert check_action_title(".Improve monitoring", "t", LEXICON) == []
    assert check_action_title("Improve monitoring.X", "t", LEXICON) == []
    assert check_action_title("Improve monitoring .", "t", LEXICON) == []


def test_a_document_is_checked_line_by_line_with_its_people():
    text = "Zqxwv forgot to drain the node.\nAll good here.\nObviously it was late."
    found = check_document(text, LEXICON, ["zqxwv@example.com"])
    assert [(f.field, f.rule) for f in found] == [("line 1", "failed-to"), ("line 3", "obviously")]
    assert [f.rule for f in check_document(text, LEXICON)] == ["obviously"]


def _state(**overrides: object) -> PostmortemState:
    incident = Incident(
        id="I1",
        title="t",
        severity=Severity.SEV2,
        team="payments",
        resolved_at=NOW,
        summary="Obviously the cache was cold.",
        responders=["sam@example.com"],
    )
    fields: dict[str, object] = {
        "workflow_id": "w",
        "incident": incident,
        "owner": "zqxwv@example.com",
        "timeline": [
            TimelineEntry(at=NOW, text="Zqxwv broke the config.", known="Obviously nothing."),
        ],
        "findings": ReviewOutcome(
            summary="Human error.",
            impact="If only it had been caught.",
            contributing_factors=[
                ContributingFactor(category=FactorCategory.OTHER, description="No check.")
            ],
            proximate_cause="The config was wrong.",
            root_cause="Sam should have reviewed it.",
            went_badly=["Sam missed the alert."],
            got_lucky=["Of course the backup worked."],
            accepted_at=NOW,
        ),
        "actions": [
            CorrectiveAction(
                id="a1",
                title="Add a config check",
                description="Kim ignored the warning.",
                type=ActionType.PREVENT,
                owner="kim@example.com",
                team="payments",
                due=NOW + timedelta(days=9),
            )
        ],
    }
    fields.update(overrides)
    return PostmortemState.model_validate(fields)


def test_every_field_of_a_post_mortem_is_read_by_its_name():
    found = [(f.field, f.rule) for f in check_postmortem(_state(), LEXICON)]
    assert found == [
        ("summary", "obviously"),
        ("timeline[0].text", "person-failure"),
        ("timeline[0].known", "obviously"),
        ("findings.summary", "human-error"),
        ("findings.impact", "if-only"),
        ("root_cause", "should-have"),
        ("went_badly[0]", "person-failure"),
        ("got_lucky[0]", "obviously"),
        ("actions[0].description", "ignored"),
    ]


def test_the_owner_is_a_possible_subject_only_as_the_owner():
    found = [(f.field, f.rule) for f in check_postmortem(_state(owner=None), LEXICON)]
    assert ("timeline[0].text", "person-failure") not in found


def _note(acknowledged: bool) -> BlamelessNote:
    return BlamelessNote(
        id=f"obviously-{int(acknowledged)}",
        rule="obviously",
        kind="hindsight",
        field="summary",
        sentence="Obviously.",
        reason="r",
        suggestion="s",
        acknowledged=acknowledged,
    )


@pytest.mark.parametrize(
    ("notes", "enforced", "open_ids", "holds"),
    [
        ([], True, [], False),
        ([True], True, [], False),
        ([False], True, ["obviously-0"], True),
        ([True, False], True, ["obviously-0"], True),
        ([False], False, ["obviously-0"], False),
    ],
)
def test_the_gate_holds_only_for_open_findings_while_enforced(
    notes: list[bool], enforced: bool, open_ids: list[str], holds: bool
):
    state = _state(blameless=[_note(a) for a in notes], blameless_enforced=enforced)
    assert [n.id for n in state.blameless_open] == open_ids
    assert state.blameless_holds is holds
