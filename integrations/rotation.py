"""Facilitator turns per team, kept in SQLite: whose turn a post-mortem got is remembered, so
a retried activity gives the same answer and the next post-mortem gets the next person."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from pathlib import Path


class RotationStore:
    def __init__(self, path: Path) -> None:
        self._path = Path(path)
        self._lock = threading.Lock()
        self._ready = False

    def _connect(self) -> sqlite3.Connection:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self._path, timeout=30, isolation_level=None)
        if not self._ready:
            db.execute("PRAGMA journal_mode=wal")
            db.execute(
                "CREATE TABLE IF NOT EXISTS turns ("
                " team TEXT NOT NULL, postmortem TEXT NOT NULL, turn INTEGER NOT NULL,"
                " PRIMARY KEY (team, postmortem))"
            )
            self._ready = True
        return db

    def turn(self, team: str, postmortem: str) -> int:
        """This post-mortem's turn in its team's rotation (0, 1, 2...): the same on every call."""
        with self._lock, contextlib.closing(self._connect()) as db:
            db.execute("BEGIN IMMEDIATE")  # one writer at a time, across processes too
            try:
                row = db.execute(
                    "SELECT turn FROM turns WHERE team = ? AND postmortem = ?", (team, postmortem)
                ).fetchone()
                if row is None:
                    (count,) = db.execute(
                        "SELECT COUNT(*) FROM turns WHERE team = ?", (team,)
                    ).fetchone()
                    db.execute(
                        "INSERT INTO turns (team, postmortem, turn) VALUES (?, ?, ?)",
                        (team, postmortem, count),
                    )
                    row = (count,)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            return int(row[0])
