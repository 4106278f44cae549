"""Jira Cloud and Data Center as a tracker, through the `jira` library."""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import requests
from jira import JIRA, JIRAError

from domain.models import TicketRef
from integrations.errors import TicketNotFound, TrackerRejected, TrackerUnavailable
from integrations.payload import obj
from integrations.tracker import CreationJournal, TicketRequest, TicketStatus, with_mentions

DEFAULT_PRIORITIES = {"P1": "Highest", "P2": "High", "P3": "Medium", "P4": "Low"}
# Resolutions that mean "closed without doing it"; everything else done is "completed".
NOT_PLANNED = {"won't do", "won't fix", "duplicate", "cannot reproduce", "declined", "obsolete"}


def idempotency_label(key: str) -> str:
    """A label that finds the ticket again: Jira and GitHub labels are short and spaceless."""
    return "pm-" + hashlib.sha256(key.encode()).hexdigest()[:20]


@dataclass(frozen=True)
class JiraTarget:
    """Where and how one team files in Jira. `token` is a secret: never in repr or errors."""

    team: str
    url: str
    project: str
    deployment: Literal["cloud", "datacenter"] = "cloud"
    issue_type: str = "Task"
    email: str | None = None
    token: str = field(default="", repr=False)
    priorities: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_PRIORITIES))
    extra_fields: dict[str, Any] = field(default_factory=dict)
    link_type: str = "Relates"
    timeout_seconds: float = 10.0
    # How long Jira's search may miss an issue after it was created. Cloud's search/jql is
    # eventually consistent ("a few seconds to minutes"); Data Center's search is not.
    search_lag_seconds: float | None = None  # None: 60 s on Cloud, 0 on Data Center

    @property
    def search_lag(self) -> float:
        if self.search_lag_seconds is not None:
            return self.search_lag_seconds
        return 60.0 if self.deployment == "cloud" else 0.0


class JiraTracker:
    kind = "jira"

    def __init__(self, target: JiraTarget, clock: Callable[[], float] = time.time) -> None:
        self.target = target
        self._clock = clock  # wall-clock seconds: the journal's times cross processes
        self._client: JIRA | None = None
        self._lock = threading.Lock()
        self._people: dict[str, dict[str, str] | None] = {}  # email -> Jira user, per tracker
        # This process's own memory of creates, beside the journal an activity keeps in its
        # heartbeat (a server may drop heartbeat details when an attempt fails).
        self._created: dict[str, str] = {}  # idempotency key -> issue key
        self._attempted: dict[str, float] = {}  # idempotency key -> when a create was sent

    @property
    def client(self) -> JIRA:
        with self._lock:
            if self._client is None:
                self._client = self._call(self._connect)
            return self._client

    def _connect(self) -> JIRA:
        target = self.target
        auth: dict[str, Any] = (
            {"basic_auth": (target.email or "", target.token)}
            if target.deployment == "cloud"
            else {"token_auth": target.token}
        )
        # max_retries=0: the library would retry POST too (duplicates); Temporal retries.
        return JIRA(
            server=target.url,
            max_retries=0,
            timeout=target.timeout_seconds,
            get_server_info=True,
            **auth,
        )

    # -- the tracker port ------------------------------------------------------------------

    def find_ticket(self, idempotency_key: str, team: str) -> TicketRef | None:
        label = idempotency_label(idempotency_key)
        jql = f'project = "{self.target.project}" AND labels = "{label}" ORDER BY created ASC'
        found = self._call(lambda: self.client.search_issues(jql, maxResults=1, fields="summary"))
        return self._ref(found[0].key) if found else None

    def create_ticket(
        self, request: TicketRequest, journal: CreationJournal | None = None
    ) -> TicketRef:
        """Exactly once, although a create's answer can be lost and Cloud's search lags:
        the key is noted the moment Jira answers, and after a create whose outcome is
        unknown the label is looked up only once the search can show it."""
        journal = journal or CreationJournal()
        idempotency_key = request.idempotency_key
        known = journal.key or self._created.get(idempotency_key)
        if known is not None:
            ref = self._ref(known)
            self._call(lambda: self.client.issue(known, fields="summary"), key=known)
            self._finish(ref, request)
            return ref
        attempted = max(
            (t for t in (journal.attempted_at, self._attempted.get(idempotency_key)) if t),
            default=None,
        )
        if attempted is not None:
            wait = attempted + self.target.search_lag - self._clock()
            if wait > 0:
                raise TrackerUnavailable(
                    f"jira ({self.target.team}, {self.target.url}): a create sent "
                    f"{max(0.0, self._clock() - attempted):.0f} s ago may have filed the ticket; "
                    f"its search shows new issues within {self.target.search_lag:.0f} s",
                    retry_after=wait,
                )
        existing = self.find_ticket(idempotency_key, request.team)
        if existing is not None:
            self._attempted.pop(idempotency_key, None)
            self._finish(existing, request)
            return existing
        fields = self._fields(request)
        # Noted before it is sent: from here on a retry must not trust a search too early.
        sent_at = self._clock()
        self._attempted[idempotency_key] = sent_at
        journal.note(attempted_at=sent_at)
        try:
            issue = self._call(lambda: self.client.create_issue(fields=fields, prefetch=False))
        except TrackerRejected:  # refused: nothing was filed
            self._attempted.pop(idempotency_key, None)
            journal.note()
            raise
        ref = self._ref(issue.key)
        self._created[idempotency_key] = issue.key
        self._attempted.pop(idempotency_key, None)
        journal.note(key=issue.key)
        self._finish(ref, request)
        return ref

    def _fields(self, request: TicketRequest) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "project": {"key": self.target.project},
            "issuetype": {"name": self.target.issue_type},
            "summary": request.title[:250],
            "description": request.body,
            "labels": _labels(request),
            **self.target.extra_fields,
        }
        if request.due is not None:
            fields["duedate"] = request.due.date().isoformat()
        if request.priority and request.priority in self.target.priorities:
            fields["priority"] = {"name": self.target.priorities[request.priority]}
        assignee = self._user(request.assignee) if request.assignee else None
        if assignee is not None:
            fields["assignee"] = assignee
        elif request.assignee:
            fields["description"] += f"\n\nOwner: {request.assignee} (no Jira user found)"
        return fields

    def _finish(self, ref: TicketRef, request: TicketRequest) -> None:
        """What follows the create; safe to repeat (a link that exists is not doubled)."""
        if request.related_key:
            self._link(ref.key, request.related_key)

    def ticket_status(self, ref: TicketRef) -> TicketStatus:
        issue = self._call(
            lambda: self.client.issue(ref.key, fields="status,resolution"), key=ref.key
        )
        return ticket_status_of(ref, issue.raw.get("fields"))

    def comment(self, ref: TicketRef, text: str) -> None:
        text = with_mentions(text, self._mention)
        self._call(lambda: self.client.add_comment(ref.key, text), key=ref.key)

    def _mention(self, email: str) -> str | None:
        """Jira's wiki mention: [~accountid:...] on Cloud, [~username] on Data Center."""
        if email not in self._people:
            self._people[email] = self._user(email)
        user = self._people[email]
        if user is None:
            return None
        return f"[~accountid:{user['accountId']}]" if "accountId" in user else f"[~{user['name']}]"

    # -- helpers ------------------------------------------------------------------------

    def _ref(self, key: str) -> TicketRef:
        return TicketRef(
            tracker=self.kind, key=key, url=f"{self.target.url.rstrip('/')}/browse/{key}"
        )

    def _user(self, email: str) -> dict[str, str] | None:
        """Cloud knows people by accountId, Data Center by username."""
        if self.target.deployment == "cloud":
            users = self._call(lambda: self.client.search_users(query=email, maxResults=2))
            return {"accountId": users[0].accountId} if users else None
        users = self._call(lambda: self.client.search_users(user=email, maxResults=2))
        return {"name": users[0].name} if users else None

    def _link(self, key: str, related: str) -> None:
        # A missing link type or a foreign key must not lose the ticket itself.
        with contextlib.suppress(TrackerRejected):
            self._call(lambda: self.client.create_issue_link(self.target.link_type, key, related))

    def _call(self, fn: Any, key: str | None = None) -> Any:
        """Run a client call; map what went wrong to our typed errors, without secrets."""
        where = f"jira ({self.target.team}, {self.target.url})"
        try:
            return fn()
        except JIRAError as exc:
            status = exc.status_code or 0
            reason = _jira_reason(exc)
            if status == 404 and key is not None:
                raise TicketNotFound(f"{where}: ticket {key} not found") from None
            if status == 429 or status >= 500 or status == 0:
                raise TrackerUnavailable(
                    f"{where}: HTTP {status or 'error'}: {reason}",
                    retry_after=_retry_after(exc),
                ) from None
            raise TrackerRejected(f"{where}: HTTP {status}: {reason}") from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise TrackerUnavailable(f"{where}: {type(exc).__name__}") from None
        except (requests.RequestException, ValueError) as exc:
            # Unsendable (a token with a newline, a bad URL): the text may quote the header.
            raise TrackerRejected(
                f"{where}: the request could not be sent ({type(exc).__name__})"
            ) from None


def ticket_status_of(ref: TicketRef, fields: Any) -> TicketStatus:
    """Jira's word on an issue, from its `fields` as the REST API and the webhooks both send
    them: done by status category (whatever the status is called), "not planned" by the
    resolution. The one mapping, for the poll and the webhook alike."""
    fields = obj(fields)
    status = obj(fields.get("status"))
    category = obj(status.get("statusCategory"))
    resolution = obj(fields.get("resolution"))
    done = category.get("key") == "done"
    name = str(resolution.get("name") or "").strip().lower()
    return TicketStatus(
        ref=ref,
        done=done,
        resolution=("not_planned" if name in NOT_PLANNED else "completed") if done else "",
        status_name=str(status.get("name") or ""),
    )


def _labels(request: TicketRequest) -> list[str]:
    labels = [*request.labels, idempotency_label(request.idempotency_key)]
    # Jira labels cannot hold spaces.
    return [label.replace(" ", "-") for label in dict.fromkeys(labels)]


def _jira_reason(exc: JIRAError) -> str:
    """Jira's own words (errorMessages / errors), never the request with its headers."""
    response = getattr(exc, "response", None)
    try:
        body = response.json() if response is not None else {}
    except ValueError:
        body = {}
    parts = list(body.get("errorMessages") or [])
    parts += [f"{name}: {message}" for name, message in (body.get("errors") or {}).items()]
    return "; ".join(parts) or (exc.text or "no details")[:300]


def _retry_after(exc: JIRAError) -> float | None:
    # Only the response's headers: JIRAError.headers are the request's (with Authorization).
    response = getattr(exc, "response", None)
    value = response.headers.get("Retry-After") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
