"""Contract checks: the emulators' traffic against the official OpenAPI descriptions.

Every request a real client sends and every answer an emulator gives is validated with
openapi-core against ../shared/specs (Jira Cloud platform v3, GitHub REST). A call outside
the description is recorded as a violation and fails the test that made it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from werkzeug.datastructures import Headers, ImmutableMultiDict

from tests.fakes.server import Request, Response

SPECS = Path(
    os.environ.get("PM_SPECS_DIR", Path(__file__).resolve().parents[3] / "shared" / "specs")
)
JIRA_SPEC = SPECS / "jira-platform-openapi.subset.json"
GITHUB_SPEC = SPECS / "github-rest-api.subset.json"


def available() -> bool:
    """Whether the descriptions are at hand. Outside CI the checks may be off (a checkout
    without ../shared); in CI (`CI` set) a missing description fails the run instead."""
    found = JIRA_SPEC.exists() and GITHUB_SPEC.exists()
    if not found and os.environ.get("CI"):
        raise MissingDescriptions(
            f"the API descriptions are missing under {SPECS} (set PM_SPECS_DIR): in CI the "
            "emulators' contract checks cannot be switched off"
        )
    return found


class MissingDescriptions(RuntimeError):
    pass


@cache
def _openapi(path: Path) -> Any:
    from openapi_core import OpenAPI
    from openapi_core.configurations import Config

    document = json.loads(path.read_text())
    document["servers"] = [{"url": "/"}]  # match paths on any host
    # Atlassian's own description fails spec validation (a default outside its enum on
    # field/search): load without validating the description itself.
    return OpenAPI.from_dict(document, config=Config(spec_validator_cls=None))


@dataclass
class _Request:
    host_url: str
    path: str
    method: str
    parameters: Any
    content_type: str
    body: bytes | None


@dataclass
class _Response:
    status_code: int
    content_type: str
    headers: Headers
    data: bytes


@dataclass
class Contract:
    """Validates one API's traffic; `path_map` turns the served path into the described one."""

    spec: Path
    path_map: Callable[[str], str] = lambda path: path
    # (method, path regex, message regex): known client quirks the description rejects.
    tolerated: list[tuple[str, str, str]] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)

    def check(self, request: Request, response: Response, payload: bytes) -> None:
        openapi = _openapi(self.spec)
        path = self.path_map(request.path)
        query = ImmutableMultiDict([(k, v) for k, values in request.query.items() for v in values])
        req = _Request(
            host_url="http://emulator",
            path=path,
            method=request.method.lower(),
            parameters=_parameters(query, Headers(list(request.headers.items()))),
            content_type=request.headers.get("content-type", "application/json"),
            body=request.body or None,
        )
        resp = _Response(
            status_code=response.status,
            content_type="application/json" if payload else "",
            headers=Headers(list(response.headers.items())),
            data=payload,
        )
        for kind, validate in (
            ("request", lambda: openapi.validate_request(req)),
            ("response", lambda: openapi.validate_response(req, resp)),
        ):
            try:
                validate()
            except Exception as exc:
                message = _describe(exc)
                if not self._tolerated(request, message):
                    self.violations.append(
                        f"{request.method} {request.path} ({kind}, {response.status}): {message}"
                    )

    def _tolerated(self, request: Request, message: str) -> bool:
        return any(
            re.fullmatch(method, request.method)
            and re.fullmatch(path, request.path)
            and re.search(pattern, message)
            for method, path, pattern in self.tolerated
        )


def _parameters(query: ImmutableMultiDict[str, str], headers: Headers) -> Any:
    from openapi_core.datatypes import RequestParameters

    return RequestParameters(query=query, header=headers)


def _describe(exc: Exception) -> str:
    """The schema's own complaints first (the value itself can be long), then the chain."""
    reasons: list[str] = []
    chain: list[str] = []
    cause: BaseException | None = exc
    for _ in range(5):
        if cause is None:
            break
        chain.append(type(cause).__name__)
        for error in getattr(cause, "schema_errors", None) or []:
            path = "/".join(str(p) for p in getattr(error, "absolute_path", []))
            reasons.append(f"{path or '<root>'}: {getattr(error, 'message', error)}"[:300])
        cause = cause.__cause__ or cause.__context__
    if not reasons:
        reasons.append(str(exc)[:500])
    return " | ".join(dict.fromkeys(reasons)) + f" ({' <- '.join(chain)})"


def jira_contract() -> Contract:
    return Contract(
        JIRA_SPEC,
        path_map=lambda path: re.sub(r"^/rest/api/(2|latest)/", "/rest/api/3/", path),
        tolerated=[
            # The jira library sends "comment": null with every issue link; v3 wants an object.
            ("POST", r".*/issueLink", r"comment|None is not of type 'object'"),
            # In Server mode it sends validateQuery=True (Python's bool), not "true".
            ("GET", r".*/search", r"'True' is not one of \['strict'"),
        ],
    )


_SLASHED_PARAMETER = re.compile(r"^(/repos/[^/]+/[^/]+/(?:git/refs?|contents))/(.+)$")


def _github_path(path: str) -> str:
    """`{ref}` ("heads/main") and `{path}` ("a/b.md") hold slashes on GitHub, which a path
    template cannot match: validate them as the one parameter they are."""
    match = _SLASHED_PARAMETER.match(path)
    return f"{match[1]}/{match[2].replace('/', '%2F')}" if match else path


def github_contract() -> Contract:
    return Contract(
        GITHUB_SPEC,
        path_map=_github_path,
        tolerated=[
            # The description omits 401 on most operations; GitHub answers bad credentials so.
            (".*", r".*", r"Unknown response http status: 401"),
        ],
    )


@cache
def _schemas(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text())["components"]["schemas"])


def complete(spec: Path, name: str, value: dict[str, Any]) -> dict[str, Any]:
    """`value` with every property the schema requires and `value` lacks filled with a
    plausible value of its type: the emulator sets what clients read, the description the
    rest. Without the specs, `value` is returned as it is."""
    if not spec.exists():
        return value
    return _fill(_schemas(spec), _schemas(spec)[name], dict(value))


def _resolve(schemas: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = schemas[schema["$ref"].rsplit("/", 1)[1]]
    if "allOf" in schema:
        merged: dict[str, Any] = {"type": "object", "properties": {}, "required": []}
        for part in schema["allOf"]:
            part = _resolve(schemas, part)
            merged["properties"].update(part.get("properties", {}))
            merged["required"] += part.get("required", [])
        return merged
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return _resolve(schemas, schema[key][0])
    return schema


def _fill(schemas: dict[str, Any], schema: dict[str, Any], value: dict[str, Any]) -> dict[str, Any]:
    schema = _resolve(schemas, schema)
    for prop in schema.get("required", []):
        if prop not in value:
            value[prop] = _default(schemas, schema.get("properties", {}).get(prop, {}), prop)
    return value


def _default(schemas: dict[str, Any], schema: dict[str, Any], name: str) -> Any:
    schema = _resolve(schemas, schema)
    if schema.get("nullable") or "null" in (schema.get("type") or []):
        return None
    kind = schema.get("type")
    kind = next((k for k in kind if k != "null"), "string") if isinstance(kind, list) else kind
    if "enum" in schema:
        return schema["enum"][0]
    if kind == "object" or "properties" in schema:
        return _fill(schemas, schema, {})
    if kind == "array":
        return []
    if kind == "integer":
        return 0
    if kind == "number":
        return 0.0
    if kind == "boolean":
        return False
    fmt = schema.get("format")
    if fmt == "uri" or name.endswith("_url") or name == "url":
        return f"https://api.github.example/{name}"
    if fmt == "date-time":
        return "2026-01-01T00:00:00Z"
    return ""
