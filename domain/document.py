"""The post-mortem document, rendered from its state with Jinja2: Markdown and a standalone
HTML page. A team may override either template with files of its own (`template_dir`)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import jinja2
from pydantic import BaseModel

from domain.models import (
    ActionState,
    BlamelessNote,
    CorrectiveAction,
    FactorCategory,
    Phase,
    PostmortemDocument,
)

CATEGORY_TITLES: dict[FactorCategory, str] = {
    FactorCategory.PROCESS_GAP: "Process gaps",
    FactorCategory.TOOLING_LIMITATION: "Tooling limitations",
    FactorCategory.UNCLEAR_OWNERSHIP: "Unclear ownership",
    FactorCategory.MISSING_SAFEGUARD: "Missing safeguards",
    FactorCategory.MONITORING_GAP: "Monitoring and detection gaps",
    FactorCategory.DOCUMENTATION_GAP: "Documentation gaps",
    FactorCategory.OTHER: "Other factors",
}
MARKDOWN, HTML = "postmortem.md.j2", "postmortem.html.j2"


class TemplateProblem(ValueError):
    """A team's template does not render: the message names the file and line."""


def _when(d: datetime | None) -> str:
    return f"{d.astimezone(UTC):%Y-%m-%d %H:%M} UTC" if d else "—"


@cache
def environment(team_dir: Path | None, html: bool) -> jinja2.Environment:
    loaders: list[jinja2.BaseLoader] = [jinja2.PackageLoader("domain", "templates")]
    if team_dir is not None:
        loaders.insert(0, jinja2.FileSystemLoader(team_dir))
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        # Markdown must not be HTML-escaped (it would corrupt it); the HTML page must be.
        autoescape=html,  # noqa: S701
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["when"] = _when
    env.filters["cell"] = lambda s: str(s).replace("|", "\\|").replace("\n", " ")
    return env


def slug(text: str, limit: int = 60) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    words = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return words[:limit].rstrip("-") or "postmortem"


def document_name(state: PostmortemDocument) -> str:
    """`<year>/<incident id>-<slug>` without extension: stable across republication."""
    incident = state.incident
    return f"{incident.resolved_at:%Y}/{slug(incident.id, 40)}-{slug(incident.title)}"


def public_view(state: PostmortemDocument) -> PostmortemDocument:
    """What may leave the engine: timeline entries the team marked private are left out."""
    return state.model_copy(update={"timeline": [e for e in state.timeline if not e.private]})


@dataclass(frozen=True)
class Rendered:
    markdown: str
    html: str


def render(
    state: PostmortemDocument,
    *,
    rendered_at: datetime,
    team_dir: Path | None = None,
    blameless: Sequence[BlamelessNote] = (),
    draft: bool = False,
) -> Rendered:
    """Both documents. `blameless` findings are shown (to the facilitator) in a draft only."""
    context = _context(state, rendered_at, blameless, draft)
    return Rendered(
        markdown=_render(team_dir, False, MARKDOWN, context),
        html=_render(team_dir, True, HTML, context),
    )


def render_markdown(state: PostmortemDocument, *, rendered_at: datetime) -> str:
    return render(state, rendered_at=rendered_at).markdown


def render_html(state: PostmortemDocument, *, rendered_at: datetime, **options: Any) -> str:
    return render(state, rendered_at=rendered_at, **options).html


def _render(team_dir: Path | None, html: bool, name: str, context: dict[str, Any]) -> str:
    try:
        return environment(team_dir, html).get_template(name).render(**context)
    except jinja2.TemplateSyntaxError as exc:
        where = f"template {exc.filename or name}, line {exc.lineno}"
        raise TemplateProblem(f"{where}: {exc.message}") from None
    except jinja2.TemplateError as exc:  # an unknown variable in a team's template, say
        raise TemplateProblem(f"template {name}: {exc.message}") from None


def _context(
    state: PostmortemDocument,
    rendered_at: datetime,
    blameless: Sequence[BlamelessNote],
    draft: bool,
) -> dict[str, Any]:
    incident = state.incident
    duration = (
        incident.resolved_at - incident.started_at if incident.started_at is not None else None
    )
    factors = state.findings.contributing_factors if state.findings else []
    grouped = {
        CATEGORY_TITLES[category]: [f.description for f in factors if f.category == category]
        for category in FactorCategory
    }
    return {
        "state": state,
        "incident": incident,
        "duration": human_duration(duration.total_seconds()) if duration else None,
        "timeline": sorted(state.timeline, key=lambda e: e.at),
        "factors": {title: items for title, items in grouped.items() if items},
        "findings": state.findings,
        "actions": list(_ordered(state.actions)),
        "rendered_at": rendered_at,
        "blameless": list(blameless),
        "draft": draft,
        "closing": _closing(state),
    }


def _closing(state: PostmortemDocument) -> dict[str, Any] | None:
    """How the corrective actions ended, once the post-mortem is closed."""
    if state.phase is not Phase.CLOSED:
        return None
    actions = state.actions
    done = [a for a in actions if a.state is ActionState.DONE]
    on_time = [a for a in done if a.completed_at is not None and a.completed_at <= a.due]
    return {
        "closed_at": state.phase_history[-1].at if state.phase_history else None,
        "total": len(actions),
        "done": len(done),
        "on_time": len(on_time),
        "dropped": [a for a in actions if a.state is ActionState.DROPPED],
    }


def _ordered(actions: Iterable[CorrectiveAction]) -> Iterable[CorrectiveAction]:
    return sorted(actions, key=lambda a: (a.due, a.id))


def human_duration(seconds: float) -> str:
    minutes = int(seconds // 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    parts = [f"{days} d" if days else "", f"{hours} h" if hours else "", f"{minutes} min"]
    return " ".join(p for p in parts if p)


# -- secrets never leave in a published document -------------------------------------------

_SECRET_PATTERNS = [
    re.compile(p)
    for p in (
        r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----",
        r"\bgh[pousr]_[A-Za-z0-9]{30,}\b",  # GitHub tokens
        r"\bgithub_pat_[A-Za-z0-9_]{30,}\b",
        r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b",  # Slack
        r"\bAKIA[0-9A-Z]{16}\b",  # AWS access key id
        r"\bsk_(?:live|test)_[A-Za-z0-9]{16,}\b",  # Stripe
        r"\bwhsec_[A-Za-z0-9+/=]{16,}\b",  # Svix webhook secrets
        r"\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\b",  # JWT
        r"(?i)\b(?:bearer|basic)\s+[A-Za-z0-9._~+/=-]{16,}",
        r"(?i)\b(?:password|passwd|secret|token|api[_-]?key)\s*[:=]\s*\S{6,}",
        # credentials in a URL (a scheme is short: bounded, so a long run of letters and
        # dots is read once, not once per position)
        r"(?i)\b[a-z][a-z0-9+.-]{0,31}://[^/\s:@]{1,256}:[^/\s@]{1,256}@",
    )
]
REDACTED = "[redacted]"


def redact(text: str, known_secrets: Iterable[str] = ()) -> tuple[str, int]:
    """Text with secret-looking strings and the engine's own secrets replaced; the count."""
    count = 0
    for secret in sorted({s for s in known_secrets if len(s) >= 6}, key=len, reverse=True):
        count += text.count(secret)
        text = text.replace(secret, REDACTED)
    for pattern in _SECRET_PATTERNS:
        text, found = pattern.subn(REDACTED, text)
        count += found
    return text, count


M = TypeVar("M", bound=BaseModel)


def redact_model(model: M, known_secrets: Iterable[str] = ()) -> tuple[M, int]:
    """Every string of a model redacted, before anything is rendered from it: a secret is
    then caught whatever a template does with it (HTML-escaped, in a title, an index, a
    commit message)."""
    secrets = list(known_secrets)
    count = 0

    def walk(value: Any) -> Any:
        nonlocal count
        if isinstance(value, str):
            text, found = redact(value, secrets)
            count += found
            return text
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [walk(v) for v in value]
        return value

    cleaned = walk(model.model_dump())
    return (type(model).model_validate(cleaned) if count else model), count
