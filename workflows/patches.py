"""Every `workflow.patched` id, in one place. A workflow recorded before a change replays the
old way (tests/histories/ hold such recordings); the ids never change once released."""

# The dashboard's search attributes (and the follow-up's memo) on both workflows.
DASHBOARD_ATTRIBUTES = "dashboard-attributes"
# The blameless check at the review, and the publication gate.
BLAMELESS_CHECK = "blameless-check"
# The emailed iCalendar invitation, its reminder and its cancellation.
REVIEW_INVITATION = "review-invitation"
# A review planned or moved to less than the reminder's lead time away gets no separate
# "tomorrow" reminder right after its invitation: the invitation is the reminder.
NO_REMINDER_BEHIND_INVITATION = "no-reminder-behind-invitation"
# A tracker webhook makes the follow-up read the ticket instead of believing the webhook.
VERIFY_TRACKER_HINTS = "verify-tracker-hints"
# An optional post-mortem (its severity's policy does not require one) is recorded and waits
# for an operator to begin it.
OPTIONAL_POSTMORTEMS = "optional-postmortems"
# A ticket reopened after its follow-up ended: the tracker is read before the action reopens.
VERIFY_REOPEN = "verify-reopen"
# Escalations and late-review notices count from the last one sent, not from the deadline:
# a backfilled incident or a worker back from an outage sends one notice, not a burst.
NOTICES_FROM_NOW = "notices-from-now"
# Bounded state: typed problems (one per kind and action, the newest kept), capped phase
# history, filing in batches with continue-as-new between them, failed steps held for
# `postmortem retry`, and input refused beyond the record's limit.
BOUNDED_STATE = "bounded-state"
# A blameless check that could not run holds publication (it failed open before) until it
# runs: after `postmortem retry`, or a revision of the findings.
BLAMELESS_FAILS_CLOSED = "blameless-fails-closed"
# Each change of a post-mortem is projected into the record (ARCHITECTURE.md, "Two stores"),
# which outlives Temporal's retention.
RECORD_PROJECTION = "record-projection"
# Earlier post-mortems of the same service or with similar findings are looked up in the
# record when a post-mortem starts and when its findings are recorded.
RELATED_POSTMORTEMS = "related-postmortems"
# Did the action work? A done action's owner is asked `verify_after_days` after it was done;
# the post-mortem closes once every such question is answered or left unanswered.
ACTION_VERIFICATION = "action-verification"
# An answer given while the run was about to continue as new is said on the action's ticket
# before it does (the answers to say were kept in the run's memory, and lost with it).
ANSWERS_BEFORE_CONTINUE = "answers-before-continue"
