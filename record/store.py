"""Writing and reading the record. `Record.project` is the only writer: an upsert keyed by
workflow id that applies only a newer version, with the post-mortem's actions and factors
replaced in the same transaction (so a reader never sees one without the others)."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    Connection,
    Engine,
    and_,
    create_engine,
    delete,
    event,
    func,
    insert,
    or_,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, ProgrammingError

from config import Settings
from domain import similarity
from domain.models import Phase, PostmortemDocument, PostmortemState
from record.schema import (
    actions,
    factors,
    finding_terms,
    links,
    postmortems,
    problems,
    turns,
)

MIGRATIONS = Path(__file__).parent / "migrations"
# PostgreSQL: processes starting together (two workers, two APIs) upgrade one at a time.
UPGRADE_LOCK = 140_014
TURN_ATTEMPTS = 50
# PostgreSQL's codes for a record not ready to read: undefined table, insufficient privilege.
NOT_READY = {"42P01", "42501"}


class RecordUnavailable(Exception):
    """The database cannot be reached or refused the write for now: retry later (an
    activity retries; the API answers 503)."""


@dataclass(frozen=True)
class Recorded:
    """A post-mortem as the record has it."""

    version: int
    state: PostmortemState
    recorded_at: datetime


def open_record(settings: Settings, *, upgrade: bool = True) -> Record:
    """The record of these settings, its schema upgraded in place to the newest migration
    (the worker and the API at start; the CLI only reads)."""
    if settings.record_url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    record = Record(settings.record_database)
    if upgrade:
        record.upgrade()
    return record


def database_url(value: str) -> str:
    """`sqlite:///path`, `postgresql://…` (psycopg 3 is the driver)."""
    if value.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + value.split("://", 1)[1]
    return value


class Record:
    def __init__(self, url: str) -> None:
        self.url = database_url(url)
        self.engine: Engine = create_engine(self.url, pool_pre_ping=True)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)

    # -- the schema ---------------------------------------------------------------------

    def upgrade(self, target: str = "head") -> None:
        """The schema at its newest migration (or `target`), in place: nothing is lost."""
        with self._begin() as connection:
            if self.engine.dialect.name == "postgresql":
                connection.execute(text(f"SELECT pg_advisory_xact_lock({UPGRADE_LOCK})"))
            config = _alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, target)

    def revision(self) -> str | None:
        with self._begin() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    @staticmethod
    def head() -> str | None:
        return ScriptDirectory.from_config(_alembic_config()).get_current_head()

    # -- the projection -----------------------------------------------------------------

    def project(
        self, document: PostmortemDocument, version: int, *, same_version: bool = False
    ) -> bool:
        """The post-mortem as it is at `version` (its whole state; a document alone before
        the projection sent the state). True when written; False when the record
        already has this version or a newer one (a retry, a late write): nothing changes.
        `same_version` (`postmortem record sync`): the same version is written again, the
        state asked of the workflow being as new as the one its projection wrote, or newer.
        A post-mortem started later under the same id (Temporal deleted the first, and the
        incident came again) replaces the earlier one whatever its version; the earlier
        one's late writes never come back."""
        row = _cleaned(_postmortem_row(document, version))
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(postmortems).values(**row)
        statement = statement.on_conflict_do_update(
            index_elements=[postmortems.c.workflow_id],
            set_={name: statement.excluded[name] for name in row if name != "workflow_id"},
            where=_replaces(postmortems.c, statement.excluded, same_version),
        ).returning(postmortems.c.version)  # no row back: an older or equal write, skipped
        with self._begin() as connection:
            if connection.execute(statement).first() is None:
                return False
            workflow_id = document.workflow_id
            connection.execute(delete(actions).where(actions.c.workflow_id == workflow_id))
            connection.execute(delete(factors).where(factors.c.workflow_id == workflow_id))
            connection.execute(delete(problems).where(problems.c.workflow_id == workflow_id))
            connection.execute(delete(links).where(links.c.workflow_id == workflow_id))
            found = _link_rows(document)
            if found:
                connection.execute(insert(links), found)
            if document.actions:
                connection.execute(insert(actions), [_cleaned(r) for r in _action_rows(document)])
            connection.execute(
                delete(finding_terms).where(finding_terms.c.workflow_id == workflow_id)
            )
            factor_rows = [
                {
                    "workflow_id": workflow_id,
                    "position": n,
                    "category": factor.category.value,
                    "description": factor.description.replace("\x00", "\ufffd"),
                    "terms": _terms(factor.description),
                }
                for n, factor in enumerate(
                    document.findings.contributing_factors if document.findings else []
                )
            ]
            if factor_rows:
                connection.execute(insert(factors), factor_rows)
            indexed = term_rows(
                workflow_id,
                row["resolved_at"],
                [("factor", r["position"], r["terms"]) for r in factor_rows]
                + [
                    ("root cause", 0, row["root_terms"]),
                    ("proximate cause", 0, row["proximate_terms"]),
                ],
            )
            if indexed and not row["private"]:  # a private one is never found
                connection.execute(insert(finding_terms), indexed)
            if isinstance(document, PostmortemState) and document.problems:
                connection.execute(
                    insert(problems),
                    [
                        _cleaned(
                            {
                                "workflow_id": workflow_id,
                                "position": n,
                                "kind": problem.kind.value,
                                "action_id": problem.action_id,
                                "message": problem.message,
                                "since": problem.since,
                            }
                        )
                        for n, problem in enumerate(document.problems)
                    ],
                )
        return True

    # -- facilitator turns --------------------------------------------------------------

    def turn(self, team: str, postmortem: str) -> int:
        """This post-mortem's turn in its team's rotation (0, 1, 2...): the same on every call,
        from any worker. Two post-mortems asking at once: the unique (team, turn) lets one
        in and the other asks again for the next."""
        mine = (turns.c.team == team) & (turns.c.postmortem == postmortem)
        for _ in range(TURN_ATTEMPTS):
            try:
                with self._begin() as connection:
                    found = connection.execute(select(turns.c.turn).where(mine)).scalar()
                    if found is not None:
                        return int(found)
                    # The next after the highest, not a count: turns copied in from a
                    # worker's file may leave a gap, which a count would collide with forever.
                    taken = connection.execute(
                        select(func.coalesce(func.max(turns.c.turn) + 1, 0)).where(
                            turns.c.team == team
                        )
                    ).scalar_one()
                    connection.execute(
                        insert(turns).values(team=team, postmortem=postmortem, turn=taken)
                    )
                    return int(taken)
            except IntegrityError:
                continue  # taken meanwhile (this turn, or this post-mortem's): read again
        raise RecordUnavailable(f"the rotation of {team!r} is too busy; try again")

    def import_turns(self, path: Path) -> int:
        """The turns of a worker's former `rotation.sqlite3`, added where the record has none
        (run at every start while the file is there: nothing is added twice). How many."""
        if not path.exists():
            return 0
        with contextlib.closing(sqlite3.connect(path)) as old:
            try:
                rows = old.execute("SELECT team, postmortem, turn FROM turns").fetchall()
            except sqlite3.DatabaseError:
                return 0  # not a rotation file (or empty): nothing to keep
        added = 0
        for team, postmortem, turn in rows:
            try:
                with self._begin() as connection:
                    connection.execute(
                        insert(turns).values(team=team, postmortem=postmortem, turn=turn)
                    )
                added += 1
            except IntegrityError:
                continue  # already in the record (a former import, or a turn taken since)
        return added

    # -- reading ------------------------------------------------------------------------

    def get(self, workflow_id: str) -> Recorded | None:
        with self._begin() as connection:
            row = connection.execute(
                select(
                    postmortems.c.version, postmortems.c.document, postmortems.c.recorded_at
                ).where(postmortems.c.workflow_id == workflow_id)
            ).first()
        if row is None:
            return None
        return Recorded(
            version=row.version,
            state=PostmortemState.model_validate(row.document),
            recorded_at=row.recorded_at,
        )

    def action_rows(self, workflow_id: str) -> list[dict[str, Any]]:
        with self._begin() as connection:
            rows = connection.execute(
                select(actions)
                .where(actions.c.workflow_id == workflow_id)
                .order_by(actions.c.action_id)
            )
            return [dict(r._mapping) for r in rows]

    def dispose(self) -> None:
        self.engine.dispose()

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A connection for readers (record/reads.py): the database down, or its tables not
        made yet, is RecordUnavailable (the API answers 503, the CLI one line)."""
        with self._begin() as connection:
            yield connection

    @contextmanager
    def _begin(self) -> Iterator[Connection]:
        try:
            with self.engine.begin() as connection:
                yield connection
        except DBAPIError as exc:
            # Down, restarting, locked, its tables not made yet or not ours to read: retry
            # later. Anything else (a bug) is raised as is.
            waiting = isinstance(exc, OperationalError) or exc.connection_invalidated
            if isinstance(exc, ProgrammingError):  # PostgreSQL: no such table, no privilege
                waiting = getattr(exc.orig, "sqlstate", None) in NOT_READY
            if not waiting:
                raise
            # The driver's message names the server, never the password.
            raise RecordUnavailable(f"the record's database is unavailable: {exc.orig}") from None


def _replaces(stored: Any, new: Any, same_version: bool) -> Any:
    """When a write replaces the stored row: a newer version of the same post-mortem (same
    start, or a start unknown: rows before 0002), or a post-mortem started later."""
    later = and_(
        new.started_at.is_not(None),
        stored.started_at.is_not(None),
        new.started_at > stored.started_at,
    )
    same = or_(
        new.started_at.is_(None), stored.started_at.is_(None), new.started_at == stored.started_at
    )
    newer = stored.version <= new.version if same_version else stored.version < new.version
    return or_(later, and_(same, newer))


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _cleaned(row: dict[str, Any]) -> dict[str, Any]:
    """PostgreSQL's text holds no NUL character (people's text may): shown as U+FFFD in the
    columns; the document keeps it (JSON escapes it)."""
    return {k: v.replace("\x00", "\ufffd") if isinstance(v, str) else v for k, v in row.items()}


def _postmortem_row(document: PostmortemDocument, version: int) -> dict[str, Any]:
    incident, findings, review = document.incident, document.findings, document.review
    closed = [c.at for c in document.phase_history if c.phase is Phase.CLOSED]
    return {
        "workflow_id": document.workflow_id,
        "version": version,
        "source": incident.source,
        "incident_id": incident.id,
        "title": incident.title,
        "severity": incident.severity.value,
        "team": incident.team,
        "phase": document.phase.value,
        "resolved_at": incident.resolved_at,
        "review_at": review.start if review else None,
        "review_window_end": review.window_end if review else None,
        "findings_at": findings.accepted_at if findings else None,
        "closed_at": closed[-1] if closed else None,
        "published_url": document.published_url,
        "proximate_cause": findings.proximate_cause if findings else None,
        "root_cause": findings.root_cause if findings else None,
        "document": document.model_dump(mode="json"),
        "recorded_at": datetime.now(UTC),
        "started_at": document.phase_history[0].at if document.phase_history else None,
        "action_count": len(document.actions),
        "service": incident.service,
        "private": incident.private,
        "root_terms": similarity.encode(similarity.terms(findings.root_cause))
        if findings
        else None,
        "proximate_terms": (
            similarity.encode(similarity.terms(findings.proximate_cause)) if findings else None
        ),
    }


def _terms(text: str) -> str:
    return similarity.encode(similarity.terms(text))


def term_rows(
    workflow_id: str, resolved_at: datetime, findings: list[tuple[str, int, str | None]]
) -> list[dict[str, Any]]:
    """`finding_terms` rows of a post-mortem's findings: (what, position, stored terms)."""
    rows: list[dict[str, Any]] = []
    for what, position, stored in findings:
        found = similarity.decode(stored)
        rows.extend(
            {
                "workflow_id": workflow_id,
                "what": what,
                "position": position,
                "term": term,
                "size": len(found),
                "resolved_at": resolved_at,
            }
            for term in sorted(found)
        )
    return rows


def _link_rows(document: PostmortemDocument) -> list[dict[str, Any]]:
    """The earlier post-mortems it found related (a later one shown on it is not its own)."""
    rows: dict[str, dict[str, Any]] = {}
    for n, r in enumerate(x for x in document.related if not x.later):
        if r.workflow_id == document.workflow_id or r.workflow_id in rows:
            continue
        rows[r.workflow_id] = _cleaned(
            {
                "workflow_id": document.workflow_id,
                "related_id": r.workflow_id,
                "position": n,
                "reasons": [x.replace("\x00", "\ufffd") for x in r.reasons],
                "similarity": r.similarity,
                "verified_repeat": r.verified_repeat,
            }
        )
    return list(rows.values())


def _action_rows(document: PostmortemDocument) -> list[dict[str, Any]]:
    return [
        {
            "workflow_id": document.workflow_id,
            "action_id": a.id,
            "title": a.title,
            "type": a.type.value,
            "priority": a.priority.value,
            "owner": a.owner,
            "team": a.team,
            "due": a.due,
            "state": a.state.value,
            "state_reason": a.state_reason,
            "ticket_tracker": a.ticket.tracker if a.ticket else None,
            "ticket_key": a.ticket.key if a.ticket else None,
            "ticket_url": a.ticket.url if a.ticket else None,
            "overdue": a.overdue,
            "reminders_sent": a.reminders_sent,
            "escalation_level": a.escalation_level,
            "completed_at": a.completed_at,
            "last_reminder_at": a.last_reminder_at,
            "verification": a.verification.value,
            "verified_at": a.verified_at,
        }
        for a in document.actions
    ]
