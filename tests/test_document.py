"""The rendered post-mortem document: every section, in order, from the state."""

from datetime import UTC, datetime, timedelta

import pytest

from domain.document import (
    document_name,
    public_view,
    redact,
    render,
    render_html,
    render_markdown,
    slug,
)
from domain.models import (
    ActionState,
    ActionType,
    BlamelessNote,
    ContributingFactor,
    CorrectiveAction,
    FactorCategory,
    Incident,
    Phase,
    PostmortemState,
    ReviewOutcome,
    Severity,
    TicketRef,
    TimelineEntry,
)

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)


def state(**overrides) -> PostmortemState:
    incident = Incident(
        id="INC-7",
        title="Search | latency",
        severity=Severity.SEV1,
        team="platform",
        started_at=NOW - timedelta(hours=3, minutes=15),
        resolved_at=NOW,
    )
    fields = {
        "workflow_id": incident.workflow_id,
        "incident": incident,
        "phase": Phase.FOLLOWING_UP,
        "owner": "owner@example.com",
        "timeline": [
            TimelineEntry(
                at=NOW - timedelta(hours=1), text="Rolled back", known="Deploy suspected"
            ),
            TimelineEntry(at=NOW - timedelta(hours=3), text="Latency alert fired"),
        ],
        "findings": ReviewOutcome(
            summary="Search was slow.",
            impact="p99 at 9 s for 3 hours.",
            contributing_factors=[
                ContributingFactor(
                    category=FactorCategory.MONITORING_GAP, description="No p99 alert"
                ),
                ContributingFactor(category=FactorCategory.PROCESS_GAP, description="No load test"),
                ContributingFactor(category=FactorCategory.MONITORING_GAP, description="No SLO"),
            ],
            proximate_cause="An unindexed query.",
            root_cause="Queries reach production without a plan check.",
            went_well=["Fast rollback"],
            went_badly=[],
            got_lucky=["Weekend traffic"],
            accepted_at=NOW,
        ),
        "actions": [
            CorrectiveAction(
                id="a1",
                title="Add p99 alert",
                type=ActionType.DETECT,
                owner="kim@example.com",
                team="platform",
                due=NOW + timedelta(days=15),
                ticket=TicketRef(tracker="local", key="PLAT-2", url="local://tickets/PLAT-2"),
                state=ActionState.DONE,
                state_reason="closed in the tracker",
            )
        ],
    }
    fields.update(overrides)
    return PostmortemState(**fields)


def test_every_section_is_rendered_in_order():
    text = render_markdown(state(), rendered_at=NOW)
    headings = [line for line in text.splitlines() if line.startswith("#")]
    assert headings == [
        "# Post-mortem: Search | latency",
        "## Summary",
        "## Impact",
        "## Timeline",
        "## Contributing factors",
        "### Process gaps",
        "### Monitoring and detection gaps",
        "## Causes",
        "## What went well",
        "## What went badly",
        "## Where we got lucky",
        "## Corrective actions",
    ]
    assert "| Duration | 3 h 15 min |" in text
    assert "| Proximate cause | Root cause |" in text
    assert "| An unindexed query. | Queries reach production without a plan check. |" in text
    assert "- No p99 alert\n- No SLO" in text
    assert "[PLAT-2](local://tickets/PLAT-2)" in text
    assert "done (closed in the tracker)" in text
    assert "Phase: following_up · Last update: 2026-11-26 12:00 UTC" in text


def test_timeline_is_chronological_with_what_was_known():
    text = render_markdown(state(), rendered_at=NOW)
    alert, rollback = text.index("Latency alert fired"), text.index("Rolled back")
    assert alert < rollback
    assert "| Rolled back | Deploy suspected |" in text


def test_table_cells_cannot_break_the_table():
    text = render_markdown(
        state(timeline=[TimelineEntry(at=NOW, text="a | b\nc")]), rendered_at=NOW
    )
    assert "| a \\| b c |" in text


def test_draft_before_review_says_what_is_still_to_come():
    text = render_markdown(
        state(findings=None, actions=[], phase=Phase.REVIEW_SCHEDULED), rendered_at=NOW
    )
    assert "_To be found in the review._" in text
    assert "## What went well" not in text
    assert "_None yet._" in text


def test_document_name_is_stable_and_safe():
    assert document_name(state()) == "2026/inc-7-search-latency"
    assert slug("Ünïcode / ../../etc") == "unicode-etc"
    assert slug("") == "postmortem"


def test_html_page_has_every_section_and_escapes_text():
    from html.parser import HTMLParser

    hostile = state(
        timeline=[TimelineEntry(at=NOW, text="<script>alert(1)</script>", known="a & b")]
    )
    page = render_html(hostile, rendered_at=NOW)

    class Sections(HTMLParser):
        ids: list[str] = []

        def handle_starttag(self, tag, attrs):
            if tag == "h2":
                self.ids.append(dict(attrs)["id"])

    parser = Sections()
    parser.feed(page)
    assert parser.ids == [
        "summary",
        "impact",
        "timeline",
        "factors",
        "causes",
        "went-well",
        "went-badly",
        "got-lucky",
        "actions",
    ]
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "a &amp; b" in page
    assert "<h3>Monitoring and detection gaps</h3>" in page
    assert (
        "<td>An unindexed query.</td><td>Queries reach production without a plan check.</td>"
        in page
    )
    assert '<a href="local://tickets/PLAT-2">PLAT-2</a>' in page
    assert "Phase: following_up · Last update: 2026-11-26 12:00 UTC" in page
    assert page.startswith("<!doctype html>") and "<style>" in page  # standalone


def test_the_draft_shows_the_blameless_check_to_the_facilitator():
    note = BlamelessNote(
        id="human-error-1234abcd",
        rule="human-error",
        kind="blame",
        field="root_cause",
        sentence="Human error.",
        reason="Names a person as the cause.",
        suggestion="Say what made the error easy to make.",
    )
    draft = render(state(), rendered_at=NOW, blameless=[note], draft=True)
    published = render(state(), rendered_at=NOW, blameless=[note])
    assert "## Blameless check (for the facilitator)" in draft.markdown
    assert "`human-error-1234abcd` root_cause" in draft.markdown
    assert 'id="blameless-check"' in draft.html and "Draft: read it before the review" in draft.html
    assert "Blameless check" not in published.markdown + published.html


def test_private_timeline_entries_stay_out_of_the_public_view():
    secret = TimelineEntry(at=NOW, text="Customer ACME paged us", private=True)
    view = public_view(state(timeline=[secret, *state().timeline]))
    assert [e.text for e in view.timeline] == ["Rolled back", "Latency alert fired"]


def test_secret_like_strings_are_redacted():
    text = (
        "token=abcdef123456 and ghp_" + "x" * 36 + " and https://bob:pw@db.internal/x "
        "and -----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY----- and hunter2!!"
    )
    redacted, count = redact(text, ["hunter2!!"])
    assert count == 5
    for leaked in ("abcdef123456", "ghp_", "bob:pw", "MIIE", "hunter2"):
        assert leaked not in redacted
    assert redact("the deploy token rotation runbook", [])[1] == 0  # prose is left alone


def test_a_closed_post_mortem_ends_with_its_closing_summary():
    from domain.models import PhaseChange

    base = state()
    dropped = base.actions[0].model_copy(
        update={
            "id": "a2",
            "title": "Rewrite search",
            "state": ActionState.DROPPED,
            "state_reason": "superseded by a2b",
        }
    )
    done = base.actions[0].model_copy(update={"completed_at": NOW + timedelta(days=3)})
    closed = state(
        phase=Phase.CLOSED,
        actions=[done, dropped],
        phase_history=[PhaseChange(phase=Phase.CLOSED, at=NOW + timedelta(days=20))],
    )
    text = render_markdown(closed, rendered_at=NOW)
    assert "## Closing summary" in text
    assert (
        "Closed 2026-12-16 12:00 UTC: 1 of 2 corrective action(s) done (1 by their due date), "
        "1 dropped with a reason." in text
    )
    assert "- Dropped: Rewrite search (superseded by a2b)" in text
    assert 'id="closing"' in render_html(closed, rendered_at=NOW)
    assert "Closing summary" not in render_markdown(state(), rendered_at=NOW)


def test_times_are_shown_in_utc_whatever_offset_they_came_with():
    from datetime import timezone

    from domain.notices import when

    berlin = datetime(2030, 1, 7, 10, 0, tzinfo=timezone(timedelta(hours=1)))
    assert when(berlin) == "Mon 2030-01-07 09:00 UTC"
    text = render_markdown(
        state(timeline=[TimelineEntry(at=berlin, text="Paged")]), rendered_at=NOW
    )
    assert "| 2030-01-07 09:00 UTC | Paged |" in text


@pytest.mark.parametrize(
    ("cell", "written"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+1+cmd|' /C calc'!A0", "'+1+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tTAB", "'\tTAB"),
        ("Add a canary stage", "Add a canary stage"),
        (-3, -3),
        (12, 12),
        ("", ""),
    ],
)
def test_csv_cells_that_look_like_formulas_are_written_as_text(cell: object, written: object):
    from domain.export import spreadsheet_safe

    assert spreadsheet_safe(cell) == written
