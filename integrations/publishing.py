"""Publishers: where a finished post-mortem goes so the whole organisation can read it.

Each publisher writes the document and keeps an index of every post-mortem it holds, so a
reader can browse and filter them. Republishing replaces a document in place."""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Protocol

import jinja2
from github.GithubException import GithubException
from github.InputGitTreeElement import InputGitTreeElement
from pydantic import BaseModel, TypeAdapter

from integrations.errors import PublishFailed, TicketNotFound
from integrations.github import GitHubTarget, GitHubTracker


class IndexEntry(BaseModel):
    """One post-mortem in an index: what a reader filters and sorts on."""

    name: str  # <year>/<incident>-<slug>, without extension
    title: str
    incident_id: str
    severity: str
    team: str
    resolved_at: datetime
    phase: str
    tags: list[str] = []
    summary: str = ""


class Document(BaseModel):
    entry: IndexEntry
    markdown: str
    html: str


class Publisher(Protocol):
    kind: str

    def publish(self, document: Document) -> str:
        """Write (or overwrite) the document and the index; return where readers find it."""
        ...


_ENTRIES = TypeAdapter(list[IndexEntry])


def merge_index(existing: list[IndexEntry], entry: IndexEntry) -> list[IndexEntry]:
    """The index with `entry` added or replaced, newest incident first."""
    kept = [e for e in existing if e.name != entry.name]
    return sorted([*kept, entry], key=lambda e: (e.resolved_at, e.name), reverse=True)


@cache
def _index_templates() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("domain", "templates"),
        autoescape=jinja2.select_autoescape(["html.j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )


def render_index(entries: list[IndexEntry], template: str, **context: object) -> str:
    return _index_templates().get_template(template).render(entries=entries, **context)


class FolderPublisher:
    """`<dir>/<year>/<incident>-<slug>.md` and `.html`, beside them a `.json` with the index
    entry; `index.json` and `index.html` rebuilt from those entries under a lock (several
    workers may publish at once). Files are replaced atomically."""

    kind = "folder"

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def publish(self, document: Document) -> str:
        base = self._target(document.entry.name)
        try:
            with self._locked():
                self._write(base.with_suffix(".md"), document.markdown)
                self._write(base.with_suffix(".html"), document.html)
                self._write(base.with_suffix(".json"), document.entry.model_dump_json())
                entries = self._entries()
                self._write(self.directory / "index.json", _ENTRIES.dump_json(entries).decode())
                self._write(
                    self.directory / "index.html",
                    render_index(entries, "index.html.j2", link_suffix=".html"),
                )
        except OSError as exc:
            raise PublishFailed(f"cannot write in {self.directory}: {exc.strerror}") from exc
        return base.with_suffix(".html").as_uri()

    def _target(self, name: str) -> Path:
        root = self.directory.resolve()
        target = (root / name).resolve()
        if root not in target.parents:
            raise PublishFailed(f"document name {name!r} leaves the publish folder")
        return target

    def _entries(self) -> list[IndexEntry]:
        """Every document's entry, newest first; a damaged entry file is skipped."""
        entries = []
        for path in self.directory.glob("*/*.json"):
            try:
                entries.append(IndexEntry.model_validate_json(path.read_bytes()))
            except ValueError:
                continue
        return sorted(entries, key=lambda e: (e.resolved_at, e.name), reverse=True)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.directory.mkdir(parents=True, exist_ok=True)
        with (self.directory / ".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    @staticmethod
    def _write(target: Path, text: str) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename: a reader never sees half a document.
        fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=".", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, target)


class GitHubPublisher:
    """The Markdown file, `index.json` and the index `README.md` in a repository, in one
    commit (Git data API) on a branch (default: the repository's default branch). A
    publication that changes nothing makes no commit, so a retried activity adds none."""

    kind = "github"

    def __init__(self, target: GitHubTarget, *, folder: str = "", branch: str | None = None):
        self.target = target
        self.folder = folder.strip("/")
        self.branch = branch
        self._github = GitHubTracker(target)

    def _path(self, name: str) -> str:
        return f"{self.folder}/{name}" if self.folder else name

    def publish(self, document: Document) -> str:
        call = self._github.call
        repo = self._github.repo
        branch = self.branch or repo.default_branch
        ref = call(lambda: repo.get_git_ref(f"heads/{branch}"))
        head = call(lambda: repo.get_git_commit(ref.object.sha))
        paths = {
            "md": self._path(f"{document.entry.name}.md"),
            "index": self._path("index.json"),
            "readme": self._path("README.md"),
        }
        current = {kind: self._read(path, head.sha) for kind, path in paths.items()}
        try:
            existing = _ENTRIES.validate_json(current["index"]) if current["index"] else []
        except ValueError:
            raise PublishFailed(
                f"github ({self.target.repo}): {paths['index']} is not an index this engine "
                "wrote; fix or delete it"
            ) from None
        entries = merge_index(existing, document.entry)
        files = {
            "md": document.markdown,
            "index": _ENTRIES.dump_json(entries, indent=2).decode() + "\n",
            "readme": render_index(entries, "index.md.j2", link_suffix=".md"),
        }
        location = f"{repo.html_url}/blob/{branch}/{paths['md']}"
        changed = {paths[k]: text for k, text in files.items() if current[k] != text}
        if not changed:
            return location
        tree = call(
            lambda: repo.create_git_tree(
                [InputGitTreeElement(p, "100644", "blob", content=t) for p, t in changed.items()],
                base_tree=head.tree,
            )
        )
        entry = document.entry
        message = f"Post-mortem {entry.incident_id}: {entry.title} ({entry.phase})"
        commit = call(lambda: repo.create_git_commit(message, tree, [head]))
        try:
            ref.edit(commit.sha, force=False)
        except GithubException as exc:
            # Someone pushed meanwhile (not a fast-forward): the retry starts from the new head.
            raise PublishFailed(
                f"github ({self.target.repo}): branch {branch} moved during publication "
                f"(HTTP {exc.status}); retrying"
            ) from None
        return location

    def _read(self, path: str, sha: str) -> str | None:
        try:
            found = self._github.call(lambda: self._github.repo.get_contents(path, ref=sha))
        except TicketNotFound:  # how the GitHub client reports a 404
            return None
        if isinstance(found, list):
            raise PublishFailed(f"github ({self.target.repo}): {path} is a folder, not a file")
        return found.decoded_content.decode("utf-8")
