"""A small emulator of the PagerDuty REST API: an incident's log entries, paged."""

from __future__ import annotations

from typing import Any

from tests.fakes.server import EmulatorServer, Request, Response


class PagerDutyEmulator(EmulatorServer):
    def __init__(self, token: str = "pd-api-token") -> None:
        super().__init__()
        self.token = token
        self.logs: dict[str, list[dict[str, Any]]] = {}
        self.pages_read: list[int] = []  # the offsets answered, in order
        self.route("GET", r"/incidents/(?P<id>[A-Z0-9]+)/log_entries", self._log_entries)

    def _log_entries(self, request: Request) -> Response:
        if request.headers.get("authorization") != f"Token token={self.token}":
            return Response(401, {"error": {"message": "Unauthorized", "code": 2006}})
        entries = self.logs.get(request.params["id"])
        if entries is None:
            return Response(404, {"error": {"message": "Not Found", "code": 2100}})
        limit, offset = int(request.arg("limit") or 25), int(request.arg("offset") or 0)
        # As strict as PagerDuty: at most 100 a page, and classic pagination ends at 10,000.
        if limit > 100 or offset + limit > 10_000:
            return Response(
                400,
                {
                    "error": {
                        "message": "Invalid Input Provided",
                        "code": 2001,
                        "errors": ["Offset must be less than 10000."],
                    }
                },
            )
        self.pages_read.append(offset)
        page = entries[offset : offset + limit]
        return Response(
            200,
            {
                "log_entries": page,
                "limit": limit,
                "offset": offset,
                "more": offset + limit < len(entries),
                "total": len(entries) if request.arg("total") == "true" else None,
            },
        )


def log_entry(kind: str, at: str, summary: str, channel: str = "website") -> dict[str, Any]:
    return {
        "id": f"R{abs(hash((kind, at))) % 10**8}",
        "type": f"{kind}_log_entry",
        "summary": summary,
        "created_at": at,
        "channel": {"type": channel, "summary": channel},
        "agent": {"type": "user_reference", "summary": "Sam"},
    }
