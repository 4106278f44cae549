"""Read-only pages of one post-mortem: its review invitation (.ics) and its live draft."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime

from fastapi import APIRouter, HTTPException
from fastapi.responses import HTMLResponse, JSONResponse, Response
from temporalio.client import Client, WorkflowQueryFailedError

import engine
from api.deps import RecordDep, SettingsDep, Temporal, Viewer
from config import routed_teams
from domain.blameless import check_postmortem
from domain.document import render_html
from domain.invitation import review_event
from domain.models import Phase, PostmortemState
from integrations.lexicon import load_lexicon
from record import related
from record.store import Record

# Post-mortem ids are `postmortem-<source>-<incident>`: a safe alphabet, no slashes.
_ID = re.compile(r"^postmortem-[A-Za-z0-9][A-Za-z0-9._:-]{0,200}$")


async def state_of(client: Client, record: Record, workflow_id: str) -> PostmortemState:
    """A post-mortem's state for a page or the API: from its workflow while Temporal keeps it,
    then from the record. A 404 when neither knows it, a 503 when its workflow cannot answer
    (the app answers both as {"error": ...})."""
    if not _ID.match(workflow_id):
        raise HTTPException(404, f"{workflow_id!r} is not a post-mortem id")
    try:
        state = await engine.postmortem_state(client, workflow_id, record)
    except WorkflowQueryFailedError as exc:
        raise HTTPException(503, f"the post-mortem cannot answer: {exc}") from None
    if state is None:
        raise HTTPException(404, f"no post-mortem {workflow_id!r}")
    # The later post-mortems that found this one related (from the record).
    enriched: PostmortemState = await asyncio.to_thread(related.both_ways, record, state)
    return enriched


router = APIRouter(tags=["post-mortem"])


@router.get(
    "/postmortems/{workflow_id}/review.ics",
    response_class=Response,
    responses={
        200: {"content": {"text/calendar": {}}, "description": "The review's event"},
        404: {"description": "No such post-mortem"},
        409: {"description": "No review scheduled yet"},
    },
)
async def review_ics(
    workflow_id: str, _: Viewer, settings: SettingsDep, temporal: Temporal, record: RecordDep
) -> Response:
    """The review as an iCalendar event: the same UID and SEQUENCE as the emailed one."""
    state = await state_of(temporal, record, workflow_id)
    if state.review is None:
        return JSONResponse({"error": "the review is not scheduled yet"}, 409)
    cancelled = state.phase is Phase.CANCELLED and state.findings is None
    ics = review_event(
        state,
        method="CANCEL" if cancelled else "PUBLISH",
        organizer=settings.smtp_from,
        base_url=settings.public_url,
        stamp=state.updated_at or datetime.now(UTC),
    )
    return Response(
        ics,
        media_type="text/calendar; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{workflow_id}-review.ics"'},
    )


@router.get(
    "/postmortems/{workflow_id}/draft",
    response_class=HTMLResponse,
    responses={404: {"description": "No such post-mortem"}},
)
async def draft(
    workflow_id: str, _: Viewer, settings: SettingsDep, temporal: Temporal, record: RecordDep
) -> Response:
    """The document as it stands, for the participants to read before the review, with
    the blameless check's findings for the facilitator."""
    state = await state_of(temporal, record, workflow_id)
    # Before the review, the check runs here on the draft as it is; after, its record.
    lexicon = load_lexicon(settings.blameless_language)
    # In a thread: a large post-mortem's check takes a second or two, the event loop must not.
    notes = state.blameless or await asyncio.to_thread(
        check_postmortem, state, lexicon, routed_teams(settings)
    )
    html = render_html(
        state,  # the whole draft, private entries too: it is for the participants
        rendered_at=datetime.now(UTC),
        blameless=notes,
        draft=True,
    )
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})
