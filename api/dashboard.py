"""The managers' dashboard's JSON API (the pages in api/pages.py read the same helpers).

Lists and counts come from the record (record/reads.py): every post-mortem that ever ran,
whatever Temporal's retention deleted. A post-mortem's own document asks its workflow while
Temporal keeps it, then the record. Viewers read; operators may also reschedule, acknowledge and
cancel."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from pydantic import AwareDatetime, BaseModel, Field, StringConstraints
from temporalio.client import (
    Client,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.service import RPCError, RPCStatusCode

import engine
import readmodel
from api.answers import Problem, Refused
from api.deps import Operator, RecordDep, SettingsDep, Temporal, Viewer
from api.postmortems import state_of
from config import Settings, load_routing
from domain.export import spreadsheet_safe
from domain.messages import (
    AcknowledgeInput,
    BeginInput,
    CancelInput,
    RescheduleReviewInput,
    RouteInput,
    VerifyActionInput,
)
from domain.models import Name, Phase, PostmortemState, Severity
from record import reads
from record.store import Record
from workflows.postmortem import PostmortemWorkflow

PAGE = 50


# -- the JSON API's documents -------------------------------------------------------------


class Completion(BaseModel):
    done: int
    due: int
    rate: float | None


class Week(BaseModel):
    week_start: str
    opened: int
    closed: int


class OverviewOut(BaseModel):
    now: datetime
    team: str | None = None
    phases: dict[str, int]
    overdue_by_team: dict[str, int]
    ageing: dict[str, int]
    late_reviews: int
    completion_90d: dict[str, Completion]
    weeks: list[Week]


class PostmortemPage(BaseModel):
    items: list[engine.PostmortemRow]
    next_page_token: str | None = Field(description="Pass as page_token for the next page")


class ActionPage(BaseModel):
    total: int
    offset: int
    limit: int
    items: list[engine.ActionRow]


class PostmortemDetail(BaseModel):
    state: PostmortemState
    temporal_ui_url: str
    draft_url: str
    review_ics_url: str
    public_url: str


class Done(BaseModel):
    workflow_id: str
    done: bool


class RescheduleBody(BaseModel):
    at: AwareDatetime
    reason: str = ""


# Said in words: not blank (the document says so too, with the pattern).
Words = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20_000, pattern=r"\S")
]


class AcknowledgeBody(BaseModel):
    finding_ids: list[str] = Field(min_length=1)
    note: Words


class CancelBody(BaseModel):
    reason: Words


Team = Annotated[
    str | None,
    Query(pattern=r"^[^'\"\\\x00-\x1f]{0,200}$", description="Only this team"),
]
# An empty value (a filter form's "all") means no filter.
Sev = Annotated[
    str | None,
    Query(pattern=r"^(SEV[1-5])?$", description="Only this severity (SEV1..SEV5)"),
]


def severity_of(value: str | None) -> Severity | None:
    return Severity(value) if value else None


Offset = Annotated[int, Query(ge=0, le=1_000_000)]
Limit = Annotated[int, Query(ge=1, le=500)]


def now() -> datetime:
    return datetime.now(UTC)


def teams(settings: Settings) -> list[str]:
    return sorted(load_routing(settings.teams_file).teams)


def overview_cache(request: Request) -> readmodel.OverviewCache:
    cache: readmodel.OverviewCache = request.app.state.overviews
    return cache


Overviews = Annotated[readmodel.OverviewCache, Depends(overview_cache)]


async def overdue_data(
    record: Record,
    team: str | None,
    severity: Severity | None,
    offset: int,
    limit: int,
    overdue: bool = True,
) -> ActionPage:
    moment = now()
    total, rows = await asyncio.to_thread(
        reads.ranked_actions,
        record,
        team=team,
        severity=severity.value if severity else None,
        offset=offset,
        limit=limit,
        overdue=overdue,
    )
    items = [r.row(moment) for r in rows]
    return ActionPage(total=total, offset=offset, limit=limit, items=items)


def detail_of(settings: Settings, state: PostmortemState) -> PostmortemDetail:
    wid = state.workflow_id
    ns = settings.temporal_namespace
    base = settings.public_url.rstrip("/")
    return PostmortemDetail(
        state=state,
        temporal_ui_url=f"{settings.ui_url}/namespaces/{ns}/workflows/{wid}",
        draft_url=f"{base}/postmortems/{wid}/draft",
        review_ics_url=f"{base}/postmortems/{wid}/review.ics",
        public_url=f"{base}/postmortems/{wid}/public",
    )


class OperationRefused(Exception):
    """An operation the post-mortem did not take: `status` (404, 409) and the reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


async def act(temporal: Client, record: Record, workflow_id: str, update: Any, arg: Any) -> None:
    """Run an operator's update on a post-mortem, or raise OperationRefused saying why not."""
    handle = temporal.get_workflow_handle_for(PostmortemWorkflow.run, workflow_id)
    try:
        await handle.execute_update(update, arg, rpc_timeout=engine.WORKER_WAIT)
    except WorkflowUpdateRPCTimeoutOrCancelledError:
        raise OperationRefused(503, "the post-mortem is not answering; try again") from None
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        raise OperationRefused(409, str(getattr(cause, "message", cause))) from None
    except RPCError as exc:
        if exc.status is not RPCStatusCode.NOT_FOUND:
            raise
        try:  # an ended workflow takes no update; say so rather than "not found"
            ended = await handle.describe()
        except RPCError:
            # Deleted by Temporal's retention: the record says it ended.
            recorded = await asyncio.to_thread(record.get, workflow_id)
            if recorded is not None:
                phase = recorded.state.phase.value
                raise OperationRefused(409, f"this post-mortem has ended ({phase})") from None
            raise OperationRefused(404, f"no post-mortem {workflow_id!r}") from None
        status = ended.status.name.lower() if ended.status else "closed"
        raise OperationRefused(409, f"this post-mortem has ended ({status})") from None


# -- the JSON API ----------------------------------------------------------------------------

router = APIRouter(prefix="/api", tags=["dashboard"])


@router.get("/overview", response_model=OverviewOut)
async def api_overview(_: Viewer, overviews: Overviews, team: Team = None) -> OverviewOut:
    """Counts by phase, overdue actions by team, ageing, late reviews, completion by type
    over 90 days, actions opened and closed per week."""
    data = await overviews.get(team or None)
    return OverviewOut.model_validate(data.as_json() | {"team": team or None})


@router.get("/postmortems", response_model=PostmortemPage, responses={400: {"model": Problem}})
async def api_postmortems(
    _: Viewer,
    record: RecordDep,
    team: Team = None,
    severity: Sev = None,
    phase: Annotated[Phase | None, Query()] = None,
    overdue: Annotated[bool, Query(description="Only those with overdue actions")] = False,
    late_review: Annotated[bool, Query(description="Only those whose review is late")] = False,
    page_size: Limit = PAGE,
    page_token: Annotated[str | None, Query(max_length=4000)] = None,
) -> PostmortemPage:
    """Post-mortems from the record (closed ones too, whatever Temporal's retention deleted),
    newest first, a page at a time."""
    found = reads.PostmortemFilter(
        phase=None if late_review else phase,
        team=team or None,
        severity=None if late_review else severity or None,
        overdue=overdue and not late_review,
        late_at=now() if late_review else None,
    )
    try:
        rows, following = await asyncio.to_thread(
            reads.postmortem_page, record, found, limit=page_size, page_token=page_token
        )
    except reads.BadPageToken as exc:
        raise Refused(400, str(exc)) from None
    return PostmortemPage(items=rows, next_page_token=following)


@router.get(
    "/postmortems/{workflow_id}",
    response_model=PostmortemDetail,
    responses={404: {"model": Problem}},
)
async def api_postmortem(
    _: Viewer, settings: SettingsDep, temporal: Temporal, record: RecordDep, workflow_id: str
) -> PostmortemDetail:
    """One post-mortem's whole state (asked of its workflow; once Temporal deleted it, as
    the record has it) and its links."""
    return detail_of(settings, await state_of(temporal, record, workflow_id))


@router.get("/actions", response_model=ActionPage)
async def api_actions(
    _: Viewer,
    record: RecordDep,
    overdue: Annotated[
        bool, Query(description="true: overdue, most overdue first; false: open, not overdue")
    ] = True,
    team: Team = None,
    severity: Sev = None,
    offset: Offset = 0,
    limit: Limit = PAGE,
) -> ActionPage:
    """Open corrective actions by due date: the overdue ones, or the ones still on time."""
    return await overdue_data(record, team or None, severity_of(severity), offset, limit, overdue)


OPERATED: dict[str, Any] = {
    "responses": {404: {"model": Problem}, 409: {"model": Problem}, 503: {"model": Problem}},
    "response_model": Done,
    "tags": ["operations"],
}


async def operated(
    temporal: Client, record: Record, workflow_id: str, update: Any, arg: Any
) -> Done:
    try:
        await act(temporal, record, workflow_id, update, arg)
    except OperationRefused as refused:
        raise Refused(refused.status, refused.reason) from None
    return Done(workflow_id=workflow_id, done=True)


@router.post("/postmortems/{workflow_id}/schedule", **OPERATED)
async def api_schedule(
    _: Operator, temporal: Temporal, record: RecordDep, workflow_id: str, body: RescheduleBody
) -> Done:
    """Operators only: move the review (outside the window it needs a reason)."""
    arg = RescheduleReviewInput(at=body.at, reason=body.reason)
    return await operated(temporal, record, workflow_id, PostmortemWorkflow.schedule_review, arg)


@router.post("/postmortems/{workflow_id}/acknowledge", **OPERATED)
async def api_acknowledge(
    _: Operator, temporal: Temporal, record: RecordDep, workflow_id: str, body: AcknowledgeBody
) -> Done:
    """Operators only: keep the wording of blameless-check findings, with a note why."""
    arg = AcknowledgeInput(finding_ids=body.finding_ids, note=body.note)
    return await operated(
        temporal, record, workflow_id, PostmortemWorkflow.acknowledge_findings, arg
    )


class RouteBody(BaseModel):
    team: Name
    reason: str = Field(default="", max_length=2000)


class BeginBody(BaseModel):
    reason: str = Field(default="", max_length=2000)


@router.post("/postmortems/{workflow_id}/route", **OPERATED)
async def api_route(
    _: Operator, temporal: Temporal, record: RecordDep, workflow_id: str, body: RouteBody
) -> Done:
    """Operators only: place the post-mortem with a team (an unrouted one, or a wrong guess);
    its policy, owner and calendar apply from then on."""
    arg = RouteInput(team=body.team, reason=body.reason)
    return await operated(temporal, record, workflow_id, PostmortemWorkflow.route, arg)


@router.post("/postmortems/{workflow_id}/begin", **OPERATED)
async def api_begin(
    _: Operator, temporal: Temporal, record: RecordDep, workflow_id: str, body: BeginBody
) -> Done:
    """Operators only: start an optional post-mortem (recorded as "optional, not started")."""
    arg = BeginInput(reason=body.reason)
    return await operated(temporal, record, workflow_id, PostmortemWorkflow.begin, arg)


@router.post("/postmortems/{workflow_id}/cancel", **OPERATED)
async def api_cancel(
    _: Operator, temporal: Temporal, record: RecordDep, workflow_id: str, body: CancelBody
) -> Done:
    """Operators only: cancel the post-mortem, with the reason."""
    arg = CancelInput(reason=body.reason)
    return await operated(temporal, record, workflow_id, PostmortemWorkflow.cancel, arg)


class VerifyBody(BaseModel):
    worked: bool
    note: str = Field(default="", max_length=20_000, description="What showed it")


# An action's id, as the engine gives it (domain/models.py): checked before Temporal is asked.
ActionPath = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9-]{0,39}$")]


@router.post("/postmortems/{workflow_id}/actions/{action_id}/verify", **OPERATED)
async def api_verify(
    _: Operator,
    temporal: Temporal,
    record: RecordDep,
    workflow_id: str,
    action_id: ActionPath,
    body: VerifyBody,
) -> Done:
    """Operators only: whether a done action worked. One that did not (a note says what
    showed it) opens a follow-up action to revisit it; an answer is given once."""
    arg = VerifyActionInput(action_id=action_id, worked=body.worked, note=body.note)
    return await operated(temporal, record, workflow_id, PostmortemWorkflow.verify_action, arg)


# Outside /api: a link a manager can open in a spreadsheet.
exports = APIRouter(tags=["dashboard"])


@exports.get(
    "/overdue.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": "Every overdue action"}},
)
async def overdue_csv(
    _: Viewer, record: RecordDep, team: Team = None, severity: Sev = None
) -> Response:
    """Every overdue action (same filters as /overdue), most overdue first, as CSV."""
    moment = now()
    total_and_rows = await asyncio.to_thread(
        reads.ranked_actions, record, team=team or None, severity=severity, limit=100_000
    )
    rows = total_and_rows[1]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            "days_overdue",
            "due",
            "action",
            "owner",
            "team",
            "severity",
            "incident",
            "postmortem",
            "ticket",
            "ticket_url",
            "escalation_level",
            "last_reminder",
        ]
    )
    for r in rows:
        writer.writerow(
            spreadsheet_safe(cell)
            for cell in [
                r.days_overdue(moment),
                r.due.isoformat() if r.due else "",
                r.title,
                r.owner,
                r.team,
                r.severity,
                r.incident_id,
                r.postmortem_id,
                r.ticket,
                r.ticket_url,
                r.escalation_level,
                r.last_reminder_at.isoformat() if r.last_reminder_at else "",
            ]
        )
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="overdue.csv"'},
    )
