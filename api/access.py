"""Who may see the dashboard and who may act on it: read-only viewers and operators, from
bearer tokens or the user header of an OIDC proxy. Unconfigured, the API listens on a
loopback address only (checked at start) and everyone there is an operator."""

from __future__ import annotations

import hmac
import ipaddress
from enum import IntEnum

from fastapi import HTTPException, Request

from config import ConfigError, Settings

COOKIE = "pm_token"


class Role(IntEnum):
    VIEWER = 1
    OPERATOR = 2


def _tokens(value: object) -> list[str]:
    secret = getattr(value, "get_secret_value", lambda: "")()
    return [t.strip() for t in str(secret).split(",") if t.strip()]


def _matches(given: str, tokens: list[str]) -> bool:
    return any(hmac.compare_digest(given.encode(), t.encode()) for t in tokens)


def token_role(settings: Settings, token: str) -> Role | None:
    """The role a bearer token gives, if it is one of the configured ones."""
    if _matches(token, _tokens(settings.operator_tokens)):
        return Role.OPERATOR
    if _matches(token, _tokens(settings.viewer_tokens)):
        return Role.VIEWER
    return None


def role_of(request: Request, settings: Settings) -> Role | None:
    if not settings.access_configured:
        return Role.OPERATOR  # loopback only: see check_binding
    given = request.headers.get("authorization", "")
    token = given[7:].strip() if given.lower().startswith("bearer ") else ""
    token = token or request.cookies.get(COOKIE, "")
    if token and (role := token_role(settings, token)) is not None:
        return role
    if settings.auth_user_header:
        user = request.headers.get(settings.auth_user_header, "").strip().lower()
        if user:
            operators = {u.strip().lower() for u in settings.operator_users.split(",")}
            return Role.OPERATOR if user in operators else Role.VIEWER
    return None


def require(request: Request, settings: Settings, role: Role) -> Role:
    found = role_of(request, settings)
    if found is None:
        raise HTTPException(
            401,
            "sign in: a bearer token (Authorization header or /login) or your proxy's user header",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if found < role:
        raise HTTPException(403, "this needs the operator role; you are a viewer")
    return found


def check_binding(settings: Settings) -> None:
    """Refuse to serve the dashboard beyond this machine without access control."""
    if settings.access_configured:
        return
    host = settings.api_host
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ConfigError(
            f"PM_API_HOST={host} would serve the dashboard to the network without access "
            "control: set PM_VIEWER_TOKENS / PM_OPERATOR_TOKENS or PM_AUTH_USER_HEADER, or "
            "listen on 127.0.0.1"
        )
