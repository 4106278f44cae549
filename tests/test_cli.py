"""The `postmortem` command as a user runs it: a real process against the real dev server."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from config import Settings, load_routing
from domain.models import Phase, PhaseChange, PostmortemState
from record.store import open_record
from tests import scenario
from tests.scenario import until
from tests.test_visibility import cli_env
from worker import build_worker
from workflows.postmortem import PostmortemWorkflow

POSTMORTEM = str(Path(sys.executable).parent / "postmortem")
REPO = Path(__file__).resolve().parents[1]
FINDINGS = Path(__file__).parent / "findings"


def cli(settings: Settings | None, *args: str, env: dict[str, str] | None = None):
    return subprocess.run(
        [POSTMORTEM, *args],
        env=env if env is not None else cli_env(settings) if settings else os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def ok(settings: Settings, *args: str) -> str:
    done = cli(settings, *args)
    assert done.returncode == 0, f"{args}: {done.stderr}"
    return done.stdout


def refused(settings: Settings | None, *args: str, env: dict[str, str] | None = None) -> str:
    """A refusal: non-zero exit, no traceback, the reason on stderr."""
    done = cli(settings, *args, env=env)
    assert done.returncode != 0, done.stdout
    assert "Traceback" not in done.stderr + done.stdout
    return done.stderr


def ok_with(env: dict[str, str], *args: str) -> str:
    done = cli(None, *args, env=env)
    assert done.returncode == 0, f"{args}: {done.stderr}"
    return done.stdout


async def aok(settings: Settings, *args: str) -> str:
    return await asyncio.to_thread(ok, settings, *args)


async def arefused(settings: Settings, *args: str) -> str:
    return await asyncio.to_thread(refused, settings, *args)


COMMANDS = [
    [],
    ["up"],
    ["worker"],
    ["api"],
    ["start"],
    ["status"],
    ["timeline"],
    ["timeline", "add"],
    ["review"],
    ["schedule"],
    ["publish"],
    ["cancel"],
    ["list"],
    ["overdue"],
    ["action"],
    ["action", "done"],
    ["action", "drop"],
    ["action", "move"],
    ["action", "retry"],
    ["action", "add"],
    ["action", "verify"],
    ["check-blameless"],
    ["tracker"],
    ["tracker", "list"],
    ["tracker", "close"],
    ["tracker", "reopen"],
    ["record"],
    ["record", "sync"],
]


def start_args(incident: str, team: str) -> list[str]:
    return [
        "start",
        "--incident-id",
        incident,
        "--title",
        "Checkout errors",
        "--severity",
        "SEV2",
        "--team",
        team,
        "--resolved-at",
        "2026-11-20T10:00:00Z",
    ]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "postmortem")
def test_every_command_has_help(command):
    done = cli(None, *command, "--help")
    assert done.returncode == 0, done.stderr
    assert "Usage: postmortem" in done.stdout


def test_unreachable_server_is_one_clear_line(settings: Settings):
    env = cli_env(settings) | {"TEMPORAL_ADDRESS": "127.0.0.1:1"}
    message = refused(None, "status", "postmortem-manual-X", env=env)
    assert message.strip() == (
        "error: cannot reach Temporal at 127.0.0.1:1 "
        "(is `make run` running? set TEMPORAL_ADDRESS otherwise)"
    )
    # `list` reads the record, not Temporal: with no record yet, one line says so.
    no_record = refused(None, "list", env=env)
    assert "the record's database is unavailable" in no_record and "PM_RECORD_URL" in no_record


def test_lists_read_the_record_with_temporal_down(settings: Settings):
    """What the record holds is listed and shown while Temporal is unreachable (or has
    deleted the workflows): a closed post-mortem, with its actions' outcomes."""
    now = datetime.now(UTC)
    incident = scenario.incident(now, incident_id="INC-KEPT", team="payments")
    closed = PostmortemState(
        workflow_id=incident.workflow_id,
        incident=incident,
        phase=Phase.CLOSED,
        phase_history=[PhaseChange(phase=Phase.DRAFTING, at=now)],
    )
    store = open_record(settings)
    store.project(closed, 7)
    store.dispose()
    env = cli_env(settings) | {"TEMPORAL_ADDRESS": "127.0.0.1:1"}
    listed = ok_with(env, "list", "--phase", "closed", "--json")
    assert [(r["workflow_id"], r["phase"], r["status"]) for r in json.loads(listed)] == [
        (incident.workflow_id, "closed", "completed")
    ]
    assert ok_with(env, "list", "--phase", "drafting") == "no post-mortems match\n"


def test_bad_arguments_are_refused_before_anything_starts(dev_settings: Settings):
    team = sorted(load_routing(dev_settings.teams_file).teams)[0]
    base = ["start", "--incident-id", "X1", "--title", "t", "--resolved-at", "2026-11-20T10:00:00Z"]
    assert "unknown team 'nobody'" in refused(
        dev_settings, *base, "--severity", "SEV1", "--team", "nobody"
    )
    assert "Invalid value for '--severity'" in refused(
        dev_settings, *base, "--severity", "SEV9", "--team", team
    )
    assert "has no time zone" in refused(
        dev_settings,
        "start",
        "--incident-id",
        "X1",
        "--title",
        "t",
        "--severity",
        "SEV1",
        "--team",
        team,
        "--resolved-at",
        "2026-11-20 10:00",
    )
    assert "--incident-id: 'bad id!' must start with a letter or digit" in refused(
        dev_settings,
        "start",
        "--incident-id",
        "bad id!",
        "--title",
        "t",
        "--severity",
        "SEV1",
        "--team",
        team,
        "--resolved-at",
        "2026-11-20T10:00:00Z",
    )
    open_record(dev_settings).dispose()  # as the worker makes it: unknown there too
    assert "no post-mortem 'postmortem-manual-none'" in refused(
        dev_settings, "status", "postmortem-manual-none"
    )


async def test_a_post_mortem_from_the_command_line(
    dev_settings: Settings, dev_worker, tmp_path: Path
):
    payments, platform = sorted(load_routing(dev_settings.teams_file).teams)
    incident = f"INC-{uuid.uuid4().hex[:8]}"
    start = [
        *start_args(incident, payments),
        "--started-at",
        "2026-11-20T08:00:00Z",
        "--responder",
        "sam@example.com",
    ]
    first = await asyncio.to_thread(cli, dev_settings, *start)
    assert first.returncode == 0 and first.stderr.strip() == "started"
    workflow_id = first.stdout.strip()
    assert workflow_id == f"postmortem-manual-{incident}"
    again = await asyncio.to_thread(cli, dev_settings, *start)
    assert again.stdout.strip() == workflow_id and again.stderr.strip() == "already exists"

    # Status: text and JSON with the documented keys.
    async def phase() -> str:
        return json.loads(await aok(dev_settings, "status", workflow_id, "--json"))["phase"]

    await until(phase, lambda p: p == "review_scheduled")
    text = await aok(dev_settings, "status", workflow_id)
    assert f"{workflow_id}  [review_scheduled]" in text and "Review" in text
    await aok(
        dev_settings,
        "timeline",
        "add",
        workflow_id,
        "--at",
        "2026-11-20T08:20:00Z",
        "--text",
        "Support reports failed payments",
        "--known",
        "Three tickets; no alert",
    )

    # Findings: bad files refused with their reasons, nothing sent; then the real one.
    message = await arefused(
        dev_settings, "review", workflow_id, "--findings", str(FINDINGS / "past-due.yaml")
    )
    assert "due date 2020-01-31 is in the past" in message and "nothing was sent" in message
    assert "not valid YAML" in await arefused(
        dev_settings, "review", workflow_id, "--findings", str(FINDINGS / "not-yaml.yaml")
    )
    assert "No such file" in await arefused(
        dev_settings, "review", workflow_id, "--findings", "nope.yaml"
    )
    findings = (REPO / "examples" / "findings.yaml").read_text()
    findings = findings.replace("team: payments", f"team: {payments}").replace(
        "team: platform", f"team: {platform}"
    )
    (tmp_path / "findings.yaml").write_text(findings)
    assert "valid" in await aok(
        dev_settings,
        "review",
        workflow_id,
        "--findings",
        str(tmp_path / "findings.yaml"),
        "--check",
    )
    recorded = await aok(
        dev_settings, "review", workflow_id, "--findings", str(tmp_path / "findings.yaml")
    )
    assert recorded.strip() == (
        "findings recorded; actions: canary-config, checkout-alert, timeout-range, rollback-runbook"
    )
    again_review = await arefused(
        dev_settings, "review", workflow_id, "--findings", str(tmp_path / "findings.yaml")
    )
    assert "findings are accepted while the review is scheduled or in progress" in again_review

    async def status() -> dict:
        return json.loads(await aok(dev_settings, "status", workflow_id, "--json"))

    data = await until(status, lambda d: d["phase"] == "following_up")
    assert {"workflow_id", "phase", "severity", "team", "review_at", "timeline", "actions"} <= set(
        data
    )
    assert data["severity"] == "SEV2" and data["team"] == payments and data["review_at"]
    assert (
        next(e["text"] for e in data["timeline"])
        == "Configuration change deployed to all regions at once"
    )
    for action in data["actions"]:
        assert {"id", "title", "type", "owner", "team", "due", "state", "ticket"} <= set(action)
        assert action["ticket"]["key"] and action["ticket"]["url"] and action["state"] == "open"

    # Actions: done, dropped (needs a reason), moved; the tracker shows what happened.
    later = (date.today() + timedelta(days=200)).isoformat()  # after every example due date
    assert "checkout-alert: done" in await aok(
        dev_settings, "action", "done", workflow_id, "checkout-alert"
    )
    assert "already done" in await arefused(
        dev_settings, "action", "done", workflow_id, "checkout-alert"
    )
    # Did it work: said once, of a done action; "did not work" needs what showed it.
    assert "--worked or --did-not-work" in await arefused(
        dev_settings, "action", "verify", workflow_id, "checkout-alert"
    )
    assert "only a done action can be verified" in await arefused(
        dev_settings, "action", "verify", workflow_id, "timeout-range", "--worked"
    )
    assert "needs a note" in await arefused(
        dev_settings, "action", "verify", workflow_id, "checkout-alert", "--did-not-work"
    )
    assert "checkout-alert: verified" in await aok(
        dev_settings, "action", "verify", workflow_id, "checkout-alert", "--worked"
    )
    assert "verified: it worked" in await aok(dev_settings, "status", workflow_id)
    assert "needs a reason" in await arefused(
        dev_settings, "action", "drop", workflow_id, "timeout-range", "--reason", " "
    )
    await aok(
        dev_settings,
        "action",
        "drop",
        workflow_id,
        "timeout-range",
        "--reason",
        "Superseded by canary-config",
    )
    assert "in the past" in await arefused(
        dev_settings,
        "action",
        "move",
        workflow_id,
        "canary-config",
        "--due",
        "2020-01-01",
        "--reason",
        "x",
    )
    moved = await aok(
        dev_settings,
        "action",
        "move",
        workflow_id,
        "canary-config",
        "--due",
        later,
        "--reason",
        "Freeze",
    )
    assert f"due {later}" in moved
    await aok(
        dev_settings,
        "action",
        "add",
        workflow_id,
        "--title",
        "Rehearse config rollback",
        "--type",
        "process",
        "--owner",
        "sam@example.com",
        "--team",
        payments,
        "--due",
        (date.today() + timedelta(days=150)).isoformat(),
    )
    tickets = json.loads(await aok(dev_settings, "tracker", "list", "--json"))
    assert len(tickets) == 1 + 5  # the tracking ticket and one per action
    assert "Due date moved to" in await aok(dev_settings, "tracker", "list")

    # Close one in the local tracker, cancel the post-mortem; a closed one refuses updates.
    key = next(
        a["ticket"]["key"] for a in (await status())["actions"] if a["id"] == "rollback-runbook"
    )
    assert f"{key} closed (completed)" in await aok(dev_settings, "tracker", "close", key)
    assert "does not exist" in await arefused(dev_settings, "tracker", "close", "PAY-999")
    await aok(dev_settings, "cancel", workflow_id, "--reason", "Test finished")
    await until(status, lambda d: d["phase"] == "cancelled")
    assert "this post-mortem is finished" in await arefused(
        dev_settings, "cancel", workflow_id, "--reason", "again"
    )


async def test_blameless_findings_are_shown_and_acknowledged_from_the_command_line(
    dev_settings: Settings, dev_worker, tmp_path: Path
):
    payments, platform = sorted(load_routing(dev_settings.teams_file).teams)
    incident = f"INC-{uuid.uuid4().hex[:8]}"
    workflow_id = (await aok(dev_settings, *start_args(incident, payments))).strip()
    findings = (REPO / "examples" / "findings.yaml").read_text()
    findings = findings.replace("team: payments", f"team: {payments}").replace(
        "team: platform", f"team: {platform}"
    )
    blaming = findings.replace(
        "proximate_cause: The payment provider timeout was set to 0 ms,",
        "proximate_cause: Human error set the payment provider timeout to 0 ms,",
    )
    assert blaming != findings
    (tmp_path / "findings.yaml").write_text(blaming)

    async def status() -> dict:
        return json.loads(await aok(dev_settings, "status", workflow_id, "--json"))

    await until(status, lambda d: d["phase"] == "review_scheduled")
    out = await aok(
        dev_settings, "review", workflow_id, "--findings", str(tmp_path / "findings.yaml")
    )
    assert "Publication waits for 1 blameless-check finding(s):" in out
    finding = next(line.split()[0] for line in out.splitlines() if "human-error-" in line)
    assert '"Human error set the payment provider timeout' in out and "Try:" in out

    data = await until(status, lambda d: d["publication_held"])
    assert data["blameless_open"] == [finding] and data["published_url"] is None
    assert "Held       publication waits for 1 finding(s)" in await aok(
        dev_settings, "status", workflow_id
    )
    assert "--note must say why" in await arefused(
        dev_settings, "review", workflow_id, "--ack", finding
    )
    assert "no blameless finding nope" in await arefused(
        dev_settings, "review", workflow_id, "--ack", "nope", "--note", "x"
    )
    done = await aok(
        dev_settings, "review", workflow_id, "--ack", finding, "--note", "Quoted from the chat"
    )
    assert done.strip() == f"acknowledged {finding}; 0 finding(s) still open"
    data = await until(status, lambda d: d["phase"] == "following_up")
    assert data["published_url"] and data["blameless"][0]["note"] == "Quoted from the chat"


async def test_record_sync_rebuilds_a_lost_record_from_the_workflows(dev_env, dev_settings):
    """An installation whose record is empty (it ran before the record, or the record was
    restored from an older backup): `record sync` writes every post-mortem Temporal has, as
    its workflow has it, and never replaces a newer write."""
    client = dev_env.client
    team = min(load_routing(dev_settings.teams_file).teams)
    async with build_worker(client, dev_settings):
        handle = await scenario.start(
            client, dev_settings.task_queue, scenario.incident(datetime.now(UTC), team=team)
        )
        state = await until(
            lambda: handle.query(PostmortemWorkflow.status), lambda s: s.phase.awaits_review
        )
        # The record is lost: a new, empty one in its place (PM_RECORD_URL).
        empty = dev_settings.data_dir / "restored.sqlite3"
        elsewhere = dev_settings.model_copy(update={"record_url": SecretStr(f"sqlite:///{empty}")})
        env = cli_env(dev_settings) | {"PM_RECORD_URL": f"sqlite:///{empty}"}
        first = json.loads(await asyncio.to_thread(ok_with, env, "record", "sync", "--json"))
        assert first == {"written": 1, "already_newer": 0, "failed": []}  # its queue only
        store = open_record(elsewhere, upgrade=False)
        recorded = store.get(handle.id)
        current = await handle.query(PostmortemWorkflow.status)
        assert recorded is not None and recorded.state == current
        assert recorded.version == current.record_version >= state.record_version
        # Again: the same states, written again or already newer; nothing goes back.
        again = json.loads(await asyncio.to_thread(ok_with, env, "record", "sync", "--json"))
        assert again["written"] + again["already_newer"] == 1
        assert store.project(current, current.record_version + 5)  # a newer write meanwhile
        await asyncio.to_thread(ok_with, env, "record", "sync", "--json")
        after = store.get(handle.id)
        assert after is not None and after.version == current.record_version + 5
        store.dispose()
