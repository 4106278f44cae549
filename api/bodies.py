"""Reading what a sender posts, whatever it is: a byte limit enforced while the body streams
in, and JSON parsed without exceptions escaping (depth, non-finite numbers, bad bytes)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request

MAX_BODY = 1024 * 1024  # every webhook body, documented as 413 in the API


class BodyRefused(Exception):
    """The body cannot be read as sent: `status` and a reason for the sender."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


async def read_limited(request: Request, limit: int = MAX_BODY) -> bytes:
    """The raw body, refused (413) as soon as it passes `limit` bytes: a chunked body of any
    size costs at most `limit` bytes of memory, a declared one none at all."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise BodyRefused(400, "Content-Length is not a number")
        if int(declared) > limit:
            raise BodyRefused(413, f"body over {_size(limit)}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyRefused(413, f"body over {_size(limit)}")
        chunks.append(chunk)
    return b"".join(chunks)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_json(body: bytes) -> Any:
    """JSON as RFC 8259 has it (no NaN or Infinity), or BodyRefused(400) with the reason."""
    try:
        return json.loads(body, parse_constant=_refuse_constant)
    except RecursionError:
        raise BodyRefused(400, "the JSON is nested too deeply") from None
    except UnicodeDecodeError:
        raise BodyRefused(400, "the body is not UTF-8") from None
    except ValueError as exc:
        raise BodyRefused(400, f"the body is not valid JSON: {str(exc)[:120]}") from None


def _size(limit: int) -> str:
    return f"{limit / 2**20:g} MiB" if limit >= 2**20 else f"{limit} bytes"
