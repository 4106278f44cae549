"""Webhook authenticity: HMAC signatures and shared secrets, always over raw bytes and in
constant time."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac

from fastapi import Request


def sha256_signature_ok(secret: str, body: bytes, header: str | None) -> bool:
    """`sha256=<hex HMAC-SHA256(raw body)>` (GitHub, Jira, our generic source)."""
    if not header or not header.startswith("sha256="):
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return _same(expected, header.removeprefix("sha256="))


def pagerduty_signature_ok(secret: str, body: bytes, header: str | None) -> bool:
    """Any of the `v1=<hex>` values may match: two are sent while a secret rotates."""
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    for part in (header or "").split(","):
        version, _, value = part.strip().partition("=")
        if version == "v1" and _same(expected, value):
            return True
    return False


def shared_secret_ok(secret: str, request: Request, header: str | None = None) -> bool:
    """For tools that cannot sign: the secret as a header, a bearer token, the raw
    Authorization value, or the basic-auth password."""
    offered: list[str] = []
    if header and request.headers.get(header):
        offered.append(request.headers[header])
    authorization = request.headers.get("authorization", "")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer":
        offered.append(value)
    elif scheme.lower() == "basic":
        with contextlib.suppress(ValueError, UnicodeDecodeError):
            offered.append(base64.b64decode(value).decode().partition(":")[2])
    elif authorization:
        offered.append(authorization)
    return any(_same(secret, o) for o in offered)


def _same(expected: str, offered: str) -> bool:
    """Constant time over bytes: a str compare_digest raises on non-ASCII (a 500 before)."""
    return hmac.compare_digest(expected.encode(), offered.encode())
