"""A stateful emulator of the Jira REST API v2, as the `jira` library calls it."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tests.fakes import contract
from tests.fakes.server import EmulatorServer, Request, Response

API = r"/rest/api/(?:2|latest)"
CATEGORIES = {"new": "To Do", "indeterminate": "In Progress", "done": "Done"}


@dataclass
class JiraUser:
    email: str
    account_id: str
    name: str


@dataclass
class JiraState:
    projects: set[str] = field(default_factory=lambda: {"PAY"})
    issues: dict[str, dict[str, Any]] = field(default_factory=dict)
    comments: dict[str, list[str]] = field(default_factory=dict)
    links: list[tuple[str, str, str]] = field(default_factory=list)
    users: list[JiraUser] = field(default_factory=list)
    counter: int = 0


class JiraEmulator(EmulatorServer):
    def __init__(
        self,
        *,
        cloud: bool = True,
        email: str = "bot@example.com",
        token: str = "jira-token",
        project: str = "PAY",
    ) -> None:
        super().__init__()
        self.cloud = cloud
        self.email, self.token = email, token
        self.state = JiraState(projects={project})
        if contract.available():
            self.contract = contract.jira_contract()
        self.state.users.append(JiraUser("alex@example.com", "acc-alex", "alex"))
        for method, path, handler in [
            ("GET", rf"{API}/serverInfo", self._server_info),
            ("GET", rf"{API}/field", self._fields),
            ("GET", rf"{API}/search/jql", self._search_cloud),
            ("GET", rf"{API}/search", self._search_server),
            ("POST", rf"{API}/issue", self._create),
            ("GET", rf"{API}/issue/(?P<key>[A-Z][A-Z0-9]*-\d+)", self._get),
            ("POST", rf"{API}/issue/(?P<key>[A-Z][A-Z0-9]*-\d+)/comment", self._comment),
            ("GET", rf"{API}/user/search", self._user_search),
            ("GET", rf"{API}/issueLinkType", self._link_types),
            ("POST", rf"{API}/issueLink", self._link),
        ]:
            self.route(method, path, self._authenticated(handler))

    # -- what a person does in Jira ------------------------------------------------------

    def set_status(self, key: str, category: str, resolution: str | None = None) -> None:
        with self.lock:
            fields = self.state.issues[key]["fields"]
            fields["status"] = _status(category)
            fields["resolution"] = {"name": resolution} if resolution else None

    def issues_with_label(self, label: str) -> list[str]:
        return [k for k, i in self.state.issues.items() if label in i["fields"]["labels"]]

    # -- handlers ----------------------------------------------------------------------

    def _authenticated(self, handler: Any) -> Any:
        def check(request: Request) -> Response:
            given = request.headers.get("authorization", "")
            if self.cloud:
                expected = (
                    "Basic " + base64.b64encode(f"{self.email}:{self.token}".encode()).decode()
                )
            else:
                expected = f"Bearer {self.token}"
            if given != expected:
                return Response(
                    401, {"errorMessages": ["You are not authenticated."], "errors": {}}
                )
            return handler(request)

        return check

    def _server_info(self, request: Request) -> Response:
        return Response(
            200,
            {
                "baseUrl": self.base_url,
                "version": "1001.0.0" if self.cloud else "9.12.0",
                "versionNumbers": [1001, 0, 0] if self.cloud else [9, 12, 0],
                "deploymentType": "Cloud" if self.cloud else "Server",
                "buildNumber": 100000,
                "serverTitle": "Emulated Jira",
            },
        )

    def _fields(self, request: Request) -> Response:
        names = ["summary", "description", "labels", "duedate", "priority", "assignee", "status"]
        return Response(
            200,
            [
                {
                    "id": n,
                    "key": n,
                    "name": n.title(),
                    "custom": False,
                    "navigable": True,
                    "searchable": True,
                    "clauseNames": [n],
                    "schema": {"type": "string"},
                }
                for n in names
            ],
        )

    def _matching(self, jql: str) -> list[dict[str, Any]]:
        project = re.search(r'project\s*=\s*"?([A-Z0-9]+)"?', jql)
        label = re.search(r'labels\s*=\s*"?([^"\s]+)"?', jql)
        found = [
            issue
            for issue in self.state.issues.values()
            if (project is None or issue["fields"]["project"]["key"] == project.group(1))
            and (label is None or label.group(1) in issue["fields"]["labels"])
        ]
        return sorted(found, key=lambda i: int(i["id"]))

    def _search_cloud(self, request: Request) -> Response:
        if not self.cloud:
            return Response(404, {"errorMessages": ["Not found"]})
        issues = self._matching(request.arg("jql") or "")
        return Response(200, {"issues": issues, "isLast": True})

    def _search_server(self, request: Request) -> Response:
        if self.cloud:  # Atlassian removed it from Cloud
            return Response(410, {"errorMessages": ["The requested API has been removed."]})
        issues = self._matching(request.arg("jql") or "")
        start = int(request.arg("startAt") or 0)
        size = int(request.arg("maxResults") or 50)
        return Response(
            200,
            {
                "startAt": start,
                "maxResults": size,
                "total": len(issues),
                "issues": issues[start : start + size],
            },
        )

    def _create(self, request: Request) -> Response:
        fields = request.json().get("fields", {})
        errors: dict[str, str] = {}
        project = (fields.get("project") or {}).get("key")
        if project not in self.state.projects:
            errors["project"] = "valid project is required"
        if not fields.get("summary"):
            errors["summary"] = "You must specify a summary of the issue."
        assignee = fields.get("assignee")
        if assignee and not any(
            u.account_id == assignee.get("accountId") or u.name == assignee.get("name")
            for u in self.state.users
        ):
            errors["assignee"] = "User does not exist"
        if errors:
            return Response(400, {"errorMessages": [], "errors": errors})
        self.state.counter += 1
        number = sum(1 for k in self.state.issues if k.startswith(f"{project}-")) + 1
        key = f"{project}-{number}"
        now = datetime.now(UTC).isoformat(timespec="milliseconds")
        self.state.issues[key] = {
            "id": str(10000 + self.state.counter),
            "key": key,
            "self": f"{self.base_url}/rest/api/2/issue/{10000 + self.state.counter}",
            "fields": {
                **fields,
                "labels": list(fields.get("labels") or []),
                "status": _status("new"),
                "resolution": None,
                "created": now,
                "updated": now,
            },
        }
        issue = self.state.issues[key]
        return Response(201, {"id": issue["id"], "key": key, "self": issue["self"]})

    def _get(self, request: Request) -> Response:
        issue = self.state.issues.get(request.params["key"])
        if issue is None:
            return Response(
                404,
                {
                    "errorMessages": [
                        "Issue does not exist or you do not have permission to see it."
                    ],
                    "errors": {},
                },
            )
        return Response(200, issue)

    def _comment(self, request: Request) -> Response:
        key = request.params["key"]
        if key not in self.state.issues:
            return Response(404, {"errorMessages": ["Issue does not exist"], "errors": {}})
        body = request.json().get("body", "")
        self.state.comments.setdefault(key, []).append(body)
        number = len(self.state.comments[key])
        return Response(
            201,
            {
                "id": str(number),
                "self": f"{self.base_url}/rest/api/2/issue/{key}/comment/{number}",
                "body": body,
            },
        )

    def _user_search(self, request: Request) -> Response:
        wanted = request.arg("query") if self.cloud else request.arg("username")
        users = [u for u in self.state.users if wanted and wanted in (u.email, u.name)]
        if self.cloud:
            return Response(
                200,
                [
                    {
                        "self": f"{self.base_url}/rest/api/2/user?accountId={u.account_id}",
                        "accountId": u.account_id,
                        "displayName": u.name,
                        "active": True,
                    }
                    for u in users
                ],
            )
        return Response(
            200,
            [
                {
                    "self": f"{self.base_url}/rest/api/2/user?username={u.name}",
                    "name": u.name,
                    "key": u.name,
                    "displayName": u.name,
                    "active": True,
                }
                for u in users
            ],
        )

    def _link_types(self, request: Request) -> Response:
        return Response(
            200,
            {
                "issueLinkTypes": [
                    {
                        "id": "10003",
                        "name": "Relates",
                        "inward": "relates to",
                        "outward": "relates to",
                    }
                ]
            },
        )

    def _link(self, request: Request) -> Response:
        body = request.json()
        self.state.links.append(
            (body["type"]["name"], body["inwardIssue"]["key"], body["outwardIssue"]["key"])
        )
        return Response(201, {})


def _status(category: str) -> dict[str, Any]:
    return {
        "name": CATEGORIES[category],
        "statusCategory": {"key": category, "name": CATEGORIES[category]},
    }
