"""A small emulator of the incident.io API: incidents and their updates, cursor-paged."""

from __future__ import annotations

from typing import Any

from tests.fakes.server import EmulatorServer, Request, Response


class IncidentIoEmulator(EmulatorServer):
    def __init__(self, key: str = "iio-key", page_size: int = 2) -> None:
        super().__init__()
        self.key, self.page_size = key, page_size
        self.incidents: dict[str, dict[str, Any]] = {}
        self.updates: dict[str, list[dict[str, Any]]] = {}
        self.route("GET", r"/v2/incidents/(?P<id>[^/]+)", self._incident)
        self.route("GET", r"/v2/incident_updates", self._updates)

    def _authorized(self, request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {self.key}"

    def _incident(self, request: Request) -> Response:
        if not self._authorized(request):
            return Response(401, {"type": "authentication_error"})
        incident = self.incidents.get(request.params["id"])
        return (
            Response(200, {"incident": incident})
            if incident
            else Response(404, {"type": "not_found"})
        )

    def _updates(self, request: Request) -> Response:
        if not self._authorized(request):
            return Response(401, {"type": "authentication_error"})
        updates = self.updates.get(request.arg("incident_id") or "", [])
        start = int(request.arg("after") or 0)
        page = updates[start : start + self.page_size]
        after = str(start + self.page_size) if start + self.page_size < len(updates) else None
        return Response(
            200,
            {
                "incident_updates": page,
                "pagination_meta": {"after": after, "page_size": self.page_size},
            },
        )


def private_incident(internal_id: str, reference: str, category: str = "closed") -> dict[str, Any]:
    return {
        "id": internal_id,
        "reference": reference,
        "name": "Leaked credentials rotated",
        "summary": "A token was exposed in a build log.",
        "visibility": "private",
        "mode": "standard",
        "incident_status": {"name": "Closed", "category": category},
        "severity": {"name": "Critical"},
        "custom_field_entries": [
            {"custom_field": {"name": "Team"}, "values": [{"value_option": {"value": "payments"}}]}
        ],
        "created_at": "2026-11-20T08:00:00Z",
        "updated_at": "2026-11-20T11:00:00Z",
    }


def update(at: str, status: str, message: str, who: str = "Sam") -> dict[str, Any]:
    return {
        "id": f"u-{at}",
        "created_at": at,
        "message": message,
        "new_incident_status": {"name": status},
        "updater": {"user": {"name": who}},
    }
