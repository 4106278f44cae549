"""What a handler needs, as FastAPI dependencies: the settings, the Temporal client, the
record, the caller's role (one access check, `access.require`, for JSON and pages alike) and
a body read within its byte limit."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from temporalio.client import Client

from api.access import Role, require, require_csrf
from api.answers import Refused
from api.bodies import BodyRefused, read_limited
from config import Settings
from record.store import Record

log = logging.getLogger("postmortem.api")


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_temporal(request: Request) -> Client:
    client: Client | None = request.app.state.client
    if client is None:  # only between start-up and the first connection
        raise Refused(503, "Temporal unavailable: not connected yet")
    return client


def get_record(request: Request) -> Record:
    record: Record | None = request.app.state.record
    if record is None:  # only between start-up and the record's first answer
        raise Refused(503, "the record is unavailable: not open yet")
    return record


SettingsDep = Annotated[Settings, Depends(get_settings)]
Temporal = Annotated[Client, Depends(get_temporal)]
RecordDep = Annotated[Record, Depends(get_record)]


def viewer(request: Request, settings: SettingsDep) -> Role:
    return require(request, settings, Role.VIEWER)


def operator(request: Request, settings: SettingsDep) -> Role:
    role = require(request, settings, Role.OPERATOR)
    # A browser acting with its cookie (or the loopback default) sends the page's token.
    require_csrf(request, request.headers.get("x-csrf-token", ""))
    return role


class PageRefused(Exception):
    """A page the caller may not see: to the sign-in form (401), or a page saying so (403)."""

    def __init__(self, status: int, path: str) -> None:
        super().__init__(status)
        self.status, self.path = status, path


def _page_role(request: Request, settings: Settings, role: Role) -> Role:
    try:
        return require(request, settings, role)
    except HTTPException as exc:
        raise PageRefused(exc.status_code, request.url.path) from None


def page_viewer(request: Request, settings: SettingsDep) -> Role:
    return _page_role(request, settings, Role.VIEWER)


def page_operator(request: Request, settings: SettingsDep) -> Role:
    return _page_role(request, settings, Role.OPERATOR)


Viewer = Annotated[Role, Depends(viewer)]
Operator = Annotated[Role, Depends(operator)]
PageViewer = Annotated[Role, Depends(page_viewer)]
PageOperator = Annotated[Role, Depends(page_operator)]


async def raw_body(request: Request) -> bytes:
    """The body as sent, refused as it streams past the limit."""
    try:
        return await read_limited(request)
    except BodyRefused as refused:
        raise Refused(refused.status, refused.reason) from None


RawBody = Annotated[bytes, Depends(raw_body)]


def signed_body(
    source: str,
    setting: str,
    problem: Callable[[str, bytes, Request], str | None],
) -> Callable[..., Awaitable[bytes]]:
    """A dependency: the body, once the sender has proved who it is with the secret in
    `setting` (`problem(secret, body, request)` is None, else why not: a 401). No secret:
    refused (403) unless unsigned trials are allowed (`PM_ALLOW_UNSIGNED`)."""

    async def authenticated(request: Request, settings: SettingsDep, body: RawBody) -> bytes:
        secret = getattr(settings, setting)
        if secret is None:
            if settings.allow_unsigned:
                return body
            raise Refused(403, f"{source} webhooks are refused: PM_{setting.upper()} is not set")
        refusal = problem(secret.get_secret_value(), body, request)
        if refusal is not None:
            log.warning("webhook refused: bad credentials", extra={"source": source})
            raise Refused(401, refusal)
        return body

    return authenticated
