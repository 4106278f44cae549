"""The `postmortem` console script: start, inspect and steer post-mortems from a shell."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import traceback
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
import yaml
from pydantic import ValidationError
from temporalio.client import (
    Client,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError, FailureError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

import engine
from config import ConfigError, Routing, Settings, load_routing, routed_teams
from domain import limits, verification
from domain.findings import (
    check_findings,
    describe_validation_error,
    parse_findings,
    resolve_relative_dues,
)
from domain.intake import check_times
from domain.messages import (
    AcknowledgeInput,
    ActionStateChange,
    BeginInput,
    CancelInput,
    CompleteReviewInput,
    MoveDeadlineInput,
    PostmortemInput,
    RescheduleReviewInput,
    RetryFilingInput,
    ReviewAccepted,
    ReviseFindingsInput,
    RouteInput,
    VerifyActionInput,
)
from domain.models import (
    ActionSpec,
    ActionState,
    ActionType,
    BlamelessNote,
    CorrectiveAction,
    Incident,
    Phase,
    PostmortemState,
    Priority,
    Severity,
    TimelineEntry,
)
from domain.scheduling import WorkingHours, due_instant
from integrations.errors import IntegrationError
from integrations.local import LocalTracker
from record import learning as learning_reads
from record import reads
from record import related as related_reads
from record.store import Record, RecordUnavailable, open_record
from workflows.postmortem import PostmortemWorkflow

app = typer.Typer(
    name="postmortem",
    help="Blameless post-mortems that run themselves: start, inspect and steer them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
timeline_app = typer.Typer(help="The incident's timeline.", no_args_is_help=True)
action_app = typer.Typer(help="Corrective actions.", no_args_is_help=True)
tracker_app = typer.Typer(help="The local tracker (the embedded default).", no_args_is_help=True)
app.add_typer(timeline_app, name="timeline")
app.add_typer(action_app, name="action")
app.add_typer(tracker_app, name="tracker")
record_app = typer.Typer(
    help="The record (the archive of every post-mortem).", no_args_is_help=True
)
app.add_typer(record_app, name="record")

T = TypeVar("T")


class CliError(Exception):
    """Said to the user in one line, with a non-zero exit."""


def fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        raise CliError("settings: " + "; ".join(describe_validation_error(exc))) from None


def routing() -> Routing:
    return load_routing(settings().teams_file)


def run(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine; turn every expected failure into one clear line."""
    try:
        return asyncio.run(make())
    except (CliError, ConfigError, IntegrationError, engine.BadFilter) as exc:
        fail(str(exc))
    except RecordUnavailable as exc:
        fail(f"{exc} (PM_RECORD_URL; the worker creates the record's tables when it starts)")
    except WorkflowUpdateFailedError as exc:
        fail(_failure_text(exc))
    except WorkflowQueryFailedError as exc:
        fail(f"query failed: {exc}")
    except WorkflowAlreadyStartedError as exc:
        fail(
            f"{exc.workflow_id} already exists and is closed; "
            "a new one is not started for the same incident"
        )
    except RPCError as exc:
        if exc.status is RPCStatusCode.NOT_FOUND and "already completed" in exc.message:
            fail("this post-mortem is finished (closed or cancelled); it can no longer change")
        if exc.status is RPCStatusCode.NOT_FOUND:
            fail(f"not found: {exc.message}")
        fail(f"Temporal refused the request: {exc.message}")
    except RuntimeError as exc:
        if "connect" in str(exc).lower():
            fail(
                f"cannot reach Temporal at {settings().temporal_address} "
                "(is `make run` running? set TEMPORAL_ADDRESS otherwise)"
            )
        raise


def _failure_text(exc: BaseException) -> str:
    """The innermost message of a failure chain: the reason a validator or handler gave."""
    message = str(exc)
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ApplicationError | FailureError) and str(cause):
            message = cause.message if isinstance(cause, FailureError) else str(cause)
        cause = cause.__cause__
    return message


def parse_instant(text: str, what: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise CliError(
            f"{what}: {text!r} is not an ISO 8601 time such as 2026-11-20T10:00:00Z"
        ) from None
    if value.tzinfo is None:
        raise CliError(f"{what}: {text!r} has no time zone; add Z or an offset like +01:00")
    return value


def parse_due(text: str, team: str) -> datetime:
    """A date means the end of that working day in the team's time zone."""
    try:
        day = date.fromisoformat(text)
    except ValueError:
        return parse_instant(text, "--due")
    config = routing().team(team)
    from zoneinfo import ZoneInfo

    return due_instant(day, ZoneInfo(config.timezone), WorkingHours.parse(config.working_hours))


async def client() -> Client:
    return await engine.connect(settings())


async def handle_of(workflow_id: str) -> Any:
    return (await client()).get_workflow_handle_for(PostmortemWorkflow.run, workflow_id)


def record() -> Record:
    """The record, read as it is (the worker and the API upgrade its schema, not the CLI)."""
    return open_record(settings(), upgrade=False)


async def fetch_state(workflow_id: str) -> PostmortemState:
    """Live from the workflow while Temporal keeps it; then as the record has it."""
    store = record()
    state = await engine.postmortem_state(await client(), workflow_id, store)
    if state is None:
        raise CliError(f"no post-mortem {workflow_id!r}")
    # The later post-mortems that found this one related, from the record.
    return await asyncio.to_thread(related_reads.both_ways, store, state)


def emit_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


# -- running the engine --------------------------------------------------------------------


@app.command()
def up(
    port: Annotated[
        int | None,
        typer.Option(help="The dev server's gRPC port (default: TEMPORAL_ADDRESS's, 7233)."),
    ] = None,
) -> None:
    """Run the embedded engine: Temporal dev server (SQLite under .data/) and the worker."""
    from observability import configure_logging
    from worker import local_port, run_embedded

    current = settings()
    configure_logging(current.log_level, current.log_format)
    load_routing(current.teams_file)
    try:
        chosen = port if port is not None else local_port(current.temporal_address)
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    run(lambda: run_embedded(current, chosen))


@app.command()
def worker() -> None:
    """Run only the worker, against TEMPORAL_ADDRESS (production, several in parallel)."""
    from observability import configure_logging
    from worker import run_worker

    current = settings()
    configure_logging(current.log_level, current.log_format)
    load_routing(current.teams_file)
    run(lambda: run_worker(current))


@app.command()
def api() -> None:
    """Run only the HTTP API (tracker webhooks) against TEMPORAL_ADDRESS."""
    from observability import configure_logging
    from worker import run_api

    current = settings()
    configure_logging(current.log_level, current.log_format)
    run(lambda: run_api(current))


# -- post-mortems ------------------------------------------------------------------------------


@app.command()
def start(
    incident_id: Annotated[str, typer.Option(help="The incident's id in its source.")],
    title: Annotated[str, typer.Option(help="What the incident was, in a few words.")],
    severity: Annotated[Severity, typer.Option(case_sensitive=False)],
    team: Annotated[str, typer.Option(help="The owning team (a name in the routing file).")],
    resolved_at: Annotated[str, typer.Option(help="ISO 8601 with zone, e.g. 2026-11-20T10:00:00Z")],
    started_at: Annotated[str | None, typer.Option(help="When the incident began.")] = None,
    owner: Annotated[
        str | None, typer.Option(help="Post-mortem owner (default: the team's).")
    ] = None,
    summary: Annotated[str, typer.Option(help="A first summary.")] = "",
    responder: Annotated[list[str] | None, typer.Option(help="A responder; repeatable.")] = None,
    source: Annotated[str, typer.Option(help="The incident source.")] = "manual",
    service: Annotated[
        str,
        typer.Option(help="The service (component, system) it was on: repeats are found by it."),
    ] = "",
) -> None:
    """Start the post-mortem of a resolved incident (or find the one already running)."""
    policy = routing()
    policy.team(team)  # an unknown team is refused here, before anything starts
    try:
        incident = Incident(
            source=source,
            id=incident_id,
            title=title,
            severity=severity,
            team=team,
            resolved_at=parse_instant(resolved_at, "--resolved-at"),
            started_at=parse_instant(started_at, "--started-at") if started_at else None,
            summary=summary,
            responders=responder or [],
            service=service,
        )
    except ValidationError as exc:
        flags = {"id": "--incident-id", "source": "--source", "title": "--title"}
        problems = []
        for line in describe_validation_error(exc):
            field, _, message = line.partition(": ")
            problems.append(f"{flags.get(field, '--' + field.replace('_', '-'))}: {message}")
        raise CliError("; ".join(problems)) from None
    if incident.started_at and incident.started_at > incident.resolved_at:
        raise CliError("--started-at is after --resolved-at")
    try:
        check_times(datetime.now(UTC), incident.resolved_at, incident.started_at)
    except ValueError as exc:
        raise CliError(
            str(exc).replace("resolved_at", "--resolved-at").replace("started_at", "--started-at")
        ) from None

    inp = PostmortemInput(incident=incident, owner=owner)
    problems = limits.start_problems(inp)
    if problems:  # refused here, with the flags' names, before anything starts
        raise CliError("; ".join(f"--{p}" for p in problems).replace("--responders", "--responder"))

    async def go() -> engine.Started:
        return await engine.start_postmortem(await client(), settings().task_queue, inp)

    result = run(go)
    typer.echo(result.handle.id)
    typer.echo("started" if result.started else "already exists", err=True)
    if result.started and not policy.policy.for_severity(severity).required:
        typer.echo(
            f"note: the policy makes {severity} post-mortems optional; "
            "incident webhooks record them without starting them, this manual start runs it",
            err=True,
        )


@app.command()
def status(
    workflow_id: str,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Phase, owner, review, timeline, findings and every action of a post-mortem."""
    state = run(lambda: fetch_state(workflow_id))
    if as_json:
        emit_json(status_json(state))
    else:
        typer.echo(status_text(state))


def status_json(state: PostmortemState) -> dict[str, Any]:
    data = state.model_dump(mode="json")
    data["team_routing"] = data.pop("team")
    data.update(
        severity=state.incident.severity.value,
        team=state.incident.team,
        title=state.incident.title,
        review_at=state.review.start.isoformat() if state.review else None,
        blameless_open=[n.id for n in state.blameless_open],
        unrouted=state.incident.unrouted or None,
    )
    return data


def _when(value: datetime | None) -> str:
    return f"{value.astimezone(UTC):%Y-%m-%d %H:%M} UTC" if value else "—"


def status_text(s: PostmortemState) -> str:
    inc = s.incident
    lines = [
        f"{s.workflow_id}  [{s.phase}]",
        f"Incident   {inc.id} ({inc.source}) · {inc.title} · {inc.severity} · team {inc.team}",
        f"Resolved   {_when(inc.resolved_at)}",
        *([f"Service    {inc.service}"] if inc.service else []),
        f"Owner      {s.owner or '—'}",
    ]
    if inc.unrouted:
        lines.append(
            f"UNROUTED   with the triage team: {inc.unrouted} "
            f"(postmortem route {s.workflow_id} --team TEAM)"
        )
    if s.review:
        note = " (outside the window: " + s.review.reason + ")" if s.review.outside_window else ""
        lines.append(
            f"Review     {_when(s.review.start)}, window closes {_when(s.review.window_end)}{note}"
        )
    if s.tracking_ticket:
        lines.append(f"Tracking   {s.tracking_ticket.key} {s.tracking_ticket.url}")
    for location in s.published_locations or ([s.published_url] if s.published_url else []):
        lines.append(f"Published  {location}")
    if s.publication_note:
        lines.append(f"           {s.publication_note}")
    if s.review and s.review.facilitator:
        lines.append(f"Chair      {s.review.facilitator} (facilitates the review)")
    if s.review and s.review.participants:
        lines.append(f"Invited    {', '.join(s.review.participants)}")
    if s.phase is Phase.OPTIONAL:
        lines.append(
            f"Optional   not started: the policy does not require one for {s.incident.severity} "
            f"(`postmortem begin {s.workflow_id}` starts it)"
        )
    if s.cancel_reason:
        lines.append(f"Cancelled  {s.cancel_reason}")
    for problem in s.problems:
        lines.append(f"Problem    {problem.describe()}")
    if s.publication_held:
        lines.append(f"Held       publication waits for {len(s.blameless_open)} finding(s) below")
    lines += ["", "Timeline"]
    for e in sorted(s.timeline, key=lambda e: e.at) or []:
        lines.append(f"  {_when(e.at)}  {e.text}")
        if e.known:
            lines.append(f"  {'':20}  known then: {e.known}")
    if not s.timeline:
        lines.append("  (no entries yet)")
    if s.findings:
        f = s.findings
        lines += [
            "",
            "Findings",
            f"  Proximate cause: {f.proximate_cause}",
            f"  Root cause: {f.root_cause}",
        ]
        lines.append("  Contributing factors:")
        lines += [f"    - [{c.category}] {c.description}" for c in f.contributing_factors]
        for label, items in (
            ("Went well", f.went_well),
            ("Went badly", f.went_badly),
            ("Got lucky", f.got_lucky),
        ):
            if items:
                lines.append(f"  {label}:")
                lines += [f"    - {item}" for item in items]
    if s.related:
        lines += ["", "Related" + (f"    {s.related_summary}" if s.related_summary else "")]
        for r in s.related:
            how = ("later " if r.later else "") + (
                "REPEAT AFTER A VERIFIED ACTION " if r.verified_repeat else ""
            )
            lines.append(
                f"  {how}{r.workflow_id}  {r.incident_id} · {r.title} · {_when(r.resolved_at)}"
            )
            lines += [f"    why: {reason}" for reason in r.reasons]
            lines += [
                f"    {a.state.value}: {a.id} {a.title} ({a.owner}, due {_when(a.due)})"
                + (f" — {a.state_reason}" if a.state_reason else "")
                for a in r.actions
            ]
    if s.blameless:
        held = s.blameless_holds and not s.published_url
        lines += ["", blameless_text(s.blameless, held=held)]
    lines += ["", "Actions"]
    if not s.actions:
        lines.append("  (none yet)")
    for a in s.actions:
        flag = " OVERDUE" if a.overdue and a.state is ActionState.OPEN else ""
        ticket = (
            f"{a.ticket.key} {a.ticket.url}" if a.ticket else (a.filing_error or "not filed yet")
        )
        lines.append(f"  {a.id}  [{a.state}{flag}]  {a.title}")
        lines.append(
            f"      {a.type} · {a.priority} · owner {a.owner} · team {a.team} · due {_when(a.due)}"
        )
        lines.append(f"      ticket {ticket}")
        if a.state_reason:
            lines.append(f"      {a.state_reason}")
        if said := verification.describe(a):
            note = f": {a.verification_note}" if a.verification_note else ""
            lines.append(f"      {said}{note}")
    return "\n".join(lines)


@timeline_app.command("add")
def timeline_add(
    workflow_id: str,
    at: Annotated[str, typer.Option(help="When it happened (ISO 8601 with zone).")],
    text: Annotated[str, typer.Option(help="What happened.")],
    known: Annotated[str, typer.Option(help="What responders knew at that point.")] = "",
    private: Annotated[
        bool, typer.Option("--private", help="Keep it out of every published document.")
    ] = False,
) -> None:
    """Append an entry to the timeline."""
    try:
        entry = TimelineEntry(
            at=parse_instant(at, "--at"), text=text, known=known, source="cli", private=private
        )
    except ValidationError as exc:
        raise CliError("; ".join(describe_validation_error(exc))) from None

    async def go() -> int:
        return int(
            await (await handle_of(workflow_id)).execute_update(
                PostmortemWorkflow.add_timeline_entry, entry
            )
        )

    count = run(go)
    typer.echo(f"timeline has {count} entries")


def load_findings_file(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"{path}: {exc.strerror}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        raise CliError(f"{path}: not valid YAML{line}: {getattr(exc, 'problem', exc)}") from None


@app.command()
def review(
    workflow_id: str,
    findings: Annotated[Path | None, typer.Option(help="The findings file (YAML or JSON).")] = None,
    revise: Annotated[
        bool,
        typer.Option("--revise", help="Replace the recorded findings' wording (actions stay)."),
    ] = False,
    ack: Annotated[
        list[str] | None,
        typer.Option("--ack", help="A blameless finding's id to acknowledge (repeatable)."),
    ] = None,
    note: Annotated[str, typer.Option(help="Why the acknowledged wording stays.")] = "",
    check: Annotated[bool, typer.Option("--check", help="Only validate; send nothing.")] = False,
) -> None:
    """Submit the review's findings, reword them (--revise), or acknowledge blameless-check
    findings (--ack ID --note WHY). Invalid input is refused with every problem named."""
    if ack:
        if findings is not None or revise:
            raise CliError("--ack acknowledges findings on its own; send --findings separately")
        _acknowledge(workflow_id, ack, note)
        return
    if findings is None:
        raise CliError("give --findings FILE, or --ack ID --note WHY")
    now = datetime.now(UTC)
    data = resolve_relative_dues(load_findings_file(findings), now.date())
    parsed, problems = parse_findings(data)
    if parsed is not None:
        problems = check_findings(parsed, now=now, teams=routing().calendars())
        if revise and parsed.actions:
            problems.append(
                "a revision rewords the findings: remove 'actions' (add new ones with "
                "'postmortem action add')"
            )
    if problems:
        typer.echo(f"{findings}: {len(problems)} problem(s); nothing was sent:", err=True)
        for problem in problems:
            typer.echo(f"  - {problem}", err=True)
        raise typer.Exit(1)
    assert parsed is not None
    if check:
        typer.echo(f"{findings}: valid")
        return

    async def go() -> ReviewAccepted:
        handle = await handle_of(workflow_id)
        if revise:
            return await handle.execute_update(
                PostmortemWorkflow.revise_findings, ReviseFindingsInput(findings=parsed)
            )
        return await handle.execute_update(
            PostmortemWorkflow.complete_review, CompleteReviewInput(findings=parsed)
        )

    accepted = run(go)
    if revise:
        typer.echo("findings revised")
    else:
        typer.echo(f"findings recorded; actions: {', '.join(accepted.action_ids) or 'none'}")
    if accepted.blameless:
        typer.echo(blameless_text(accepted.blameless, held=accepted.publication_held))


def blameless_text(notes: Sequence[BlamelessNote], *, held: bool) -> str:
    open_notes = [n for n in notes if not n.acknowledged]
    if held:
        head = f"Publication waits for {len(open_notes)} blameless-check finding(s):"
    else:
        head = f"Blameless check: {len(open_notes)} finding(s) open (warnings only):"
    lines = [head]
    for n in notes:
        state = f"acknowledged: {n.note}" if n.acknowledged else "open"
        lines += [
            f"  {n.id}  [{state}]  {n.field}",
            f'      "{n.sentence}"',
            f"      {n.reason}",
            f"      Try: {n.suggestion}",
        ]
    if open_notes:
        lines.append(
            "Reword them (review --revise --findings FILE) or acknowledge "
            "(review ID --ack FINDING --note WHY)."
        )
    return "\n".join(lines)


def _acknowledge(workflow_id: str, finding_ids: list[str], note: str) -> None:
    try:
        request = AcknowledgeInput(finding_ids=finding_ids, note=note)
    except ValidationError:
        raise CliError("--note must say why the wording stays") from None

    async def go() -> list[BlamelessNote]:
        handle = await handle_of(workflow_id)
        return list(await handle.execute_update(PostmortemWorkflow.acknowledge_findings, request))

    still_open = run(go)
    typer.echo(f"acknowledged {', '.join(finding_ids)}; {len(still_open)} finding(s) still open")


@app.command()
def publish(workflow_id: str) -> None:
    """Publish the document again now (after fixing a team's template or publisher)."""

    async def go() -> None:
        await (await handle_of(workflow_id)).execute_update(PostmortemWorkflow.republish)

    run(go)
    typer.echo(f"{workflow_id}: publication requested; `postmortem status` shows where")


@app.command()
def retry(workflow_id: str) -> None:
    """Run a failed step again (drafting stopped by an error no retry fixes), after the fix
    its problem names."""

    async def go() -> None:
        await (await handle_of(workflow_id)).execute_update(PostmortemWorkflow.retry)

    run(go)
    typer.echo(f"{workflow_id}: the failed step runs again; `postmortem status` shows how")


@app.command()
def schedule(
    workflow_id: str,
    at: Annotated[str, typer.Option(help="The new review time (ISO 8601 with zone).")],
    reason: Annotated[str, typer.Option(help="Why; required outside the window.")] = "",
) -> None:
    """Move the review to another time."""
    request = RescheduleReviewInput(at=parse_instant(at, "--at"), reason=reason)

    async def go() -> str:
        handle = await handle_of(workflow_id)
        slot = await handle.execute_update(PostmortemWorkflow.schedule_review, request)
        return _when(slot.start)

    typer.echo(f"review at {run(go)}")


@app.command()
def cancel(
    workflow_id: str,
    reason: Annotated[str, typer.Option(help="Why, e.g. 'false alarm'.")],
) -> None:
    """Cancel a post-mortem (its open actions stop being followed up)."""
    if not reason.strip():
        raise CliError("--reason must say why")

    async def go() -> None:
        await (await handle_of(workflow_id)).execute_update(
            PostmortemWorkflow.cancel, CancelInput(reason=reason)
        )

    run(go)
    typer.echo(f"{workflow_id} cancelled")


@app.command()
def route(
    workflow_id: str,
    team: Annotated[str, typer.Option(help="The team that owns it from now on.")],
    reason: Annotated[str, typer.Option(help="Why, for the tracking ticket.")] = "",
) -> None:
    """Place a post-mortem with a team: an unrouted one from the triage team, or a wrong
    guess. The team's policy, owner and calendar apply from then on."""
    if team not in routing().teams:
        raise CliError(f"no team {team!r} in the routing file")

    async def go() -> None:
        await (await handle_of(workflow_id)).execute_update(
            PostmortemWorkflow.route, RouteInput(team=team, reason=reason)
        )

    run(go)
    typer.echo(f"{workflow_id} routed to team {team}")


@app.command()
def begin(
    workflow_id: str,
    reason: Annotated[str, typer.Option(help="Why, for the record.")] = "",
) -> None:
    """Start an optional post-mortem (one its severity's policy does not require; incident
    webhooks record those as "optional, not started"). See them with `list --phase optional`."""

    async def go() -> None:
        await (await handle_of(workflow_id)).execute_update(
            PostmortemWorkflow.begin, BeginInput(reason=reason)
        )

    run(go)
    typer.echo(f"{workflow_id} begun: drafting now")


class ListPhase(StrEnum):
    optional = Phase.OPTIONAL.value
    drafting = Phase.DRAFTING.value
    review_scheduled = Phase.REVIEW_SCHEDULED.value
    in_review = Phase.IN_REVIEW.value
    actions_filed = Phase.ACTIONS_FILED.value
    published = Phase.PUBLISHED.value
    following_up = Phase.FOLLOWING_UP.value
    closed = Phase.CLOSED.value
    cancelled = Phase.CANCELLED.value


@app.command("list")
def list_command(
    phase: Annotated[ListPhase | None, typer.Option(help="Only this phase.")] = None,
    team: Annotated[str | None, typer.Option(help="Only this team.")] = None,
    severity: Annotated[Severity | None, typer.Option(case_sensitive=False)] = None,
    overdue: Annotated[bool, typer.Option("--overdue", help="Only with overdue actions.")] = False,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 200,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    service: Annotated[str | None, typer.Option(help="Only this service.")] = None,
) -> None:
    """Post-mortems, newest first, from the record: closed ones too, whatever Temporal's
    retention deleted. No workflow is queried."""
    chosen = reads.PostmortemFilter(
        phase=Phase(phase.value) if phase else None,
        team=team,
        severity=severity.value if severity else None,
        overdue=overdue,
        service=service,
    )

    async def go() -> list[engine.PostmortemRow]:
        return reads.postmortem_list(record(), chosen, limit)

    rows = run(go)
    if as_json:
        emit_json([row.as_json() for row in rows])
        return
    if not rows:
        typer.echo("no post-mortems match")
        return
    typer.echo(f"{'WORKFLOW':38} {'PHASE':17} {'SEV':5} {'TEAM':12} {'OPEN':>4} {'LATE':>4}  TITLE")
    for r in rows:
        typer.echo(
            f"{r.workflow_id:38} {r.phase:17} {r.severity:5} {r.team:12} "
            f"{r.open_actions:>4} {r.overdue_actions:>4}  {r.title}"
        )
        for problem in r.problems:
            typer.echo(f"{'':38} ! {problem}")


@app.command()
def overdue(
    team: Annotated[str | None, typer.Option(help="Only this team.")] = None,
    severity: Annotated[Severity | None, typer.Option(case_sensitive=False)] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 500,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Overdue corrective actions, most overdue first, from the record."""
    now = datetime.now(UTC)

    async def go() -> tuple[list[engine.OverdueRow], list[engine.PostmortemRow]]:
        opened = record()
        _, overdue = reads.ranked_actions(
            opened, team=team, severity=severity.value if severity else None, limit=limit
        )
        refused = reads.PostmortemFilter(team=team, with_problems=True)
        return overdue, reads.postmortem_list(opened, refused, limit)

    rows, refused = run(go)
    if not as_json:
        for pm in refused:
            typer.echo(f"not filed: {pm.workflow_id}: " + "; ".join(pm.problems))
            typer.echo(
                "  fix the routing or the tracker, then: "
                f"postmortem action retry {pm.workflow_id} <action>"
            )
    if as_json:
        emit_json([row.as_json(now) for row in rows])
        return
    if not rows:
        typer.echo("no overdue actions")
        return
    typer.echo(f"{'DAYS':>4}  {'TEAM':12} {'OWNER':24} {'TICKET':10} {'POST-MORTEM':32} ACTION")
    for r in rows:
        typer.echo(
            f"{r.days_overdue(now):>4}  {r.team:12} {r.owner:24} {r.ticket:10} "
            f"{r.postmortem_id:32} {r.action_id}: {r.title}"
        )


@app.command()
def learning(
    team: Annotated[str | None, typer.Option(help="Only this team.")] = None,
    service: Annotated[str | None, typer.Option(help="Only this service.")] = None,
    days: Annotated[
        int, typer.Option(min=1, max=learning_reads.MAX_DAYS, help="The period, up to today.")
    ] = learning_reads.DEFAULT_DAYS,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    as_csv: Annotated[
        str | None,
        typer.Option("--csv", help=f"Print one table as CSV: {', '.join(learning_reads.TABLES)}."),
    ] = None,
) -> None:
    """What the organisation has learned, from the record: factor categories per month,
    repeats per service, actions done by their due date, dropped actions, time to findings
    and to closure, open actions past due per service (as /learning shows)."""
    if as_csv is not None and as_csv not in learning_reads.TABLES:
        raise CliError(f"--csv: one of {', '.join(learning_reads.TABLES)}")
    now = datetime.now(UTC)
    chosen = learning_reads.LearningFilter.last(days, now, team, service)

    async def go() -> learning_reads.Learning:
        return learning_reads.learning(record(), chosen, now, settings().related_lookback_days)

    data = run(go)
    if as_json:
        emit_json(data.as_json())
    elif as_csv is not None:
        typer.echo(learning_reads.csv_table(data, as_csv), nl=False)
    else:
        typer.echo(learning_text(data))


def learning_text(data: learning_reads.Learning) -> str:
    scope = " · ".join(x for x in (data.team, data.service) if x) or "every team and service"
    lines = [
        f"Learning: {scope}, {data.since:%Y-%m-%d} to {data.until:%Y-%m-%d} (exclusive): "
        f"{data.postmortems} post-mortem(s)",
        "",
        "Contributing factors per month",
        "  " + f"{'':20}" + "".join(f"{m:>8}" for m in data.months),
    ]
    for category, counts in data.categories.items():
        if any(counts):
            lines.append("  " + f"{category:20}" + "".join(f"{n:>8}" for n in counts))
    lines += ["", f"Repeat incidents per service (within {data.lookback_days} days)"]
    lines += [
        f"  {r.service:30} {r.repeats:>3} repeat(s) of {r.incidents:>3}, last {r.last:%Y-%m-%d}"
        for r in data.repeats
    ] or ["  none"]
    lines += ["", "Actions due in the period: on time / late / dropped / open past due / due"]
    for by, group in (("type", data.by_type), ("priority", data.by_priority)):
        for name, o in group.items():
            if o.due:
                share = f"{o.on_time_share:.0%}" if o.on_time_share is not None else "—"
                lines.append(
                    f"  {by:8} {name:12} {o.on_time:>4} {o.late:>4} {o.dropped:>4} "
                    f"{o.open_past_due:>4} {o.due:>5}  on time {share}"
                )
    lines += ["", "Did they work: verified / ineffective / unanswered"]
    lines += [
        f"  {name:12} {v.verified:>4} {v.ineffective:>4} {v.unanswered:>4}  worked "
        + (f"{v.worked_share:.0%}" if v.worked_share is not None else "—")
        for name, v in data.verified_by_type.items()
        if v.verified or v.ineffective or v.unanswered
    ] or ["  none answered in the period"]
    lines += ["", "Dropped actions"]
    lines += [
        f"  {d.workflow_id}/{d.action_id}: {d.title} — {d.reason or 'no reason given'}"
        for d in data.dropped
    ] or ["  none"]
    lines += ["", "From resolution (days): median, 90th percentile"]
    for name, spread in (("to findings", data.to_review), ("to closure", data.to_closure)):
        lines.append(
            f"  {name:12} {spread.median_days if spread.median_days is not None else '—':>6} "
            f"{spread.p90_days if spread.p90_days is not None else '—':>6}  ({spread.count})"
        )
    lines += ["", "Open actions past due, per service"]
    lines += [f"  {s:30} {n:>4}" for s, n in data.overdue_by_service.items()] or ["  none"]
    return "\n".join(lines)


@app.command("public")
def public_command(
    workflow_id: str,
    publish: Annotated[
        bool, typer.Option("--publish", help="Publish it to the team's public folder or repo.")
    ] = False,
    html: Annotated[bool, typer.Option("--html", help="Print the HTML, not Markdown.")] = False,
) -> None:
    """The customer-facing version of a post-mortem (impact, duration, what changed): no
    private entries, names, internal links or secrets; checked by the blameless check."""
    from domain import public

    config = settings()
    state = run(lambda: fetch_state(workflow_id))
    if not publish:
        summary = engine.public_summary(config, state)
        typer.echo(public.render(summary, html=html), nl=False)
        for note in summary.notes:
            typer.echo(f"blameless check: {note}", err=True)
        return
    try:
        summary, places = engine.publish_public(config, state)
    except engine.PublicRefused as refused:
        raise CliError(str(refused)) from None
    except IntegrationError as exc:  # a folder not writable, a repository refusing
        raise CliError(f"not published: {exc}") from None
    for place in places:
        typer.echo(f"published: {place}")
    typer.echo(f"{summary.removed} name(s), address(es), link(s) or secret(s) taken out")


# -- actions -------------------------------------------------------------------------------------


def _set_state(workflow_id: str, change: ActionStateChange) -> None:
    async def go() -> None:
        await (await handle_of(workflow_id)).execute_update(
            PostmortemWorkflow.set_action_state, change
        )

    run(go)
    typer.echo(f"action {change.action_id}: {change.state}")


@record_app.command("sync")
def record_sync(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Write every post-mortem of this engine (PM_TASK_QUEUE) that Temporal still has
    (running, and closed within its retention) into the record, as its workflow has it now:
    for an installation that ran before the record, or a record restored from an older
    backup. Safe to run at any time, again and again: a newer write by a workflow is never
    replaced."""
    # This engine's post-mortems: the ones on its task queue (PM_TASK_QUEUE).
    query = (
        f"WorkflowType = '{PostmortemWorkflow.__name__}' AND ExecutionStatus != 'ContinuedAsNew'"
        f" AND TaskQueue = {engine.quote(settings().task_queue)}"
    )

    async def go() -> dict[str, Any]:
        connected, store = await client(), open_record(settings())
        written, current, failed = 0, 0, []
        async for execution in connected.list_workflows(query):
            try:
                state = await engine.postmortem_state(connected, execution.id)
            except (RPCError, WorkflowQueryFailedError) as exc:
                failed.append(f"{execution.id}: {exc}")
                continue
            if state is None:  # deleted since it was listed
                continue
            done = await asyncio.to_thread(
                store.project, state, state.record_version, same_version=True
            )
            written, current = written + done, current + (not done)
        store.dispose()
        return {"written": written, "already_newer": current, "failed": failed}

    outcome = run(go)
    if as_json:
        emit_json(outcome)
    else:
        typer.echo(
            f"record sync: {outcome['written']} written, {outcome['already_newer']} already "
            f"newer in the record, {len(outcome['failed'])} not answering"
        )
        for line in outcome["failed"]:
            typer.echo(f"  ! {line}")
    if outcome["failed"]:
        raise typer.Exit(1)


@action_app.command("done")
def action_done(
    workflow_id: str,
    action_id: str,
    note: Annotated[str, typer.Option(help="How it was done.")] = "",
) -> None:
    """Mark an action done (for work no tracker reports)."""
    _set_state(
        workflow_id, ActionStateChange(action_id=action_id, state=ActionState.DONE, reason=note)
    )


@action_app.command("drop")
def action_drop(
    workflow_id: str,
    action_id: str,
    reason: Annotated[str, typer.Option(help="Why it is no longer worth doing.")],
) -> None:
    """Drop an action, with a reason."""
    _set_state(
        workflow_id,
        ActionStateChange(action_id=action_id, state=ActionState.DROPPED, reason=reason),
    )


@action_app.command("verify")
def action_verify(
    workflow_id: str,
    action_id: str,
    worked: Annotated[
        bool | None,
        typer.Option(
            "--worked/--did-not-work",
            help="Whether the done action worked (did not: a follow-up action revisits it).",
            show_default=False,
        ),
    ] = None,
    note: Annotated[str, typer.Option(help="What showed it: needed when it did not work.")] = "",
) -> None:
    """Say whether a done action worked: asked of its owner some time after it was done
    (its verification), and answerable from the moment it is done."""
    if worked is None:
        raise typer.BadParameter("say --worked or --did-not-work", param_hint="--worked")
    answer = VerifyActionInput(action_id=action_id, worked=worked, note=note)

    async def go() -> CorrectiveAction:
        handle = await handle_of(workflow_id)
        return await handle.execute_update(PostmortemWorkflow.verify_action, answer)

    action = run(go)
    typer.echo(f"action {action.id}: {action.verification}")
    if not worked:
        typer.echo("a follow-up action revisits it: see `postmortem status`")


@action_app.command("retry")
def action_retry(workflow_id: str, action_id: str) -> None:
    """File an action's ticket again after the tracker refused it and the cause was fixed,
    or start its follow-up again when that is what failed."""

    async def go() -> None:
        await (await handle_of(workflow_id)).execute_update(
            PostmortemWorkflow.retry_filing, RetryFilingInput(action_id=action_id)
        )

    run(go)
    typer.echo(f"action {action_id}: filing again (see `postmortem status {workflow_id}`)")


@action_app.command("move")
def action_move(
    workflow_id: str,
    action_id: str,
    due: Annotated[str, typer.Option(help="New due date (YYYY-MM-DD) or time.")],
    reason: Annotated[str, typer.Option(help="Why the date moves.")],
) -> None:
    """Move an action's deadline."""
    state = run(lambda: fetch_state(workflow_id))
    action = state.action(action_id)
    if action is None:
        raise CliError(f"no action {action_id!r} on {workflow_id}")
    try:
        move = MoveDeadlineInput(
            action_id=action_id, due=parse_due(due, action.team), reason=reason
        )
    except ValidationError as exc:
        raise CliError("; ".join(describe_validation_error(exc))) from None

    async def go() -> None:
        await (await handle_of(workflow_id)).execute_update(PostmortemWorkflow.move_deadline, move)

    run(go)
    typer.echo(f"action {action_id} due {_when(move.due)}")


@action_app.command("add")
def action_add(
    workflow_id: str,
    title: Annotated[str, typer.Option()],
    type: Annotated[ActionType, typer.Option(case_sensitive=False)],
    owner: Annotated[str, typer.Option()],
    team: Annotated[str, typer.Option()],
    due: Annotated[str, typer.Option(help="YYYY-MM-DD or an ISO 8601 time.")],
    priority: Annotated[Priority, typer.Option(case_sensitive=False)] = Priority.P2,
    description: Annotated[str, typer.Option()] = "",
) -> None:
    """Add a corrective action after the review; it is filed in its team's tracker."""
    routing().team(team)
    try:
        spec = ActionSpec(
            title=title,
            type=type,
            owner=owner,
            team=team,
            due=parse_due(due, team),
            priority=priority,
            description=description,
        )
    except ValidationError as exc:
        raise CliError("; ".join(describe_validation_error(exc))) from None

    async def go() -> str:
        return str(
            await (await handle_of(workflow_id)).execute_update(PostmortemWorkflow.add_action, spec)
        )

    typer.echo(f"action {run(go)} added")


@app.command("check-blameless")
def check_blameless(
    file: Annotated[Path, typer.Argument(help="A Markdown or text document.")],
    name: Annotated[
        list[str] | None,
        typer.Option(help="A person named in it beyond the first-name list; repeatable."),
    ] = None,
    team: Annotated[
        list[str] | None,
        typer.Option(help="A team named in it, beyond the routing file's teams; repeatable."),
    ] = None,
    language: Annotated[str, typer.Option(help="The word list to use.")] = "en",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Check any post-mortem text for blame and hindsight; exit 1 when there is a finding.

    People are found without being listed: first names (a list derived from a dataset of
    730,000 names), @logins, pronouns, roles ("the on-call engineer"), teams ("the platform
    team", the routing file's teams). A person is flagged as the subject, possessor or
    cause of blame ("Dana forgot to ...", "Lee's mistake", "caused by the intern"), never
    as the neutral subject of a fact ("At 10:02 Dana restarted the consumer")."""
    from domain.blameless import check_document
    from integrations.lexicon import load_lexicon

    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"{file}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise CliError(f"{file}: not a UTF-8 text file") from None
    try:
        lexicon = load_lexicon(language)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    try:
        teams = routed_teams(Settings())
    except ValidationError:
        teams = []  # no settings here: a check of a file needs none
    findings = check_document(text, lexicon, name or [], [*teams, *(team or [])])
    if as_json:
        emit_json([f.__dict__ for f in findings])
    elif not findings:
        typer.echo(f"{file}: no findings")
    for f in findings if not as_json else []:
        typer.echo(f"{file}: {f.field} [{f.rule}] {f.sentence}")
        typer.echo(f"    why: {f.reason}")
        typer.echo(f"    try: {f.suggestion}")
    if findings:
        raise typer.Exit(1)


# -- the local tracker --------------------------------------------------------------------------


def local_tracker() -> LocalTracker:
    current = settings()
    return LocalTracker(current.tracker_db, routing().local_projects(), current.local_tracker_url)


@tracker_app.command("list")
def tracker_list(
    team: Annotated[str | None, typer.Option(help="Only this team.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Tickets in the local tracker, with their comments (reminders, escalations)."""
    tickets = local_tracker().list_tickets(team=team)
    if as_json:
        emit_json([t.model_dump(mode="json") for t in tickets])
        return
    if not tickets:
        typer.echo("no tickets")
    for t in tickets:
        state = t.state + (f" ({t.resolution})" if t.resolution else "")
        due = f" · due {_when(t.due)}" if t.due else ""
        typer.echo(f"{t.key}  [{state}]  {t.title}")
        typer.echo(f"    team {t.team} · assignee {t.assignee or '—'}{due}")
        for c in t.comments:
            typer.echo(f"    - {_when(c.created_at)}: {c.body}")


@tracker_app.command("close")
def tracker_close(
    key: str,
    not_planned: Annotated[
        bool, typer.Option("--not-planned", help="Closed as not planned.")
    ] = False,
) -> None:
    """Close a ticket, as a person would in the tracker; follow-up notices at its next poll."""
    ticket = local_tracker().set_state(
        key, closed=True, resolution="not_planned" if not_planned else "completed"
    )
    typer.echo(f"{ticket.key} closed ({ticket.resolution})")


@tracker_app.command("reopen")
def tracker_reopen(key: str) -> None:
    """Reopen a closed ticket."""
    ticket = local_tracker().set_state(key, closed=False)
    typer.echo(f"{ticket.key} reopened")


def main() -> None:
    """Entry point: exit through os._exit after flushing (sdk-python #300 crashes at exit)."""
    code = 0
    try:
        app()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except (CliError, ConfigError, IntegrationError) as exc:
        typer.echo(f"error: {exc}", err=True)
        code = 1
    except KeyboardInterrupt:
        code = 130
    except Exception as exc:  # a bug of ours: still one line, the trace on demand
        if os.environ.get("PM_DEBUG"):
            traceback.print_exc()
        typer.echo(
            f"error: unexpected {type(exc).__name__}: {exc} (set PM_DEBUG=1 for the trace)",
            err=True,
        )
        code = 70
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
