"""Who may see the dashboard and who may act on it: read-only viewers and operators, from
bearer tokens or the user header of an OIDC proxy. Unconfigured, the API listens on a
loopback address only (checked at start) and everyone there is an operator."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import secrets
import time
from enum import IntEnum
from urllib.parse import urlsplit

from fastapi import HTTPException, Request

from config import ConfigError, Settings

COOKIE = "pm_session"  # a signed role and expiry, never the token itself
CSRF_COOKIE = "pm_csrf"  # double-submit token for the dashboard's forms
SESSION_SECONDS = 12 * 3600
PROXY_SECRET_HEADER = "x-auth-proxy-secret"  # noqa: S105 (a header name)
PLACEHOLDER = "change-me"  # .env.example's tokens: refused at start


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


def bearer(request: Request) -> str:
    given = request.headers.get("authorization", "")
    return given[7:].strip() if given.lower().startswith("bearer ") else ""


def role_of(request: Request, settings: Settings) -> Role | None:
    if not settings.access_configured:
        return Role.OPERATOR  # loopback only: see check_binding
    token = bearer(request)
    if token and (role := token_role(settings, token)) is not None:
        return role
    session = session_role(settings, request.cookies.get(COOKIE, ""))
    if session is not None:
        return session
    if settings.auth_user_header and proxy_trusted(request, settings):
        user = request.headers.get(settings.auth_user_header, "").strip().lower()
        if user:
            operators = {u.strip().lower() for u in settings.operator_users.split(",")}
            return Role.OPERATOR if user in operators else Role.VIEWER
    return None


def proxy_trusted(request: Request, settings: Settings) -> bool:
    """The user header counts only when the request came through the proxy: from one of its
    networks, or carrying the secret it adds. Anyone else could write that header."""
    if settings.auth_proxy_secret is not None:
        offered = request.headers.get(PROXY_SECRET_HEADER, "")
        expected = settings.auth_proxy_secret.get_secret_value()
        if offered and hmac.compare_digest(offered.encode(), expected.encode()):
            return True
    host = request.client.host if request.client else ""
    try:
        peer = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(peer in network for network in settings.auth_proxy_networks)


# -- the browser's session: a signed role, not the token ------------------------------------


def _session_key(settings: Settings) -> bytes:
    """Derived from the configured tokens: every replica agrees, and changing the tokens
    signs everyone out."""
    operators, viewers = _tokens(settings.operator_tokens), _tokens(settings.viewer_tokens)
    material = "\0".join([*operators, "|", *viewers])
    return hashlib.sha256(b"pm-session\0" + material.encode()).digest()


def session_cookie(settings: Settings, role: Role, now: float | None = None) -> str:
    expires = int((now if now is not None else time.time()) + SESSION_SECONDS)
    payload = f"{role.value}.{expires}"
    mac = hmac.new(_session_key(settings), payload.encode(), hashlib.sha256).digest()
    return f"{payload}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"


def session_role(settings: Settings, value: str, now: float | None = None) -> Role | None:
    if not (_tokens(settings.operator_tokens) or _tokens(settings.viewer_tokens)):
        # No tokens, no sessions (sign-in needs a token): a key made of nothing is public.
        return None
    try:
        role_text, expires_text, mac_text = value.split(".")
        role, expires = Role(int(role_text)), int(expires_text)
        mac = base64.urlsafe_b64decode(mac_text + "=" * (-len(mac_text) % 4))
    except ValueError:
        return None
    expected = hmac.new(
        _session_key(settings), f"{role_text}.{expires_text}".encode(), hashlib.sha256
    ).digest()
    if not hmac.compare_digest(mac, expected):
        return None
    return role if expires > (now if now is not None else time.time()) else None


# -- cross-site requests ---------------------------------------------------------------------


def new_csrf() -> str:
    return secrets.token_urlsafe(24)


def ambient(request: Request) -> bool:
    """Credentials a browser sends by itself (a cookie, the loopback default, a proxy's
    header), as opposed to a bearer token a program adds on purpose."""
    return not bearer(request)


def csrf_ok(request: Request, supplied: str) -> bool:
    expected = request.cookies.get(CSRF_COOKIE, "")
    return bool(expected) and hmac.compare_digest(supplied.encode(), expected.encode())


def same_origin(request: Request) -> bool | None:
    """Whether the Origin (or, without it, the Referer) is this host; None when the request
    names neither (a program, not a browser form)."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin:
        return None
    # "null" (a sandboxed frame, a file: page) has no host: never this one; nor has a value
    # that is not a URL at all (`http://[bad`).
    try:
        return urlsplit(origin).netloc.lower() == request.headers.get("host", "").lower()
    except ValueError:
        return False


def require_csrf(request: Request, supplied: str) -> None:
    """For a state change made with ambient credentials by a browser: the page's token."""
    if not ambient(request):
        return
    browser = same_origin(request) is not None or CSRF_COOKIE in request.cookies
    if browser and not csrf_ok(request, supplied):
        raise HTTPException(403, "missing or stale form token: reload the page and try again")


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
    """Refuse to serve the dashboard beyond this machine without access control, with the
    example's placeholder tokens, or with a proxy's user header that anyone could send."""
    for name in ("viewer_tokens", "operator_tokens"):
        if any(PLACEHOLDER in t for t in _tokens(getattr(settings, name))):
            raise ConfigError(
                f"PM_{name.upper()} still holds the example's placeholder: set real tokens "
                "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
            )
    host = settings.api_host
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if (
        settings.auth_user_header
        and not loopback
        and not (settings.auth_proxy_networks or settings.auth_proxy_secret)
    ):
        raise ConfigError(
            f"PM_AUTH_USER_HEADER={settings.auth_user_header} on {host}: anyone reaching the "
            "API could send that header. Set PM_AUTH_PROXY_NETWORKS (the proxy's addresses) "
            "or PM_AUTH_PROXY_SECRET (a header only the proxy adds)"
        )
    if settings.access_configured:
        return
    if not loopback:
        raise ConfigError(
            f"PM_API_HOST={host} would serve the dashboard to the network without access "
            "control: set PM_VIEWER_TOKENS / PM_OPERATOR_TOKENS or PM_AUTH_USER_HEADER, or "
            "listen on 127.0.0.1"
        )


def allowed_hosts(settings: Settings) -> set[str]:
    """Host names the API answers to: a page served under another name (DNS rebinding) is
    refused."""
    names = {"127.0.0.1", "localhost", "::1", settings.api_host.lower()}
    public = urlsplit(settings.public_url).hostname
    if public:
        names.add(public.lower())
    names.update(h.strip().lower() for h in settings.allowed_hosts if h.strip())
    names.discard("0.0.0.0")  # a bind address, not a name anyone uses  # noqa: S104
    names.discard("::")
    return names


def host_allowed(request: Request, settings: Settings) -> bool:
    host = request.headers.get("host", "")
    try:
        name = urlsplit(f"//{host}").hostname or ""
    except ValueError:  # `Host: [::1` is no name of ours
        return False
    return name.lower() in allowed_hosts(settings)


def secure_request(request: Request, settings: Settings) -> bool:
    """Served over HTTPS (directly, or behind a proxy at an https public URL): cookies are
    then marked Secure."""
    return request.url.scheme == "https" or settings.public_url.startswith("https://")
