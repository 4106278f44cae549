"""What every answer of the API does for the browsers that read it: a known Host only (DNS
rebinding), no state change from another site's page, security headers, and the form token
a page's forms carry."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request, Response

from api.access import CSRF_COOKIE, host_allowed, new_csrf, same_origin, secure_request
from api.answers import refusal
from config import Settings

UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}
# The dashboard has no script of its own; its style sheet is inline.
CSP = (
    "default-src 'self'; script-src 'none'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
OWN_CSP = ("/docs", "/redoc")  # FastAPI's documentation pages bring their own scripts


async def browser_guard(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    """Middleware, outermost: Host, cross-site, headers, the form token."""
    settings: Settings = request.app.state.settings
    if not host_allowed(request, settings):
        return refusal(request, 400, "unknown Host: add it to PM_ALLOWED_HOSTS if it is this API")
    path = request.url.path
    if (
        request.method in UNSAFE
        and not path.startswith("/webhooks/")
        and same_origin(request) is False
    ):
        return refusal(request, 403, "cross-site request refused")
    request.state.csrf = request.cookies.get(CSRF_COOKIE) or new_csrf()
    response = await call_next(request)
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if not path.startswith(OWN_CSP):
        response.headers.setdefault("Content-Security-Policy", CSP)
    if CSRF_COOKIE not in request.cookies and not path.startswith("/webhooks/"):
        response.set_cookie(
            CSRF_COOKIE,
            request.state.csrf,
            httponly=True,
            samesite="strict",
            secure=secure_request(request, settings),
        )
    return response
