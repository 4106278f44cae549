"""A stateful emulator of the Jira REST API v2, as the `jira` library calls it."""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Callable
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
        search_lag: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`search_lag`: on Cloud, seconds before a created issue shows in search/jql (as
        Atlassian documents: eventually consistent, unless reconciled by id)."""
        super().__init__()
        self.cloud = cloud
        self.search_lag = search_lag if cloud else 0.0  # Data Center's search is consistent
        self.indexed_at: dict[str, float] = {}  # issue key -> when search can see it
        self.clock = clock
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

    def _matching(self, jql: str, reconciled: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
        """Issues the query selects, as search sees them now (raises JqlError)."""
        clauses, order = parse_jql(jql)
        now = self.clock()
        found = [
            issue
            for key, issue in self.state.issues.items()
            if (self.indexed_at.get(key, 0.0) <= now or issue["id"] in reconciled)
            and all(_holds(clause, issue) for clause in clauses)
        ]
        for name, descending in reversed(order):
            found.sort(key=lambda i: _sort_key(name, i), reverse=descending)
        return found if order else sorted(found, key=lambda i: -int(i["id"]))

    def _search(self, request: Request) -> list[dict[str, Any]] | Response:
        reconcile = request.arg("reconcileIssues") or ""
        reconciled = frozenset(x.strip() for x in reconcile.split(",") if x.strip())
        if len(reconciled) > 50:
            return Response(400, {"errorMessages": ["reconcileIssues: at most 50"], "errors": {}})
        try:
            return self._matching(request.arg("jql") or "", reconciled)
        except JqlError as exc:
            return Response(400, {"errorMessages": [str(exc)], "errors": {}})

    def _search_cloud(self, request: Request) -> Response:
        if not self.cloud:
            return Response(404, {"errorMessages": ["Not found"]})
        issues = self._search(request)
        if isinstance(issues, Response):
            return issues
        return Response(200, {"issues": issues, "isLast": True})

    def _search_server(self, request: Request) -> Response:
        if self.cloud:  # Atlassian removed it from Cloud
            return Response(410, {"errorMessages": ["The requested API has been removed."]})
        issues = self._search(request)
        if isinstance(issues, Response):
            return issues
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
        self.indexed_at[key] = self.clock() + self.search_lag
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
        link = (body["type"]["name"], body["inwardIssue"]["key"], body["outwardIssue"]["key"])
        if link not in self.state.links:  # Jira keeps one link of a type between two issues
            self.state.links.append(link)
        return Response(201, {})


def _status(category: str) -> dict[str, Any]:
    return {
        "name": CATEGORIES[category],
        "statusCategory": {"key": category, "name": CATEGORIES[category]},
    }


# -- JQL, as strictly as Jira reads it (the subset the engine may send) ----------------------


class JqlError(ValueError):
    """Jira answers 400 with this text: a query it cannot parse selects nothing."""


FIELDS = {"project", "labels", "key", "issuekey", "status", "statuscategory", "created"}
_TOKEN = re.compile(
    r'\s*(?:(?P<string>"(?:[^"\\]|\\.)*")|(?P<op>!=|=|\(|\)|,)|(?P<word>[A-Za-z0-9_.\-]+))'
)


def _tokens(jql: str) -> list[tuple[str, str]]:
    out, at = [], 0
    while at < len(jql):
        if jql[at:].strip() == "":
            break
        match = _TOKEN.match(jql, at)
        if match is None:
            raise JqlError(
                f"Error in the JQL Query: the character '{jql[at:].strip()[0]}' "
                f"is a reserved JQL character (char {at})."
            )
        kind = match.lastgroup or ""
        text = match.group(kind)
        out.append((kind, text[1:-1].replace('\\"', '"') if kind == "string" else text))
        at = match.end()
    return out


def parse_jql(jql: str) -> tuple[list[tuple[str, str, list[str]]], list[tuple[str, bool]]]:
    """`field (= | != | in | not in) value [AND ...] [ORDER BY field [ASC|DESC], ...]`."""
    tokens = _tokens(jql)
    clauses: list[tuple[str, str, list[str]]] = []
    order: list[tuple[str, bool]] = []
    i = 0

    def take(kind: str | None = None, word: str | None = None) -> str:
        nonlocal i
        if i >= len(tokens):
            raise JqlError("Error in the JQL Query: Expecting more of the query at its end.")
        got_kind, text = tokens[i]
        if (kind and got_kind != kind) or (word and text.lower() != word):
            raise JqlError(f"Error in the JQL Query: Expecting {word or kind} but got '{text}'.")
        i += 1
        return text

    def field_name() -> str:
        name = take("word").lower()
        if name not in FIELDS:
            raise JqlError(
                f"Field '{name}' does not exist or you do not have permission to view it."
            )
        return "key" if name == "issuekey" else name

    def peek(word: str) -> bool:
        return i < len(tokens) and tokens[i][1].lower() == word

    while i < len(tokens) and not peek("order"):
        if clauses:
            take("word", "and")
        name = field_name()
        if peek("not"):
            take("word", "not")
            take("word", "in")
            op = "not in"
        elif peek("in"):
            take("word", "in")
            op = "in"
        else:
            op = take("op")
            if op not in ("=", "!="):
                raise JqlError(f"Error in the JQL Query: Expecting an operator but got '{op}'.")
        if op in ("in", "not in"):
            take("op")  # (
            values = [_value(take())]
            while peek(","):
                take("op")
                values.append(_value(take()))
            if take("op") != ")":
                raise JqlError("Error in the JQL Query: Expecting ')'.")
        else:
            values = [_value(take())]
        clauses.append((name, op, values))
    if peek("order"):
        take("word", "order")
        take("word", "by")
        while True:
            name = field_name()
            descending = False
            if i < len(tokens) and tokens[i][1].lower() in ("asc", "desc"):
                descending = take().lower() == "desc"
            order.append((name, descending))
            if not peek(","):
                break
            take("op")
    if i != len(tokens):
        raise JqlError(f"Error in the JQL Query: Expecting end of query but got '{tokens[i][1]}'.")
    return clauses, order


def _value(text: str) -> str:
    if text in ("(", ")", ",", "=", "!="):
        raise JqlError(f"Error in the JQL Query: Expecting a value but got '{text}'.")
    return text


def _field_values(name: str, issue: dict[str, Any]) -> list[str]:
    fields = issue["fields"]
    if name == "project":
        return [fields["project"]["key"]]
    if name == "labels":
        return list(fields["labels"])
    if name == "key":
        return [issue["key"]]
    if name == "status":
        return [fields["status"]["name"]]
    if name == "statuscategory":
        return [fields["status"]["statusCategory"]["name"]]
    return [fields["created"]]


def _holds(clause: tuple[str, str, list[str]], issue: dict[str, Any]) -> bool:
    name, op, values = clause
    have = {v.lower() for v in _field_values(name, issue)}
    hit = any(v.lower() in have for v in values)
    return hit if op in ("=", "in") else not hit


def _sort_key(name: str, issue: dict[str, Any]) -> Any:
    return int(issue["id"]) if name in ("created", "key") else _field_values(name, issue)
