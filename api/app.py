"""The HTTP API: incident webhooks in (a resolved incident starts its post-mortem), tracker
webhooks in (status flows back), the managers' dashboard and its JSON API, and metrics.

Handlers live in router modules; what they need (settings, the Temporal client, the
caller's role, a body within its limit) comes as dependencies (api/deps.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.client import Client
from temporalio.service import RPCError

import engine
import readmodel
from api import dashboard, incidents, learning, metrics, pages, postmortems, trackers
from api.answers import WEBHOOKS, Refused, refusal
from api.browser import browser_guard
from api.deps import PageRefused
from config import Settings
from record import reads
from record.store import Record, RecordUnavailable, open_record

log = logging.getLogger("postmortem.api")

DASHBOARD_BODY = 64 * 1024  # the largest form or JSON body an operator sends
RECORD_RETRY_SECONDS = 5  # between attempts to open the record while its database is down


def create_app(
    settings: Settings, client: Client | None = None, record: Record | None = None
) -> FastAPI:
    """The app; `client` is connected and `record` opened (its schema upgraded in place) at
    start-up from settings when not given."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if app.state.client is None:
            app.state.client = await engine.connect(settings)
        opening = None
        # Webhooks need only Temporal: with the record's database down the API serves them,
        # the readers answer 503, and the record opens in the background when it answers.
        if app.state.record is None and not await _opened(app, settings):
            opening = asyncio.ensure_future(_open_record(app, settings))
        # The overview of every team, computed now and kept fresh.
        warming = asyncio.ensure_future(app.state.overviews.keep_warm([None]))
        try:
            yield
        finally:
            for task in (warming, opening):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            if record is None and app.state.record is not None:
                app.state.record.dispose()

    app = FastAPI(
        title="Post-mortem engine",
        version="0.1.0",
        summary="Incidents in, post-mortems through their lifecycle, status back from trackers.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.client = client
    app.state.record = record
    app.state.metrics = metrics.Metrics()

    async def compute_overview(team: str | None) -> readmodel.Overview:
        opened: Record | None = app.state.record
        if opened is None:
            raise RecordUnavailable("the record is unavailable: not open yet")
        return await asyncio.to_thread(
            reads.overview, opened, dashboard.now(), dashboard.teams(settings), team=team
        )

    app.state.overviews = readmodel.OverviewCache(
        compute_overview,
        fresh=timedelta(seconds=settings.overview_cache_seconds),
        kept=lambda team: team in dashboard.teams(settings),
    )

    for router in (incidents.router, trackers.router):
        app.include_router(router)  # bodies read by api/bodies.py, 1 MiB as they stream
    # The dashboard's forms and JSON bodies are small: FastAPI reads a body before the role
    # check runs, so an unauthenticated sender may make it read this much, no more.
    dashboards = (dashboard.router, dashboard.exports, learning.router, postmortems.router)
    for router in (*dashboards, pages.router):
        app.include_router(router, max_body_size=DASHBOARD_BODY)
    app.include_router(metrics.router, max_body_size=0)

    app.add_exception_handler(Refused, _refused)
    app.add_exception_handler(PageRefused, _page_refused)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(RPCError, _temporal_error)
    app.add_exception_handler(RecordUnavailable, _record_unavailable)
    app.add_exception_handler(Exception, _unexpected)
    app.middleware("http")(metrics.count_webhooks)
    app.middleware("http")(browser_guard)  # outermost: Host, cross-site, headers, form token

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """The process answers (liveness): nothing else is checked."""
        return {"status": "ok"}

    @app.get(
        "/readyz",
        responses={503: {"description": "Temporal does not answer: send no traffic here"}},
    )
    async def readyz(request: Request) -> JSONResponse:
        """Ready for traffic: Temporal answers (a load balancer's check)."""
        client = request.app.state.client
        why = "Temporal unavailable: not connected yet" if client is None else None
        why = why or await engine.temporal_answers(client)
        if why:
            return JSONResponse({"status": "unready", "reason": why}, status_code=503)
        return JSONResponse({"status": "ready"})

    return app


async def _refused(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Refused)
    return refusal(request, exc.status, exc.detail, exc.headers)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    # The same body as every other refusal of this API.
    assert isinstance(exc, StarletteHTTPException)
    return refusal(request, exc.status_code, str(exc.detail), dict(exc.headers or {}))


async def _invalid(request: Request, exc: Exception) -> JSONResponse:
    """A body or parameter the route refuses: the reason in words (`error`) and by field
    (`detail`), without echoing the input back."""
    assert isinstance(exc, RequestValidationError)
    detail = [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type", "")}
        for e in exc.errors()[:20]
    ]
    words = "; ".join(f"{'.'.join(map(str, d['loc']))}: {d['msg']}" for d in detail)
    if request.url.path.startswith(WEBHOOKS):
        return refusal(request, 422, words)
    return JSONResponse({"error": words, "detail": detail}, status_code=422)


async def _page_refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PageRefused)
    if exc.status == 401:
        return RedirectResponse(f"/login?next={exc.path}", status_code=303)
    return pages.page("error.html.j2", 403, title="Not allowed", message="Operators only.")


async def _temporal_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RPCError)
    log.warning("Temporal refused %s: %s", request.url.path, exc.message)
    return refusal(request, 503, f"Temporal unavailable: {exc.message}")


async def _record_unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.warning("the record did not answer %s: %s", request.url.path, exc)
    return refusal(request, 503, "the record is unavailable; try again")


async def _opened(app: FastAPI, settings: Settings) -> bool:
    """Open the record and upgrade its schema in place (a worker starting at the same moment
    waits for the same lock on PostgreSQL); False while its database does not answer."""
    try:
        app.state.record = await asyncio.to_thread(open_record, settings)
    except RecordUnavailable as exc:
        log.warning("the record is unavailable, trying again in 5 s: %s", exc)
        return False
    return True


async def _open_record(app: FastAPI, settings: Settings) -> None:
    """In the background, every RECORD_RETRY_SECONDS until the record opens."""
    while True:
        await asyncio.sleep(RECORD_RETRY_SECONDS)
        if await _opened(app, settings):
            return


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    # A bug of ours: logged with its trace, answered without one.
    log.exception("unexpected error on %s", request.url.path)
    return refusal(request, 500, "internal error; the engine logged it")
