"""The review's calendar invitation: an RFC 5545 event made with the icalendar package.

One event per post-mortem: its UID never changes, a reschedule raises its SEQUENCE, and a
cancelled post-mortem sends METHOD:CANCEL for the same UID, so calendars update in place."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from icalendar import Calendar, Event, vCalAddress, vText

from domain.models import PostmortemDocument, ReviewSlot
from domain.related import still_open

Method = Literal["REQUEST", "CANCEL", "PUBLISH"]
PRODID = "-//postmortem-engine//review invitation//EN"


def event_uid(workflow_id: str) -> str:
    return f"{workflow_id}@postmortem-engine"


def is_address(who: str) -> bool:
    local, at, domain = who.partition("@")
    return bool(at and local and "." in domain and " " not in who)


def _address(email: str, name: str | None = None, **params: str) -> vCalAddress:
    address = vCalAddress(f"mailto:{email}")
    if name:
        address.params["CN"] = vText(name)
    for key, value in params.items():
        address.params[key.replace("_", "-").upper()] = vText(value)
    return address


def review_links(base_url: str, workflow_id: str) -> dict[str, str]:
    base = base_url.rstrip("/")
    return {
        "draft": f"{base}/postmortems/{workflow_id}/draft",
        "ics": f"{base}/postmortems/{workflow_id}/review.ics",
    }


def describe(state: PostmortemDocument, slot: ReviewSlot, draft_link: str) -> str:
    incident = state.incident
    lines = [
        f"Blameless post-mortem review of incident {incident.id} ({incident.severity}): "
        f"{incident.title}.",
        "",
        f"Draft (timeline and what was known at each point): {draft_link}",
        f"Facilitator: {slot.facilitator or 'the post-mortem owner'}",
        f"Owner: {state.owner or 'unassigned'}",
        f"Participants: {', '.join(slot.participants) or '-'}",
        "",
        "We ask what about the system allowed this to happen: process, tooling, ownership, "
        "safeguards, detection and documentation. Not who.",
    ]
    if slot.outside_window and slot.reason:
        lines += ["", f"Outside the review window: {slot.reason}"]
    if state.related_summary:
        lines += ["", f"Related: {state.related_summary}"]
    open_before = still_open(state.related)
    if open_before:
        # Called out to the facilitator: the review should ask why these are still open.
        lines += ["", "For the facilitator: still open from earlier post-mortems on this service:"]
        lines += [
            f"- {a.title} ({r.incident_id}; owner {a.owner}; due {a.due:%Y-%m-%d}"
            + (f"; {a.ticket.key}" if a.ticket else "")
            + ")"
            for r, a in open_before
        ]
    return "\n".join(lines)


def review_event(
    state: PostmortemDocument,
    *,
    method: Method,
    organizer: str,
    base_url: str,
    stamp: datetime,
) -> bytes:
    """The calendar with the review's one event. `stamp` is DTSTAMP (when it was made)."""
    slot = state.review
    if slot is None:
        raise ValueError(f"{state.workflow_id} has no review scheduled yet")
    links = review_links(base_url, state.workflow_id)
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("method", method)
    event = Event()
    event.add("uid", event_uid(state.workflow_id))
    # A cancellation is a change of the event too: it must outrank the last invitation.
    event.add("sequence", slot.sequence + (1 if method == "CANCEL" else 0))
    event.add("dtstamp", stamp)
    event.add("dtstart", slot.start)
    event.add("dtend", slot.start + timedelta(minutes=slot.duration_minutes))
    event.add(
        "summary",
        f"Post-mortem review: {state.incident.title} ({state.incident.severity}, "
        f"{state.incident.id})",
    )
    event.add("description", describe(state, slot, links["draft"]))
    event.add("url", links["draft"])
    if slot.location:
        event.add("location", slot.location)
    event.add("status", "CANCELLED" if method == "CANCEL" else "CONFIRMED")
    event.add("organizer", _address(organizer, "Post-mortem engine"))
    for person in slot.participants:
        if not is_address(person):
            continue  # named in the description; a calendar needs an address
        chair = slot.facilitator is not None and person == slot.facilitator
        event.add(
            "attendee",
            _address(
                person,
                role="CHAIR" if chair else "REQ-PARTICIPANT",
                partstat="NEEDS-ACTION",
                rsvp="TRUE",
            ),
        )
    calendar.add_component(event)
    return bytes(calendar.to_ical())


def invitation_message(state: PostmortemDocument, kind: str, base_url: str) -> tuple[str, str]:
    """Subject and text of the email carrying the event: the invitation ("request"), its
    cancellation ("cancel") or the reminder the day before ("reminder")."""
    slot, incident = state.review, state.incident
    if slot is None:
        raise ValueError(f"{state.workflow_id} has no review scheduled yet")
    draft = review_links(base_url, state.workflow_id)["draft"]
    subject = {
        "request": "Invitation" if slot.sequence == 0 else "Updated invitation",
        "cancel": "Cancelled",
        "reminder": "Reminder, tomorrow",
    }[kind] + f": post-mortem review of {incident.id} ({incident.title})"
    text = describe(state, slot, draft)
    if kind == "reminder":
        text = (
            "The review is tomorrow. Please read the draft and note what you knew at each "
            f"decision point: {draft}\n\n{text}"
        )
    elif kind == "cancel":
        text = f"The post-mortem was cancelled: {state.cancel_reason or ''}\n\n{text}"
    return subject, text
