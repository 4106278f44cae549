"""The managers' dashboard: server-rendered pages and the JSON API behind them.

Lists and counts come from Temporal visibility (readmodel.py); only a post-mortem's own
page asks its workflow. Viewers read; operators may also reschedule, acknowledge and cancel."""

from __future__ import annotations

import base64
import csv
import io
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Annotated, Any, Literal
from urllib.parse import quote_plus

import jinja2
from fastapi import Depends, FastAPI, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import AwareDatetime, BaseModel, Field, StringConstraints, ValidationError
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

import engine
import readmodel
from api.access import (
    COOKIE,
    SESSION_SECONDS,
    Role,
    csrf_ok,
    require,
    require_csrf,
    role_of,
    secure_request,
    session_cookie,
    token_role,
)
from api.postmortems import state_of
from config import Settings, load_routing
from domain.export import spreadsheet_safe
from domain.findings import describe_validation_error
from domain.messages import AcknowledgeInput, CancelInput, RescheduleReviewInput
from domain.models import Phase, PostmortemState, Severity
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


class Problem(BaseModel):
    error: str


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


# -- pages ----------------------------------------------------------------------------------


@cache
def _templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("api", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["when"] = lambda d: f"{d.astimezone(UTC):%Y-%m-%d %H:%M} UTC" if d else "—"
    env.filters["day"] = lambda d: f"{d:%Y-%m-%d}" if d else "—"
    return env


def page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = _templates().get_template(name).render(**context)
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})


def chart(weeks: list[readmodel.WeekBar], width: int = 640, height: int = 180) -> dict[str, Any]:
    """Bars for an inline SVG: opened and closed actions per week."""
    top = max([1, *(max(w.opened, w.closed) for w in weeks)])
    slot = width / max(1, len(weeks))
    bar = slot * 0.36
    plot = height - 30
    bars = []
    for i, w in enumerate(weeks):
        x = i * slot + slot * 0.12
        for offset, value, kind in ((0.0, w.opened, "opened"), (bar, w.closed, "closed")):
            h = plot * value / top
            bars.append(
                {
                    "x": round(x + offset, 1),
                    "y": round(plot - h, 1),
                    "w": round(bar, 1),
                    "h": round(h, 1),
                    "kind": kind,
                    "value": value,
                    "week": f"{w.week_start:%m-%d}",
                }
            )
    labels = [
        {"x": round(i * slot + slot / 2, 1), "text": f"{w.week_start:%m-%d}"}
        for i, w in enumerate(weeks)
    ]
    return {
        "width": width,
        "height": height,
        "plot": plot,
        "bars": bars,
        "labels": labels,
        "top": top,
    }


def viewer(request: Request) -> Role:
    return require(request, request.app.state.settings, Role.VIEWER)


def operator(request: Request) -> Role:
    role = require(request, request.app.state.settings, Role.OPERATOR)
    # A browser acting with its cookie (or the loopback default) sends the page's token.
    require_csrf(request, request.headers.get("x-csrf-token", ""))
    return role


# Module level: FastAPI resolves these annotations by name (postponed evaluation).
Viewer = Annotated[Role, Depends(viewer)]
Operator = Annotated[Role, Depends(operator)]
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


def add_dashboard_routes(app: FastAPI, settings: Settings, client: Callable[[], Client]) -> None:
    app.state.settings = settings

    def teams() -> list[str]:
        return sorted(load_routing(settings.teams_file).teams)

    def now() -> datetime:
        return datetime.now(UTC)

    overviews = readmodel.OverviewCache(
        lambda team: readmodel.overview(client(), now(), teams(), team=team),
        fresh=timedelta(seconds=settings.overview_cache_seconds),
    )
    app.state.overviews = overviews  # warmed by the app's lifespan

    async def overview_data(team: str | None) -> OverviewOut:
        data = await overviews.get(team)
        return OverviewOut.model_validate(data.as_json() | {"team": team})

    async def overdue_data(
        team: str | None, severity: Severity | None, offset: int, limit: int, overdue: bool = True
    ) -> ActionPage:
        moment = now()
        total, rows = await readmodel.ranked_actions(
            client(),
            moment,
            team=team,
            severity=severity,
            offset=offset,
            limit=limit,
            overdue=overdue,
        )
        items = [r.row(moment) for r in rows]
        return ActionPage(total=total, offset=offset, limit=limit, items=items)

    def detail_of(state: PostmortemState) -> PostmortemDetail:
        wid = state.workflow_id
        ns = settings.temporal_namespace
        base = settings.public_url.rstrip("/")
        return PostmortemDetail(
            state=state,
            temporal_ui_url=f"{settings.ui_url}/namespaces/{ns}/workflows/{wid}",
            draft_url=f"{base}/postmortems/{wid}/draft",
            review_ics_url=f"{base}/postmortems/{wid}/review.ics",
        )

    # -- JSON ----------------------------------------------------------------------------

    @app.get("/api/overview", response_model=OverviewOut, tags=["dashboard"])
    async def api_overview(_: Viewer, team: Team = None) -> OverviewOut:
        """Counts by phase, overdue actions by team, ageing, late reviews, completion by
        type over 90 days, actions opened and closed per week."""
        return await overview_data(team or None)

    @app.get(
        "/api/postmortems",
        response_model=PostmortemPage,
        responses={400: {"model": Problem}},
        tags=["dashboard"],
    )
    async def api_postmortems(
        _: Viewer,
        team: Team = None,
        severity: Sev = None,
        phase: Annotated[Phase | None, Query()] = None,
        overdue: Annotated[bool, Query(description="Only those with overdue actions")] = False,
        late_review: Annotated[bool, Query(description="Only those whose review is late")] = False,
        page_size: Limit = PAGE,
        page_token: Annotated[str | None, Query(max_length=4000)] = None,
    ) -> PostmortemPage | JSONResponse:
        """Post-mortems from visibility, newest first, a page at a time."""
        if late_review:
            query = readmodel.late_reviews_query(now(), team or None)
        else:
            query = engine.postmortem_query(
                phase=phase, team=team or None, severity=severity_of(severity), overdue=overdue
            )
        try:
            token = base64.urlsafe_b64decode(page_token.encode()) if page_token else None
        except ValueError:
            return JSONResponse({"error": "page_token is not one this API gave"}, 400)
        pager = client().list_workflows(query, page_size=page_size, next_page_token=token)
        try:
            await pager.fetch_next_page()
        except RPCError as exc:
            # A made-up token fails in the server's decoding, as INVALID_ARGUMENT or UNKNOWN.
            unavailable = exc.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED)
            if token is not None and not unavailable:
                return JSONResponse({"error": "page_token is not one this API gave"}, 400)
            raise
        rows = [engine.postmortem_row(e, await e.memo()) for e in pager.current_page or []]
        following = pager.next_page_token
        return PostmortemPage(
            items=rows,
            next_page_token=base64.urlsafe_b64encode(following).decode() if following else None,
        )

    @app.get(
        "/api/postmortems/{workflow_id}",
        response_model=PostmortemDetail,
        responses={404: {"model": Problem}},
        tags=["dashboard"],
    )
    async def api_postmortem(_: Viewer, workflow_id: str) -> PostmortemDetail:
        """One post-mortem's whole state (asked of its workflow) and its links."""
        return detail_of(await state_of(client(), workflow_id))

    @app.get("/api/actions", response_model=ActionPage, tags=["dashboard"])
    async def api_actions(
        _: Viewer,
        overdue: Annotated[
            bool, Query(description="true: overdue, most overdue first; false: open, not overdue")
        ] = True,
        team: Team = None,
        severity: Sev = None,
        offset: Offset = 0,
        limit: Limit = PAGE,
    ) -> ActionPage:
        """Open corrective actions by due date: the overdue ones, or the ones still on time."""
        return await overdue_data(team or None, severity_of(severity), offset, limit, overdue)

    async def act(workflow_id: str, update: Any, arg: Any) -> JSONResponse:
        handle = client().get_workflow_handle_for(PostmortemWorkflow.run, workflow_id)
        try:
            await handle.execute_update(update, arg)
        except WorkflowUpdateFailedError as exc:
            cause = exc.cause
            return JSONResponse({"error": str(getattr(cause, "message", cause))}, 409)
        except RPCError as exc:
            if exc.status is not RPCStatusCode.NOT_FOUND:
                raise
            try:  # an ended workflow takes no update; say so rather than "not found"
                ended = await handle.describe()
            except RPCError:
                return JSONResponse({"error": f"no post-mortem {workflow_id!r}"}, 404)
            status = ended.status.name.lower() if ended.status else "closed"
            return JSONResponse({"error": f"this post-mortem has ended ({status})"}, 409)
        return JSONResponse({"workflow_id": workflow_id, "done": True})

    operated: dict[str, Any] = {
        "responses": {404: {"model": Problem}, 409: {"model": Problem}},
        "response_model": Done,
        "tags": ["operations"],
    }

    @app.post("/api/postmortems/{workflow_id}/schedule", **operated)
    async def api_schedule(_: Operator, workflow_id: str, body: RescheduleBody) -> JSONResponse:
        """Operators only: move the review (outside the window it needs a reason)."""
        return await act(
            workflow_id,
            PostmortemWorkflow.schedule_review,
            RescheduleReviewInput(at=body.at, reason=body.reason),
        )

    @app.post("/api/postmortems/{workflow_id}/acknowledge", **operated)
    async def api_acknowledge(_: Operator, workflow_id: str, body: AcknowledgeBody) -> JSONResponse:
        """Operators only: keep the wording of blameless-check findings, with a note why."""
        return await act(
            workflow_id,
            PostmortemWorkflow.acknowledge_findings,
            AcknowledgeInput(finding_ids=body.finding_ids, note=body.note),
        )

    @app.post("/api/postmortems/{workflow_id}/cancel", **operated)
    async def api_cancel(_: Operator, workflow_id: str, body: CancelBody) -> JSONResponse:
        """Operators only: cancel the post-mortem, with the reason."""
        return await act(workflow_id, PostmortemWorkflow.cancel, CancelInput(reason=body.reason))

    # -- HTML ----------------------------------------------------------------------------

    def html_guard(request: Request, role: Role = Role.VIEWER) -> Response | Role:
        found = role_of(request, settings)
        if found is None:
            return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
        if found < role:
            return page("error.html.j2", 403, title="Not allowed", message="Operators only.")
        return found

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def overview_page(request: Request, team: Team = None) -> Response:
        guard = html_guard(request)
        if isinstance(guard, Response):
            return guard
        data = await overviews.get(team or None)
        late = [
            r
            async for r in engine.list_postmortems(
                client(), readmodel.late_reviews_query(now(), team or None), limit=20
            )
        ]
        return page(
            "overview.html.j2",
            o=data,
            team=team,
            teams=teams(),
            late=late,
            chart=chart(data.weeks),
            role=guard,
        )

    @app.get("/overdue", response_class=HTMLResponse, include_in_schema=False)
    async def overdue_page(
        request: Request, team: Team = None, severity: Sev = None, offset: Offset = 0
    ) -> Response:
        guard = html_guard(request)
        if isinstance(guard, Response):
            return guard
        data = await overdue_data(team or None, severity_of(severity), offset, PAGE)
        return page(
            "overdue.html.j2",
            data=data,
            team=team,
            severity=severity_of(severity),
            teams=teams(),
            severities=[s.value for s in Severity],
            role=guard,
            page_size=PAGE,
        )

    @app.get(
        "/overdue.csv",
        include_in_schema=True,
        tags=["dashboard"],
        response_class=Response,
        responses={200: {"content": {"text/csv": {}}, "description": "Every overdue action"}},
    )
    async def overdue_csv(_: Viewer, team: Team = None, severity: Sev = None) -> Response:
        """Every overdue action (same filters as /overdue), most overdue first, as CSV."""
        moment = now()
        rows = (
            await readmodel.ranked_actions(
                client(), moment, team=team or None, severity=severity_of(severity), limit=100_000
            )
        )[1]
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

    @app.get("/postmortems/{workflow_id}", response_class=HTMLResponse, include_in_schema=False)
    async def postmortem_page(request: Request, workflow_id: str) -> Response:
        guard = html_guard(request)
        if isinstance(guard, Response):
            return guard
        try:
            detail = detail_of(await state_of(client(), workflow_id))
        except HTTPException as exc:
            return page(
                "error.html.j2", exc.status_code, title="Not found", message=str(exc.detail)
            )
        return page(
            "postmortem.html.j2",
            d=detail,
            s=detail.state,
            role=guard,
            csrf=request.state.csrf,
            now=now(),
            done=request.query_params.get("done", ""),
            error=request.query_params.get("error", ""),
        )

    @app.post("/postmortems/{workflow_id}/operate", include_in_schema=False)
    async def operate_form(
        request: Request,
        workflow_id: str,
        operation: Annotated[Literal["schedule", "acknowledge", "cancel"], Form()],
        at: Annotated[str, Form()] = "",
        reason: Annotated[str, Form()] = "",
        finding_id: Annotated[str, Form()] = "",
        note: Annotated[str, Form()] = "",
        csrf: Annotated[str, Form()] = "",
    ) -> Response:
        """The operators' forms on a post-mortem's page; back to the page with the outcome."""
        guard = html_guard(request, Role.OPERATOR)
        if isinstance(guard, Response):
            return guard
        if not csrf_ok(request, csrf):  # the page's own token: no other site can post this
            return page(
                "error.html.j2",
                403,
                title="Not sent from this dashboard",
                message="The form's token is missing or stale: reload the page and try again.",
            )
        back = f"/postmortems/{quote_plus(workflow_id)}"
        update: Any
        arg: Any
        try:
            if operation == "schedule":
                update = PostmortemWorkflow.schedule_review
                arg = RescheduleReviewInput(at=datetime.fromisoformat(at.strip()), reason=reason)
            elif operation == "acknowledge":
                update = PostmortemWorkflow.acknowledge_findings
                arg = AcknowledgeInput(finding_ids=[finding_id], note=note)
            else:
                update, arg = PostmortemWorkflow.cancel, CancelInput(reason=reason)
        except ValidationError as exc:
            problem = "; ".join(describe_validation_error(exc))
            return RedirectResponse(f"{back}?error={quote_plus(problem)}", status_code=303)
        except ValueError:
            problem = f"{at!r} is not a time with its zone, like 2026-12-01T10:00:00+01:00"
            return RedirectResponse(f"{back}?error={quote_plus(problem)}", status_code=303)
        answer = await act(workflow_id, update, arg)
        if answer.status_code != 200:
            error = json.loads(bytes(answer.body))["error"]
            return RedirectResponse(f"{back}?error={quote_plus(error)}", status_code=303)
        return RedirectResponse(f"{back}?done={quote_plus(operation)}", status_code=303)

    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    async def login_form(next: str = "/") -> Response:
        return page("login.html.j2", next=next if next.startswith("/") else "/", error="")

    @app.post("/login", response_class=HTMLResponse, include_in_schema=False)
    async def login(
        request: Request, token: Annotated[str, Form()], next: Annotated[str, Form()] = "/"
    ) -> Response:
        if token_role(settings, token.strip()) is None:
            return page("login.html.j2", next=next, error="That token is not known.")
        target = next if next.startswith("/") and not next.startswith("//") else "/"
        response = RedirectResponse(target, status_code=303)
        role = token_role(settings, token.strip())
        assert role is not None
        response.set_cookie(
            COOKIE,
            session_cookie(settings, role),
            max_age=SESSION_SECONDS,
            httponly=True,
            samesite="strict",
            secure=secure_request(request, settings),
        )
        return response
