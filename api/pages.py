"""The managers' dashboard as server-rendered pages: the overview, the overdue actions, a
post-mortem's page with its operators' forms, and sign-in. No scripts: forms post back and
redirect to the page with the outcome."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from functools import cache
from typing import Annotated, Any, Literal
from urllib.parse import quote_plus

import jinja2
from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

import readmodel
from api.access import COOKIE, SESSION_SECONDS, csrf_ok, secure_request, session_cookie, token_role
from api.answers import Refused
from api.dashboard import (
    PAGE,
    Offset,
    OperationRefused,
    Overviews,
    Sev,
    Team,
    act,
    detail_of,
    now,
    overdue_data,
    severity_of,
    teams,
)
from api.deps import PageOperator, PageViewer, RecordDep, SettingsDep, Temporal
from api.postmortems import publish, state_of
from domain import verification
from domain.findings import describe_validation_error
from domain.messages import (
    AcknowledgeInput,
    BeginInput,
    CancelInput,
    RescheduleReviewInput,
    RouteInput,
    VerifyActionInput,
)
from domain.models import Severity
from record import reads
from workflows.postmortem import PostmortemWorkflow

router = APIRouter(include_in_schema=False)


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
    env.filters["verification"] = verification.describe
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


@router.get("/", response_class=HTMLResponse)
async def overview_page(
    role: PageViewer,
    settings: SettingsDep,
    record: RecordDep,
    overviews: Overviews,
    team: Team = None,
) -> Response:
    data = await overviews.get(team or None)
    late_ones = reads.PostmortemFilter(team=team or None, late_at=now())
    late = await asyncio.to_thread(reads.postmortem_list, record, late_ones, 20)
    return page(
        "overview.html.j2",
        o=data,
        team=team,
        teams=teams(settings),
        late=late,
        chart=chart(data.weeks),
        role=role,
    )


@router.get("/overdue", response_class=HTMLResponse)
async def overdue_page(
    role: PageViewer,
    settings: SettingsDep,
    record: RecordDep,
    team: Team = None,
    severity: Sev = None,
    offset: Offset = 0,
) -> Response:
    data = await overdue_data(record, team or None, severity_of(severity), offset, PAGE)
    return page(
        "overdue.html.j2",
        data=data,
        team=team,
        severity=severity_of(severity),
        teams=teams(settings),
        severities=[s.value for s in Severity],
        role=role,
        page_size=PAGE,
    )


@router.get("/postmortems/{workflow_id}", response_class=HTMLResponse)
async def postmortem_page(
    request: Request,
    role: PageViewer,
    settings: SettingsDep,
    temporal: Temporal,
    record: RecordDep,
    workflow_id: str,
) -> Response:
    try:
        detail = detail_of(settings, await state_of(temporal, record, workflow_id))
    except HTTPException as exc:
        return page("error.html.j2", exc.status_code, title="Not found", message=str(exc.detail))
    return page(
        "postmortem.html.j2",
        d=detail,
        s=detail.state,
        role=role,
        csrf=request.state.csrf,
        now=now(),
        teams=teams(settings),
        done=request.query_params.get("done", ""),
        error=request.query_params.get("error", ""),
    )


Operation = Literal["schedule", "acknowledge", "cancel", "route", "begin", "verify", "public"]


@router.post("/postmortems/{workflow_id}/operate")
async def operate_form(
    request: Request,
    _: PageOperator,
    settings: SettingsDep,
    temporal: Temporal,
    record: RecordDep,
    workflow_id: str,
    operation: Annotated[Operation, Form()],
    at: Annotated[str, Form(max_length=100)] = "",
    reason: Annotated[str, Form(max_length=20_000)] = "",
    finding_id: Annotated[str, Form(max_length=200)] = "",
    note: Annotated[str, Form(max_length=20_000)] = "",
    team: Annotated[str, Form(max_length=200)] = "",
    action_id: Annotated[str, Form(max_length=40)] = "",
    worked: Annotated[Literal["yes", "no", ""], Form()] = "",
    csrf: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """The operators' forms on a post-mortem's page; back to the page with the outcome."""
    if not csrf_ok(request, csrf):  # the page's own token: no other site can post this
        return page(
            "error.html.j2",
            403,
            title="Not sent from this dashboard",
            message="The form's token is missing or stale: reload the page and try again.",
        )
    back = f"/postmortems/{quote_plus(workflow_id)}"
    if operation == "public":  # not an update: the public version is made here, published
        try:
            state = await state_of(temporal, record, workflow_id)
            _summary, places = await asyncio.to_thread(publish, settings, state)
        except (Refused, HTTPException) as exc:
            problem = str(exc.detail)
            return RedirectResponse(f"{back}?error={quote_plus(problem)}", status_code=303)
        said = "public version published: " + ", ".join(places)
        return RedirectResponse(f"{back}?done={quote_plus(said)}", status_code=303)
    update: Any
    arg: Any
    try:
        if operation == "schedule":
            update = PostmortemWorkflow.schedule_review
            arg = RescheduleReviewInput(at=datetime.fromisoformat(at.strip()), reason=reason)
        elif operation == "acknowledge":
            update = PostmortemWorkflow.acknowledge_findings
            arg = AcknowledgeInput(finding_ids=[finding_id], note=note)
        elif operation == "route":
            update, arg = PostmortemWorkflow.route, RouteInput(team=team.strip(), reason=reason)
        elif operation == "begin":
            update, arg = PostmortemWorkflow.begin, BeginInput(reason=reason)
        elif operation == "verify":
            if not worked:
                problem = quote_plus("say whether the action worked")
                return RedirectResponse(f"{back}?error={problem}", status_code=303)
            update = PostmortemWorkflow.verify_action
            arg = VerifyActionInput(action_id=action_id, worked=worked == "yes", note=note)
        else:
            update, arg = PostmortemWorkflow.cancel, CancelInput(reason=reason)
    except ValidationError as exc:
        problem = "; ".join(describe_validation_error(exc))
        return RedirectResponse(f"{back}?error={quote_plus(problem)}", status_code=303)
    except ValueError:
        problem = f"{at!r} is not a time with its zone, like 2026-12-01T10:00:00+01:00"
        return RedirectResponse(f"{back}?error={quote_plus(problem)}", status_code=303)
    try:
        await act(temporal, record, workflow_id, update, arg)
    except OperationRefused as refused:
        return RedirectResponse(f"{back}?error={quote_plus(refused.reason)}", status_code=303)
    return RedirectResponse(f"{back}?done={quote_plus(operation)}", status_code=303)


@router.get("/login", response_class=HTMLResponse)
async def login_form(next: str = "/") -> Response:
    return page("login.html.j2", next=_local(next), error="")


@router.post("/login", response_class=HTMLResponse)
async def login(
    request: Request,
    settings: SettingsDep,
    token: Annotated[str, Form(max_length=4096)],
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    role = token_role(settings, token.strip())
    if role is None:
        return page("login.html.j2", next=_local(next), error="That token is not known.")
    response = RedirectResponse(_local(next), status_code=303)
    response.set_cookie(
        COOKIE,
        session_cookie(settings, role),
        max_age=SESSION_SECONDS,
        httponly=True,
        samesite="strict",
        secure=secure_request(request, settings),
    )
    return response


def _local(target: str) -> str:
    """A path on this site, never another one: `//host` and `/\\host` are other sites to a
    browser."""
    if target.startswith("/") and not target.startswith(("//", "/\\")) and "\n" not in target:
        return target
    return "/"
