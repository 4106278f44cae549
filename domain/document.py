"""The post-mortem document, rendered from its state with a Jinja2 template."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from datetime import datetime
from functools import cache

import jinja2

from domain.models import CorrectiveAction, FactorCategory, PostmortemState

CATEGORY_TITLES: dict[FactorCategory, str] = {
    FactorCategory.PROCESS_GAP: "Process gaps",
    FactorCategory.TOOLING_LIMITATION: "Tooling limitations",
    FactorCategory.UNCLEAR_OWNERSHIP: "Unclear ownership",
    FactorCategory.MISSING_SAFEGUARD: "Missing safeguards",
    FactorCategory.MONITORING_GAP: "Monitoring and detection gaps",
    FactorCategory.DOCUMENTATION_GAP: "Documentation gaps",
    FactorCategory.OTHER: "Other factors",
}


@cache
def _environment() -> jinja2.Environment:
    # Markdown output: HTML escaping would corrupt it; the HTML page (a later issue) escapes.
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("domain", "templates"),
        autoescape=False,  # noqa: S701
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["when"] = lambda d: f"{d:%Y-%m-%d %H:%M} UTC" if d else "—"
    env.filters["cell"] = lambda s: str(s).replace("|", "\\|").replace("\n", " ")
    return env


def slug(text: str, limit: int = 60) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    words = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return words[:limit].rstrip("-") or "postmortem"


def document_name(state: PostmortemState) -> str:
    """`<year>/<incident id>-<slug>` without extension: stable across republication."""
    incident = state.incident
    return f"{incident.resolved_at:%Y}/{slug(incident.id, 40)}-{slug(incident.title)}"


def render_markdown(state: PostmortemState, *, rendered_at: datetime) -> str:
    incident = state.incident
    duration = (
        incident.resolved_at - incident.started_at if incident.started_at is not None else None
    )
    factors = state.findings.contributing_factors if state.findings else []
    grouped = {
        CATEGORY_TITLES[category]: [f.description for f in factors if f.category == category]
        for category in FactorCategory
    }
    return (
        _environment()
        .get_template("postmortem.md.j2")
        .render(
            state=state,
            incident=incident,
            duration=_human_duration(duration.total_seconds()) if duration else None,
            timeline=sorted(state.timeline, key=lambda e: e.at),
            factors={title: items for title, items in grouped.items() if items},
            findings=state.findings,
            actions=list(_ordered(state.actions)),
            rendered_at=rendered_at,
        )
    )


def _ordered(actions: Iterable[CorrectiveAction]) -> Iterable[CorrectiveAction]:
    return sorted(actions, key=lambda a: (a.due, a.id))


def _human_duration(seconds: float) -> str:
    minutes = int(seconds // 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    parts = [f"{days} d" if days else "", f"{hours} h" if hours else "", f"{minutes} min"]
    return " ".join(p for p in parts if p)
