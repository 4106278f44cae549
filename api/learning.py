"""What the organisation has learned (record/learning.py): `/api/learning` (JSON), its tables
as CSV (`/api/learning.csv?table=...`) and the `/learning` page with inline SVG charts."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import HTMLResponse, Response

from api.dashboard import Team, now, teams
from api.deps import RecordDep, SettingsDep, Viewer
from api.pages import PageViewer, page
from config import Settings
from record import learning as reads
from record.store import Record

Service = Annotated[
    str | None,
    Query(pattern=r"^[^\x00-\x1f]{0,200}$", description="Only this service"),
]
Days = Annotated[
    int, Query(ge=1, le=reads.MAX_DAYS, description="The period: this many days up to today")
]
Table = Annotated[str, Query(pattern="^(" + "|".join(reads.TABLES) + ")$")]


router = APIRouter(tags=["learning"])


async def _learning(
    settings: Settings, record: Record, team: str | None, service: str | None, days: int
) -> reads.Learning:
    moment = now()
    chosen = reads.LearningFilter.last(days, moment, team, service)
    return await asyncio.to_thread(
        reads.learning, record, chosen, moment, settings.related_lookback_days
    )


@router.get("/api/learning", response_model=reads.Learning)
async def learning_json(
    _: Viewer,
    settings: SettingsDep,
    record: RecordDep,
    team: Team = None,
    service: Service = None,
    days: Days = reads.DEFAULT_DAYS,
) -> reads.Learning:
    """Factor categories per month, repeats per service, actions done by their due date by
    type and priority, dropped actions and why, time to findings and to closure, open
    actions past due per service; for a period, a team and a service."""
    return await _learning(settings, record, team, service, days)


@router.get(
    "/api/learning.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": "One table of the view"}},
)
async def learning_csv(
    _: Viewer,
    settings: SettingsDep,
    record: RecordDep,
    table: Table,
    team: Team = None,
    service: Service = None,
    days: Days = reads.DEFAULT_DAYS,
) -> Response:
    """One table of /api/learning as CSV: categories, repeats, actions, dropped, timing or
    overdue."""
    data = await _learning(settings, record, team, service, days)
    try:
        text = reads.csv_table(data, table)
    except ValueError as exc:  # the pattern lets only known tables through
        raise HTTPException(422, str(exc)) from None
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="learning-{table}.csv"'},
    )


CATEGORY_COLOURS = {
    "process_gap": "#4e79a7",
    "tooling_limitation": "#f28e2b",
    "unclear_ownership": "#e15759",
    "missing_safeguard": "#76b7b2",
    "monitoring_gap": "#59a14f",
    "documentation_gap": "#edc948",
    "other": "#b07aa1",
}


def category_chart(data: reads.Learning, width: int = 640, height: int = 200) -> dict[str, Any]:
    """Stacked bars: contributing-factor categories per month."""
    months = data.months
    totals = [sum(data.categories[c][i] for c in data.categories) for i in range(len(months))]
    top = max([1, *totals])
    slot = width / max(1, len(months))
    plot = height - 30
    bars = []
    for i, month in enumerate(months):
        y = float(plot)
        for category, counts in data.categories.items():
            value = counts[i]
            if not value:
                continue
            h = plot * value / top
            y -= h
            bars.append(
                {
                    "x": round(i * slot + slot * 0.15, 1),
                    "y": round(y, 1),
                    "w": round(slot * 0.7, 1),
                    "h": round(h, 1),
                    "colour": CATEGORY_COLOURS.get(category, "#999"),
                    "category": category,
                    "value": value,
                    "month": month,
                }
            )
    step = max(1, len(months) // 12)  # at most a dozen labels
    labels = [
        {"x": round(i * slot + slot / 2, 1), "text": m}
        for i, m in enumerate(months)
        if i % step == 0
    ]
    return {"width": width, "height": height, "plot": plot, "bars": bars, "labels": labels,
            "top": top, "colours": CATEGORY_COLOURS}  # fmt: skip


def repeat_chart(data: reads.Learning, width: int = 640, row: int = 22) -> dict[str, Any]:
    """Horizontal bars: incidents per service, the repeats among them darker."""
    shown = data.repeats[:15]
    top = max([1, *(r.incidents for r in shown)])
    label = 180
    bars = [
        {
            "y": i * row,
            "service": r.service,
            "w": round((width - label - 40) * r.incidents / top, 1),
            "rw": round((width - label - 40) * r.repeats / top, 1),
            "incidents": r.incidents,
            "repeats": r.repeats,
        }
        for i, r in enumerate(shown)
    ]
    return {"width": width, "height": max(row, row * len(shown)), "label": label, "bars": bars}


@router.get("/learning", response_class=HTMLResponse)
async def learning_page(
    role: PageViewer,
    settings: SettingsDep,
    record: RecordDep,
    team: Team = None,
    service: Service = None,
    days: Days = reads.DEFAULT_DAYS,
) -> Response:
    data = await _learning(settings, record, team or None, service or None, days)
    query = {"team": team or "", "service": service or "", "days": days}
    return page(
        "learning.html.j2",
        data=data,
        team=team or "",
        service=service or "",
        days=days,
        query=query,
        teams=teams(settings),
        role=role,
        categories=category_chart(data),
        repeats=repeat_chart(data),
    )
