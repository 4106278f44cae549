"""The local tracker: a real ticket store in one SQLite file, the embedded default."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel

from domain.models import TicketRef
from integrations.errors import TicketNotFound, TrackerRejected, TrackerUnavailable
from integrations.tracker import CreationJournal, TicketRequest, TicketStatus

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tickets (
    key TEXT PRIMARY KEY,
    project TEXT NOT NULL,
    number INTEGER NOT NULL,
    team TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    assignee TEXT,
    labels TEXT NOT NULL DEFAULT '[]',
    due TEXT,
    priority TEXT,
    state TEXT NOT NULL DEFAULT 'open',
    resolution TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (project, number)
);
CREATE TABLE IF NOT EXISTS comments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ticket_key TEXT NOT NULL REFERENCES tickets(key),
    body TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS comments_by_ticket ON comments(ticket_key, id);
"""

RESOLUTIONS = ("completed", "not_planned")


class LocalComment(BaseModel):
    body: str
    created_at: datetime


class LocalTicket(BaseModel):
    key: str
    team: str
    title: str
    body: str
    assignee: str | None
    labels: list[str]
    due: datetime | None
    priority: str | None
    state: str
    resolution: str
    created_at: datetime
    updated_at: datetime
    url: str
    comments: list[LocalComment] = []


class LocalTracker:
    """Tickets keyed `<PROJECT>-<n>` per team, created at most once per idempotency key."""

    kind = "local"

    def __init__(
        self, path: Path, projects: Mapping[str, str], base_url: str = "local://tickets"
    ) -> None:
        self.path = Path(path)
        self.projects = dict(projects)
        self.base_url = base_url.rstrip("/")
        self._local = threading.local()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")  # persistent: set once per database file
            db.executescript(_SCHEMA)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """One connection per thread (activities run on a thread pool), kept open."""
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        try:
            if db is None:
                db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
                db.row_factory = sqlite3.Row
                db.execute("PRAGMA busy_timeout=10000")
                # WAL with NORMAL sync: a crash of the process loses nothing committed.
                db.execute("PRAGMA synchronous=NORMAL")
                self._local.db = db
            yield db
        except sqlite3.Error as exc:  # locked, disk full, unreadable: worth another try
            self._local.db = None
            if db is not None:
                db.close()
            raise TrackerUnavailable(f"local tracker database {self.path}: {exc}") from exc

    def _url(self, key: str) -> str:
        return f"{self.base_url}/{key}"

    def _ref(self, key: str) -> TicketRef:
        return TicketRef(tracker=self.kind, key=key, url=self._url(key))

    def create_ticket(
        self, request: TicketRequest, journal: CreationJournal | None = None
    ) -> TicketRef:
        # The lookup by key is consistent at once: earlier attempts need no journal.
        project = self.projects.get(request.team)
        if project is None:
            raise TrackerRejected(
                f"local tracker: team {request.team!r} has no project in the routing file"
            )
        now = _now()
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                found = db.execute(
                    "SELECT key FROM tickets WHERE idempotency_key = ?", (request.idempotency_key,)
                ).fetchone()
                if found is not None:
                    db.execute("COMMIT")
                    return self._ref(found["key"])
                (number,) = db.execute(
                    "SELECT COALESCE(MAX(number), 0) + 1 FROM tickets WHERE project = ?", (project,)
                ).fetchone()
                key = f"{project}-{number}"
                db.execute(
                    "INSERT INTO tickets (key, project, number, team, idempotency_key, title, body,"
                    " assignee, labels, due, priority, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        key,
                        project,
                        number,
                        request.team,
                        request.idempotency_key,
                        request.title,
                        request.body,
                        request.assignee,
                        json.dumps(request.labels),
                        request.due.isoformat() if request.due else None,
                        request.priority,
                        now,
                        now,
                    ),
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return self._ref(key)

    def find_ticket(self, idempotency_key: str, team: str) -> TicketRef | None:
        with self._connect() as db:
            row = db.execute(
                "SELECT key FROM tickets WHERE idempotency_key = ?", (idempotency_key,)
            ).fetchone()
        return self._ref(row["key"]) if row else None

    def ticket_status(self, ref: TicketRef) -> TicketStatus:
        with self._connect() as db:
            row = db.execute(
                "SELECT state, resolution FROM tickets WHERE key = ?", (ref.key,)
            ).fetchone()
        if row is None:
            raise TicketNotFound(f"local tracker: ticket {ref.key} does not exist")
        return TicketStatus(
            ref=ref,
            done=row["state"] == "closed",
            resolution=row["resolution"],
            status_name=row["state"],
        )

    def comment(self, ref: TicketRef, text: str) -> None:
        with self._connect() as db:
            if db.execute("SELECT 1 FROM tickets WHERE key = ?", (ref.key,)).fetchone() is None:
                raise TicketNotFound(f"local tracker: ticket {ref.key} does not exist")
            db.execute(
                "INSERT INTO comments (ticket_key, body, created_at) VALUES (?, ?, ?)",
                (ref.key, text, _now()),
            )

    # What a person does in the tracker: close or reopen a ticket.

    def set_state(self, key: str, *, closed: bool, resolution: str = "completed") -> LocalTicket:
        if closed and resolution not in RESOLUTIONS:
            raise TrackerRejected(f"resolution must be one of {', '.join(RESOLUTIONS)}")
        with self._connect() as db:
            updated = db.execute(
                "UPDATE tickets SET state = ?, resolution = ?, updated_at = ? WHERE key = ?",
                ("closed" if closed else "open", resolution if closed else "", _now(), key),
            ).rowcount
        if not updated:
            raise TicketNotFound(f"local tracker: ticket {key} does not exist")
        ticket = self.get(key)
        assert ticket is not None
        return ticket

    def get(self, key: str) -> LocalTicket | None:
        tickets = self.list_tickets(key=key)
        return tickets[0] if tickets else None

    def list_tickets(self, *, team: str | None = None, key: str | None = None) -> list[LocalTicket]:
        query = "SELECT * FROM tickets WHERE 1=1"
        args: list[str] = []
        if team is not None:
            query += " AND team = ?"
            args.append(team)
        if key is not None:
            query += " AND key = ?"
            args.append(key)
        with self._connect() as db:
            rows = db.execute(query + " ORDER BY project, number", args).fetchall()
            comments = db.execute(
                "SELECT ticket_key, body, created_at FROM comments ORDER BY id"
            ).fetchall()
        by_ticket: dict[str, list[LocalComment]] = {}
        for c in comments:
            by_ticket.setdefault(c["ticket_key"], []).append(
                LocalComment(body=c["body"], created_at=c["created_at"])
            )
        return [
            LocalTicket(
                key=r["key"],
                team=r["team"],
                title=r["title"],
                body=r["body"],
                assignee=r["assignee"],
                labels=json.loads(r["labels"]),
                due=r["due"],
                priority=r["priority"],
                state=r["state"],
                resolution=r["resolution"],
                created_at=r["created_at"],
                updated_at=r["updated_at"],
                url=self._url(r["key"]),
                comments=by_ticket.get(r["key"], []),
            )
            for r in rows
        ]


def _now() -> str:
    return datetime.now(UTC).isoformat()
