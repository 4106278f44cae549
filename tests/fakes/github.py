"""A stateful emulator of the GitHub REST API (issues, labels, milestones), as PyGithub calls it."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from tests.fakes import contract
from tests.fakes.server import EmulatorServer, Request, Response

REPO = r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)"
DOCS = "https://docs.github.com/rest"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class GitHubState:
    issues: dict[int, dict[str, Any]] = field(default_factory=dict)
    labels: dict[str, dict[str, Any]] = field(default_factory=dict)
    milestones: dict[int, dict[str, Any]] = field(default_factory=dict)
    comments: dict[int, list[str]] = field(default_factory=dict)
    # Git data, simplified: a tree is a flat map of paths to blob shas.
    blobs: dict[str, bytes] = field(default_factory=dict)
    trees: dict[str, dict[str, str]] = field(default_factory=dict)
    commits: dict[str, dict[str, Any]] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)  # "heads/main" -> commit sha


class GitHubEmulator(EmulatorServer):
    def __init__(
        self,
        *,
        repo: str = "acme/platform",
        token: str = "gh-token",
        per_page: int = 30,
        app: tuple[int, str] | None = None,  # (app id, PEM public key) of a GitHub App
    ) -> None:
        super().__init__()
        self.repo_name, self.token, self.per_page = repo, token, per_page
        self.app = app
        self.installation_tokens: set[str] = set()
        self.route(
            "POST", r"/app/installations/(?P<installation>\d+)/access_tokens", self._app_token
        )
        self.state = GitHubState()
        self._init_git()
        if contract.available():
            self.contract = contract.github_contract()
        for method, path, handler in [
            ("GET", rf"{REPO}", self._repo),
            ("GET", rf"{REPO}/labels/(?P<name>[^/]+)", self._get_label),
            ("POST", rf"{REPO}/labels", self._create_label),
            ("GET", rf"{REPO}/issues", self._list_issues),
            ("POST", rf"{REPO}/issues", self._create_issue),
            ("GET", rf"{REPO}/issues/(?P<number>\d+)", self._get_issue),
            ("PATCH", rf"{REPO}/issues/(?P<number>\d+)", self._update_issue),
            ("POST", rf"{REPO}/issues/(?P<number>\d+)/comments", self._comment),
            ("GET", rf"{REPO}/milestones", self._list_milestones),
            ("POST", rf"{REPO}/milestones", self._create_milestone),
            ("GET", rf"{REPO}/git/ref/(?P<ref>.+)", self._get_ref),
            ("PATCH", rf"{REPO}/git/refs/(?P<ref>.+)", self._update_ref),
            ("GET", rf"{REPO}/git/commits/(?P<sha>[0-9a-f]+)", self._get_commit),
            ("POST", rf"{REPO}/git/commits", self._create_commit),
            ("POST", rf"{REPO}/git/trees", self._create_tree),
            ("GET", rf"{REPO}/contents/(?P<path>.+)", self._get_contents),
        ]:
            self.route(method, path, self._checked(handler))

    # -- what a person does on GitHub ----------------------------------------------------

    def files(self, branch: str = "main") -> dict[str, str]:
        """The branch's files and their text, as a checkout would show them."""
        with self.lock:
            tree = self.state.trees[self.state.commits[self.state.refs[f"heads/{branch}"]]["tree"]]
            return {path: self.state.blobs[sha].decode() for path, sha in tree.items()}

    def history(self, branch: str = "main") -> list[dict[str, Any]]:
        """The branch's commits, newest first (message, files changed)."""
        with self.lock:
            found, sha = [], self.state.refs.get(f"heads/{branch}")
            while sha:
                commit = self.state.commits[sha]
                found.append(commit)
                sha = commit["parents"][0] if commit["parents"] else None
            return found

    def push(self, path: str, text: str, branch: str = "main") -> None:
        """Someone else's commit on the branch (the engine must build on it)."""
        with self.lock:
            head = self.state.refs[f"heads/{branch}"]
            tree = dict(self.state.trees[self.state.commits[head]["tree"]])
            tree[path] = self._blob(text.encode())
            tree_sha = self._store_tree(tree)
            self.state.refs[f"heads/{branch}"] = self._store_commit(tree_sha, [head], "push")

    def close(self, number: int, reason: str = "completed") -> None:
        with self.lock:
            issue = self.state.issues[number]
            issue.update(state="closed", state_reason=reason, closed_at=_now(), updated_at=_now())

    def reopen(self, number: int) -> None:
        with self.lock:
            issue = self.state.issues[number]
            issue.update(state="open", state_reason="reopened", closed_at=None, updated_at=_now())

    # -- git objects -------------------------------------------------------------------------

    def _init_git(self) -> None:
        tree = self._store_tree({})
        self.state.refs["heads/main"] = self._store_commit(tree, [], "Initial commit")

    @staticmethod
    def _sha(kind: str, data: bytes) -> str:
        return hashlib.sha1(f"{kind} {len(data)}\0".encode() + data).hexdigest()

    def _blob(self, data: bytes) -> str:
        sha = self._sha("blob", data)
        self.state.blobs[sha] = data
        return sha

    def _store_tree(self, tree: dict[str, str]) -> str:
        sha = self._sha("tree", json.dumps(tree, sort_keys=True).encode())
        self.state.trees[sha] = tree
        return sha

    def _store_commit(self, tree: str, parents: list[str], message: str) -> str:
        sha = self._sha(
            "commit", json.dumps([tree, parents, message, len(self.state.commits)]).encode()
        )
        changed = sorted(
            path
            for path, blob in self.state.trees[tree].items()
            if not parents
            or self.state.trees[self.state.commits[parents[0]]["tree"]].get(path) != blob
        )
        self.state.commits[sha] = {
            "sha": sha,
            "tree": tree,
            "parents": parents,
            "message": message,
            "changed": changed,
        }
        return sha

    def _commit_object(self, sha: str) -> dict[str, Any]:
        commit = self.state.commits[sha]
        person = {"name": "postmortem-bot", "email": "bot@example.com", "date": _now()}
        return contract.complete(
            contract.GITHUB_SPEC,
            "git-commit",
            {
                "sha": sha,
                "node_id": f"C_{sha[:8]}",
                "url": f"{self.api}/git/commits/{sha}",
                "html_url": f"https://github.example/{self.repo_name}/commit/{sha}",
                "author": person,
                "committer": person,
                "message": commit["message"],
                "tree": {"sha": commit["tree"], "url": f"{self.api}/git/trees/{commit['tree']}"},
                "parents": [
                    {
                        "sha": p,
                        "url": f"{self.api}/git/commits/{p}",
                        "html_url": f"https://github.example/{self.repo_name}/commit/{p}",
                    }
                    for p in commit["parents"]
                ],
                "verification": {
                    "verified": False,
                    "reason": "unsigned",
                    "signature": None,
                    "payload": None,
                    "verified_at": None,
                },
            },
        )

    def _ref_object(self, ref: str) -> dict[str, Any]:
        sha = self.state.refs[ref]
        return contract.complete(
            contract.GITHUB_SPEC,
            "git-ref",
            {
                "ref": f"refs/{ref}",
                "node_id": f"REF_{ref}",
                "url": f"{self.api}/git/refs/{ref}",
                "object": {"type": "commit", "sha": sha, "url": f"{self.api}/git/commits/{sha}"},
            },
        )

    # -- objects as the API returns them ---------------------------------------------------

    @property
    def api(self) -> str:
        return f"{self.base_url}/repos/{self.repo_name}"

    def _user(self, login: str) -> dict[str, Any]:
        user = {
            "login": login,
            "id": sum(map(ord, login)),
            "node_id": f"U_{login}",
            "type": "User",
            "url": f"{self.base_url}/users/{login}",
            "html_url": f"https://github.example/{login}",
        }
        return contract.complete(contract.GITHUB_SPEC, "simple-user", user)

    def _repo_object(self) -> dict[str, Any]:
        owner, name = self.repo_name.split("/")
        repo = {
            "id": 1,
            "node_id": "R_1",
            "name": name,
            "full_name": self.repo_name,
            "private": False,
            "owner": self._user(owner),
            "url": self.api,
            "html_url": f"https://github.example/{self.repo_name}",
            "default_branch": "main",
            "has_issues": True,
        }
        return contract.complete(contract.GITHUB_SPEC, "full-repository", repo)

    def _label_object(self, name: str, color: str = "ededed") -> dict[str, Any]:
        label = {
            "id": len(self.state.labels) + 1,
            "node_id": f"L_{name}",
            "name": name,
            "color": color,
            "default": False,
            "description": None,
            "url": f"{self.api}/labels/{name}",
        }
        return contract.complete(contract.GITHUB_SPEC, "label", label)

    # -- handlers ----------------------------------------------------------------------

    def _checked(self, handler: Any) -> Any:
        def check(request: Request) -> Response:
            given = request.headers.get("authorization", "")
            accepted = {self.token, *self.installation_tokens}
            if given.split(" ", 1)[-1] not in accepted or not given.startswith(
                ("token ", "Bearer ")
            ):
                return Response(401, {"message": "Bad credentials", "status": "401"})
            if f"{request.params['owner']}/{request.params['repo']}" != self.repo_name:
                return Response(404, {"message": "Not Found"})
            return handler(request)

        return check

    def _app_token(self, request: Request) -> Response:
        """An installation token for a JWT signed with the app's private key (RS256)."""
        import jwt

        if self.app is None:
            return Response(404, {"message": "Not Found", "documentation_url": DOCS})
        app_id, public_key = self.app
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        try:
            claims = jwt.decode(bearer, public_key, algorithms=["RS256"])
        except jwt.PyJWTError:
            return Response(401, {"message": "A JSON web token could not be decoded"})
        if str(claims.get("iss")) != str(app_id):
            return Response(401, {"message": "Integration not found"})
        token = f"ghs_{len(self.installation_tokens) + 1:036d}"
        self.installation_tokens.add(token)
        issued = {"token": token, "expires_at": "2099-01-01T00:00:00Z"}
        return Response(201, contract.complete(contract.GITHUB_SPEC, "installation-token", issued))

    def _repo(self, request: Request) -> Response:
        return Response(200, self._repo_object())

    def _get_label(self, request: Request) -> Response:
        label = self.state.labels.get(unquote(request.params["name"]))
        return Response(200, label) if label else Response(404, {"message": "Not Found"})

    def _create_label(self, request: Request) -> Response:
        body = request.json()
        name = body["name"]
        if name in self.state.labels:
            return Response(
                422,
                {
                    "message": "Validation Failed",
                    "documentation_url": DOCS,
                    "errors": [{"resource": "Label", "code": "already_exists", "field": "name"}],
                },
            )
        self.state.labels[name] = self._label_object(name, body.get("color", "ededed"))
        return Response(201, self.state.labels[name])

    def _list_issues(self, request: Request) -> Response:
        state = request.arg("state", "open")
        wanted = [x for x in (request.arg("labels") or "").split(",") if x]
        issues = [
            i
            for i in sorted(self.state.issues.values(), key=lambda i: -i["number"])
            if (state == "all" or i["state"] == state)
            and all(w in {label["name"] for label in i["labels"]} for w in wanted)
        ]
        per_page = int(request.arg("per_page") or self.per_page)
        page = int(request.arg("page") or 1)
        chunk = issues[(page - 1) * per_page : page * per_page]
        headers = {}
        if page * per_page < len(issues):
            query = f"state={state}&labels={','.join(wanted)}&per_page={per_page}&page={page + 1}"
            headers["Link"] = f'<{self.api}/issues?{query}>; rel="next"'
        return Response(200, chunk, headers)

    def _create_issue(self, request: Request) -> Response:
        body = request.json()
        if not body.get("title"):
            return Response(
                422,
                {
                    "message": "Validation Failed",
                    "documentation_url": DOCS,
                    "errors": [{"resource": "Issue", "code": "missing_field", "field": "title"}],
                },
            )
        for name in body.get("labels", []):
            self.state.labels.setdefault(name, self._label_object(name))
        assignees = body.get("assignees") or []
        if "ghost" in assignees:
            return Response(
                422,
                {
                    "message": "Validation Failed",
                    "documentation_url": DOCS,
                    "errors": [
                        {
                            "value": "ghost",
                            "resource": "Issue",
                            "field": "assignees",
                            "code": "invalid",
                        }
                    ],
                },
            )
        number = len(self.state.issues) + 1
        milestone = self.state.milestones.get(body["milestone"]) if body.get("milestone") else None
        self.state.issues[number] = contract.complete(
            contract.GITHUB_SPEC,
            "issue",
            {
                "id": 1000 + number,
                "node_id": f"I_{number}",
                "author_association": "NONE",
                "number": number,
                "title": body["title"],
                "body": body.get("body"),
                "state": "open",
                "locked": False,
                "labels": [self.state.labels[name] for name in body.get("labels", [])],
                "assignees": [self._user(a) for a in assignees],
                "assignee": self._user(assignees[0]) if assignees else None,
                "milestone": milestone,
                "comments": 0,
                "user": self._user("postmortem-bot"),
                "url": f"{self.api}/issues/{number}",
                "html_url": f"https://github.example/{self.repo_name}/issues/{number}",
                "comments_url": f"{self.api}/issues/{number}/comments",
                "labels_url": f"{self.api}/issues/{number}/labels{{/name}}",
                "events_url": f"{self.api}/issues/{number}/events",
                "repository_url": self.api,
                "created_at": _now(),
                "updated_at": _now(),
                "closed_at": None,
            },
        )
        return Response(201, self.state.issues[number])

    def _get_issue(self, request: Request) -> Response:
        issue = self.state.issues.get(int(request.params["number"]))
        return Response(200, issue) if issue else Response(404, {"message": "Not Found"})

    def _update_issue(self, request: Request) -> Response:
        issue = self.state.issues.get(int(request.params["number"]))
        if issue is None:
            return Response(404, {"message": "Not Found"})
        issue.update(
            {
                k: v
                for k, v in request.json().items()
                if k in ("state", "state_reason", "title", "body")
            }
        )
        return Response(200, issue)

    def _comment(self, request: Request) -> Response:
        number = int(request.params["number"])
        if number not in self.state.issues:
            return Response(404, {"message": "Not Found"})
        body = request.json()["body"]
        self.state.comments.setdefault(number, []).append(body)
        self.state.issues[number]["comments"] += 1
        comment_id = sum(len(c) for c in self.state.comments.values())
        comment = {
            "id": comment_id,
            "node_id": f"C_{comment_id}",
            "body": body,
            "author_association": "NONE",
            "user": self._user("postmortem-bot"),
            "url": f"{self.api}/issues/comments/{comment_id}",
            "html_url": f"https://github.example/{self.repo_name}/issues/{number}#c{comment_id}",
            "issue_url": f"{self.api}/issues/{number}",
            "created_at": _now(),
            "updated_at": _now(),
        }
        return Response(201, contract.complete(contract.GITHUB_SPEC, "issue-comment", comment))

    def _list_milestones(self, request: Request) -> Response:
        return Response(200, list(self.state.milestones.values()))

    def _create_milestone(self, request: Request) -> Response:
        body = request.json()
        number = len(self.state.milestones) + 1
        milestone = {
            "id": 500 + number,
            "node_id": f"M_{number}",
            "number": number,
            "title": body["title"],
            "state": "open",
            "description": None,
            "creator": self._user("postmortem-bot"),
            "open_issues": 0,
            "closed_issues": 0,
            "closed_at": None,
            "due_on": body.get("due_on"),
            "url": f"{self.api}/milestones/{number}",
            "labels_url": f"{self.api}/milestones/{number}/labels",
            "html_url": f"https://github.example/{self.repo_name}/milestone/{number}",
            "created_at": _now(),
            "updated_at": _now(),
        }
        self.state.milestones[number] = contract.complete(
            contract.GITHUB_SPEC, "milestone", milestone
        )
        return Response(201, self.state.milestones[number])

    # -- git data and contents --------------------------------------------------------------

    def _get_ref(self, request: Request) -> Response:
        ref = unquote(request.params["ref"])
        if ref not in self.state.refs:
            return Response(404, {"message": "Not Found", "documentation_url": DOCS})
        return Response(200, self._ref_object(ref))

    def _update_ref(self, request: Request) -> Response:
        ref, body = unquote(request.params["ref"]), request.json()
        if ref not in self.state.refs or body.get("sha") not in self.state.commits:
            return Response(422, {"message": "Reference does not exist", "documentation_url": DOCS})
        current, sha = self.state.refs[ref], body["sha"]
        ancestors, walk = set(), sha
        while walk:
            ancestors.add(walk)
            parents = self.state.commits[walk]["parents"]
            walk = parents[0] if parents else None
        if current not in ancestors and not body.get("force"):
            return Response(
                422, {"message": "Update is not a fast forward", "documentation_url": DOCS}
            )
        self.state.refs[ref] = sha
        return Response(200, self._ref_object(ref))

    def _get_commit(self, request: Request) -> Response:
        sha = request.params["sha"]
        if sha not in self.state.commits:
            return Response(404, {"message": "Not Found", "documentation_url": DOCS})
        return Response(200, self._commit_object(sha))

    def _create_commit(self, request: Request) -> Response:
        body = request.json()
        if body.get("tree") not in self.state.trees or any(
            p not in self.state.commits for p in body.get("parents", [])
        ):
            return Response(
                422, {"message": "Tree or parent SHA not found", "documentation_url": DOCS}
            )
        sha = self._store_commit(body["tree"], list(body.get("parents", [])), body["message"])
        return Response(201, self._commit_object(sha))

    def _create_tree(self, request: Request) -> Response:
        body = request.json()
        base = body.get("base_tree")
        if base is not None and base not in self.state.trees:
            return Response(422, {"message": "base_tree not found", "documentation_url": DOCS})
        tree = dict(self.state.trees[base]) if base else {}
        for item in body["tree"]:
            if item.get("type") != "blob" or "content" not in item:
                return Response(
                    422, {"message": "only blobs with content", "documentation_url": DOCS}
                )
            tree[item["path"]] = self._blob(item["content"].encode())
        sha = self._store_tree(tree)
        entries = [
            {
                "path": path,
                "mode": "100644",
                "type": "blob",
                "sha": blob,
                "size": len(self.state.blobs[blob]),
                "url": f"{self.api}/git/blobs/{blob}",
            }
            for path, blob in sorted(tree.items())
        ]
        return Response(
            201,
            contract.complete(
                contract.GITHUB_SPEC,
                "git-tree",
                {
                    "sha": sha,
                    "url": f"{self.api}/git/trees/{sha}",
                    "truncated": False,
                    "tree": entries,
                },
            ),
        )

    def _get_contents(self, request: Request) -> Response:
        path = unquote(request.params["path"])
        ref = request.arg("ref") or "main"
        commit = self.state.commits.get(ref) or self.state.commits.get(
            self.state.refs.get(f"heads/{ref}", "")
        )
        blob = self.state.trees[commit["tree"]].get(path) if commit else None
        if blob is None:
            return Response(404, {"message": "Not Found", "documentation_url": DOCS})
        data = self.state.blobs[blob]
        url = f"{self.api}/contents/{path}?ref={ref}"
        html = f"https://github.example/{self.repo_name}/blob/{ref}/{path}"
        git = f"{self.api}/git/blobs/{blob}"
        content = {
            "type": "file",
            "encoding": "base64",
            "size": len(data),
            "name": path.rsplit("/", 1)[-1],
            "path": path,
            "content": base64.b64encode(data).decode(),
            "sha": blob,
            "url": url,
            "git_url": git,
            "html_url": html,
            "download_url": f"https://raw.github.example/{self.repo_name}/{ref}/{path}",
            "_links": {"self": url, "git": git, "html": html},
        }
        return Response(200, contract.complete(contract.GITHUB_SPEC, "content-file", content))
