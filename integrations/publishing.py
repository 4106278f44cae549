"""Publishers: where a finished post-mortem goes so the whole organisation can read it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Protocol

from integrations.errors import PublishFailed


class Publisher(Protocol):
    kind: str

    def publish(self, name: str, markdown: str) -> str:
        """Write (or overwrite) the document `name` and return where readers find it."""
        ...


class FolderPublisher:
    """`<dir>/<year>/<incident>-<slug>.md`; republishing replaces the file atomically."""

    kind = "folder"

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def publish(self, name: str, markdown: str) -> str:
        target = (self.directory / f"{name}.md").resolve()
        if self.directory.resolve() not in target.parents:
            raise PublishFailed(f"document name {name!r} leaves the publish folder")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            # Write then rename: a reader never sees half a document.
            fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=".", suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(markdown)
            os.replace(temporary, target)
        except OSError as exc:
            raise PublishFailed(f"cannot write {target}: {exc.strerror}") from exc
        return target.as_uri()
