"""GitHub Issues as a tracker, through PyGithub."""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from typing import Any

import requests
from github import Auth, Github, GithubException, UnknownObjectException
from github.Repository import Repository

from domain.models import TicketRef
from integrations.errors import TicketNotFound, TrackerRejected, TrackerUnavailable
from integrations.jira import idempotency_label
from integrations.tracker import CreationJournal, TicketRequest, TicketStatus, with_mentions

MARKER = "<!-- postmortem-engine key={key} -->"
NOT_PLANNED = {"not_planned", "duplicate"}


@dataclass(frozen=True)
class GitHubTarget:
    """Where and how one team files in GitHub. Secrets stay out of repr and errors."""

    team: str
    repo: str  # owner/name
    api_url: str = "https://api.github.com"
    token: str = field(default="", repr=False)
    app_id: int | None = None
    installation_id: int | None = None
    private_key: str = field(default="", repr=False)
    logins: dict[str, str] = field(default_factory=dict)  # owner email -> GitHub login
    milestones: bool = False
    timeout_seconds: int = 10


class GitHubTracker:
    kind = "github"

    def __init__(self, target: GitHubTarget) -> None:
        self.target = target
        self._repo: Repository | None = None
        self._labels: set[str] = set()
        self._lock = threading.Lock()

    @property
    def repo(self) -> Repository:
        with self._lock:
            if self._repo is None:
                self._repo = self.call(lambda: self._github().get_repo(self.target.repo))
            return self._repo

    def _github(self) -> Github:
        target = self.target
        auth: Auth.Auth
        if target.app_id is not None:
            if target.installation_id is None:
                raise TrackerRejected(f"github ({target.team}): app_id needs installation_id")
            auth = Auth.AppAuth(target.app_id, target.private_key).get_installation_auth(
                target.installation_id
            )
        else:
            auth = Auth.Token(target.token)
        # retry=None: PyGithub's default retries POST too (duplicate issues); Temporal retries.
        return Github(
            base_url=target.api_url.rstrip("/"),
            auth=auth,
            retry=None,
            timeout=int(target.timeout_seconds),
            seconds_between_requests=0,
            seconds_between_writes=0,
        )

    # -- the tracker port ------------------------------------------------------------------

    def find_ticket(self, idempotency_key: str, team: str) -> TicketRef | None:
        # The issue list filtered by label: consistent at once, unlike the search index.
        label = idempotency_label(idempotency_key)
        issue = self.call(
            lambda: next(iter(self.repo.get_issues(state="all", labels=[label])), None)
        )
        return self._ref(issue.number, issue.html_url) if issue is not None else None

    def create_ticket(
        self, request: TicketRequest, journal: CreationJournal | None = None
    ) -> TicketRef:
        # The lookup by key is consistent at once: earlier attempts need no journal.
        existing = self.find_ticket(request.idempotency_key, request.team)
        if existing is not None:
            return existing
        labels = [*request.labels, idempotency_label(request.idempotency_key)]
        labels = list(dict.fromkeys(label[:50] for label in labels))
        for label in labels:
            self._ensure_label(label)
        body = request.body
        login = self._login(request.assignee)
        if request.assignee and login is None:
            body += f"\n\nOwner: {request.assignee} (no GitHub login known)"
        if request.due is not None:
            body += f"\n\nDue: {request.due.date().isoformat()}"
        body += "\n\n" + MARKER.format(key=request.idempotency_key)
        extra: dict[str, Any] = {}
        if login:
            extra["assignees"] = [login]
        if self.target.milestones and request.due is not None:
            extra["milestone"] = self._milestone(request.due)
        issue = self.call(
            lambda: self.repo.create_issue(
                title=request.title[:256], body=body, labels=labels, **extra
            )
        )
        return self._ref(issue.number, issue.html_url)

    def ticket_status(self, ref: TicketRef) -> TicketStatus:
        issue = self.call(lambda: self.repo.get_issue(_number(ref)), key=ref.key)
        return ticket_status_of(ref, {"state": issue.state, "state_reason": issue.state_reason})

    def comment(self, ref: TicketRef, text: str) -> None:
        number = _number(ref)
        text = with_mentions(
            text,
            lambda email: f"@{self.target.logins[email]}" if email in self.target.logins else None,
        )
        self.call(lambda: self.repo.get_issue(number).create_comment(text), key=ref.key)

    # -- helpers ------------------------------------------------------------------------

    def _ref(self, number: int, url: str) -> TicketRef:
        # owner/repo#N: GitHub's own reference form, unique across repositories.
        return TicketRef(tracker=self.kind, key=f"{self.target.repo}#{number}", url=url)

    def _login(self, owner: str | None) -> str | None:
        if not owner:
            return None
        if owner in self.target.logins:
            return self.target.logins[owner]
        return None if "@" in owner else owner  # an owner given as a login is used as is

    def _ensure_label(self, name: str) -> None:
        if name in self._labels:
            return
        try:
            self.call(lambda: self.repo.get_label(name))
        except TicketNotFound:
            with contextlib.suppress(TrackerRejected):  # created meanwhile elsewhere: fine
                self.call(lambda: self.repo.create_label(name, "5319e7"))
        self._labels.add(name)

    def _milestone(self, due: datetime) -> Any:
        title = f"Due {due.date().isoformat()}"
        for milestone in self.call(lambda: list(self.repo.get_milestones(state="open"))):
            if milestone.title == title:
                return milestone
        # PyGithub sends the wall time with a Z: give it UTC midnight of the due day.
        due_on = datetime.combine(due.astimezone(UTC).date(), time(), tzinfo=UTC)
        return self.call(lambda: self.repo.create_milestone(title=title, due_on=due_on))

    def call(self, fn: Any, key: str | None = None) -> Any:
        where = f"github ({self.target.team}, {self.target.repo})"
        try:
            return fn()
        except UnknownObjectException:
            raise TicketNotFound(
                f"{where}: {'ticket ' + key if key else 'object'} not found"
            ) from None
        except GithubException as exc:
            status = exc.status
            message = _github_reason(exc)
            limited = status == 429 or (status == 403 and "rate limit" in message.lower())
            if limited or status >= 500:
                raise TrackerUnavailable(
                    f"{where}: HTTP {status}: {message}", retry_after=_retry_after(exc.headers)
                ) from None
            raise TrackerRejected(f"{where}: HTTP {status}: {message}") from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise TrackerUnavailable(f"{where}: {type(exc).__name__}") from None
        except (requests.RequestException, ValueError) as exc:
            # Unsendable (a token with a newline, a bad URL): the text may quote the header.
            raise TrackerRejected(
                f"{where}: the request could not be sent ({type(exc).__name__})"
            ) from None


def ticket_status_of(ref: TicketRef, issue: Any) -> TicketStatus:
    """GitHub's word on an issue, from the issue object as the REST API and the `issues`
    webhook both send it: done when closed, "not planned" by `state_reason`. The one mapping,
    for the poll and the webhook alike."""
    issue = issue if isinstance(issue, dict) else {}
    state = str(issue.get("state") or "")
    done = state == "closed"
    reason = str(issue.get("state_reason") or "")
    return TicketStatus(
        ref=ref,
        done=done,
        resolution=("not_planned" if reason in NOT_PLANNED else "completed") if done else "",
        status_name=state,
    )


def _number(ref: TicketRef) -> int:
    return int(ref.key.rpartition("#")[2])


def _github_reason(exc: GithubException) -> str:
    data = exc.data if isinstance(exc.data, dict) else {}
    message = str(data.get("message") or "no details")
    errors = data.get("errors") or []
    details = [e.get("message") or e.get("code") for e in errors if isinstance(e, dict)]
    return "; ".join([message, *[d for d in details if d]])[:300]


def _retry_after(headers: Any) -> float | None:
    headers = headers or {}
    value = headers.get("Retry-After") or headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
