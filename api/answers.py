"""What the API answers when it refuses, and what every webhook answers: one shape each.

Webhooks (incident tools and trackers alike) always answer a `WebhookAnswer`, refusals
included, so a sender's log reads the same whatever went wrong. The rest of the API answers a
refusal as `{"error": ...}` (`Problem`)."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

WEBHOOKS = "/webhooks/"


class WebhookAnswer(BaseModel):
    """Every webhook's answer. A 2xx means the effect happened (or provably need not)."""

    accepted: bool = Field(description="The delivery had its effect, now or on an earlier try")
    started: bool = Field(False, description="This delivery started the post-mortem")
    workflow_id: str | None = Field(None, description="The workflow it reached, if any")
    detail: str = Field("", description="What was done, or why not")


class Problem(BaseModel):
    error: str


class Refused(Exception):
    """A request refused with `status` and a reason for the sender (shape by route)."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers


def webhook_answer(
    status: int,
    detail: str,
    *,
    accepted: bool = False,
    started: bool = False,
    workflow_id: str | None = None,
) -> JSONResponse:
    body = WebhookAnswer(accepted=accepted, started=started, workflow_id=workflow_id, detail=detail)
    return JSONResponse(body.model_dump(), status_code=status)


def refusal(
    request: Request, status: int, detail: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """A refusal in the shape of the route it answers."""
    if request.url.path.startswith(WEBHOOKS):
        response = webhook_answer(status, detail)
        if headers:
            response.headers.update(headers)
        return response
    return JSONResponse({"error": detail}, status_code=status, headers=headers)


def webhook_responses(
    signature: str, extra: dict[int, str] | None = None
) -> dict[int | str, dict[str, Any]]:
    """Every status a webhook endpoint answers, for the OpenAPI document."""
    described = {
        200: "Done before (a redelivery) or done now",
        202: "Acknowledged, nothing to do (the reason is in `detail`)",
        400: "The body is not JSON as RFC 8259 has it",
        401: f"Missing or bad {signature}",
        403: "No secret configured for this source",
        413: "Body over 1 MiB",
        503: "Temporal (or the routing file) unavailable: the sender should retry",
    } | (extra or {})
    return {
        status: {"model": WebhookAnswer, "description": text} for status, text in described.items()
    }
