"""Settings from the environment (PM_*, TEMPORAL_*) and the team routing file (TOML)."""

from __future__ import annotations

import functools
import os
import re
import tomllib
from collections.abc import Iterable
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from domain.findings import TeamCalendar, describe_validation_error
from domain.intake import SourceMapping
from domain.models import Priority, Severity, TeamInfo
from domain.policy import DEFAULT_SEVERITY_POLICIES, FollowUpPolicy, SeverityPolicy
from domain.scheduling import WEEKEND, WorkingHours


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PM_", extra="ignore")

    temporal_address: str = Field(
        default="localhost:7233",
        validation_alias=AliasChoices("TEMPORAL_ADDRESS", "PM_TEMPORAL_ADDRESS"),
    )
    temporal_namespace: str = Field(
        default="default",
        validation_alias=AliasChoices("TEMPORAL_NAMESPACE", "PM_TEMPORAL_NAMESPACE"),
    )
    temporal_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("TEMPORAL_API_KEY", "PM_TEMPORAL_API_KEY")
    )
    task_queue: str = "postmortem"
    data_dir: Path = Path(".data")
    teams_file: Path = Path("teams.toml")
    publish_dir: Path | None = None
    # The record (PM_RECORD_URL): postgresql://user:password@host/db in production; a
    # SQLite file under data_dir by default (the trial).
    record_url: SecretStr | None = None
    local_tracker_db: Path | None = None
    local_tracker_url: str = "local://tickets"
    temporal_ui_port: int = 8233
    # The worker's Prometheus endpoint (the SDK's metrics and ours), e.g. 0.0.0.0:9464.
    worker_metrics_address: str | None = None
    # The worker's health endpoint (GET /healthz: 200 while it polls and Temporal answers,
    # 503 otherwise), e.g. 0.0.0.0:9465; off while unset.
    worker_health_address: str | None = None
    # On SIGTERM the worker stops taking work and gives in-flight activities this long to
    # finish before cancelling them (compose's stop_grace_period is a little longer).
    worker_shutdown_seconds: float = Field(default=30, ge=0, le=3600)
    log_level: str = "INFO"
    log_format: Literal["json", "console"] = "json"
    activity_threads: int = Field(default=16, ge=1, le=256)
    # Open workflows kept in the worker's memory; beyond it they are evicted and replayed
    # when they wake. Every post-mortem is 1 + its number of actions open workflows.
    max_cached_workflows: int = Field(default=2000, ge=0)
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    webhook_secret_github: SecretStr | None = None
    webhook_secret_jira: SecretStr | None = None
    # Jira Data Center cannot sign its webhooks: without a secret, unsigned deliveries are
    # accepted only from these networks (the Jira servers' addresses), e.g. "10.0.4.0/24".
    jira_webhook_networks: list[IPvAnyNetwork] = Field(default_factory=list)
    allow_unsigned: bool = False  # local trials only: accept webhooks with no secret set
    webhook_secret_pagerduty: SecretStr | None = None
    webhook_secret_incidentio: SecretStr | None = None  # whsec_... from incident.io
    webhook_secret_opsgenie: SecretStr | None = None
    webhook_token_alertmanager: SecretStr | None = None
    webhook_token_grafana: SecretStr | None = None
    webhook_secret_generic: SecretStr | None = None
    # Incident tools' APIs, to import an incident's log into its timeline (optional).
    pagerduty_api_url: str = "https://api.pagerduty.com"
    pagerduty_api_token: SecretStr | None = None
    incidentio_api_url: str = "https://api.incident.io"
    incidentio_api_key: SecretStr | None = None
    # The blameless check: "enforce" holds publication until each finding is fixed or
    # acknowledged; "warn" shows the findings and publishes anyway.
    blameless_mode: Literal["enforce", "warn"] = "enforce"
    blameless_language: str = "en"
    # Repeats: earlier post-mortems of the same service or with similar findings are looked
    # for this many days back from the incident's resolution.
    related_lookback_days: int = Field(default=90, ge=1, le=3650)
    # Dashboard access: bearer tokens (comma-separated) for read-only viewers and operators,
    # and/or the user header an OIDC proxy sets (operators listed by name). With none of
    # these, the API only listens on a loopback address.
    viewer_tokens: SecretStr | None = None
    operator_tokens: SecretStr | None = None
    auth_user_header: str | None = None  # e.g. X-Forwarded-Email (oauth2-proxy)
    operator_users: str = ""  # comma-separated users of that header who may operate
    # That header is believed only from the proxy: its addresses (a JSON list of networks),
    # or requests carrying this secret in X-Auth-Proxy-Secret (set by the proxy).
    auth_proxy_networks: list[IPvAnyNetwork] = Field(default_factory=list)
    auth_proxy_secret: SecretStr | None = None
    # Host names the API answers to (DNS rebinding): loopback names, PM_API_HOST and the
    # host of PM_PUBLIC_URL are always allowed; add the names your users type.
    allowed_hosts: list[str] = Field(default_factory=list)
    temporal_ui_url: str | None = None  # links to workflows; default the dev server's UI
    # The overview is served from memory this long, then refreshed behind the scenes (0: off).
    overview_cache_seconds: float = Field(default=15, ge=0, le=3600)
    # Where people reach the API: links in invitations and tickets (draft, review.ics).
    public_url: str = "http://127.0.0.1:8000"
    # Email for review invitations and reminders; off while PM_SMTP_HOST is unset.
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    smtp_username: str = ""
    smtp_password: SecretStr | None = None
    smtp_from: str = "postmortem@localhost"

    @field_validator("*", mode="before")
    @classmethod
    def _blank_secret_is_unset(cls, value: Any, info: Any) -> Any:
        """`PM_WEBHOOK_SECRET_X=` (a line uncommented without a value) means not set: an
        empty secret would let anyone sign (an HMAC with an empty key) or match."""
        secret = cls.model_fields[info.field_name].annotation == (SecretStr | None)
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if secret and isinstance(text, str) and not text.strip():
            return None
        return value

    @property
    def access_configured(self) -> bool:
        return bool(self.viewer_tokens or self.operator_tokens or self.auth_user_header)

    @property
    def ui_url(self) -> str:
        return (self.temporal_ui_url or f"http://127.0.0.1:{self.temporal_ui_port}").rstrip("/")

    @property
    def published_dir(self) -> Path:
        return self.publish_dir or self.data_dir / "published"

    @property
    def tracker_db(self) -> Path:
        return self.local_tracker_db or self.data_dir / "tracker.sqlite3"

    @property
    def record_database(self) -> str:
        """The record's URL (a secret: it may hold a password; never logged)."""
        if self.record_url is not None:
            return self.record_url.get_secret_value()
        return f"sqlite:///{self.data_dir / 'record.sqlite3'}"

    @property
    def temporal_db(self) -> Path:
        return self.data_dir / "temporal.sqlite3"


class ConfigError(Exception):
    """The routing file or a setting is wrong; the message says where and how."""


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(d|h|m|s|days?|hours?|minutes?|seconds?)\s*$")
_UNIT = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}


def _duration(value: Any) -> Any:
    """'7d', '36h', '30m' as well as what pydantic reads (seconds, ISO 8601 'P7D')."""
    if isinstance(value, str) and (match := _DURATION.match(value)):
        number, unit = match.groups()
        return timedelta(**{_UNIT[unit[0]]: float(number)})
    return value


Duration = Annotated[timedelta, BeforeValidator(_duration)]


class FollowUpConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reminders_before: list[Duration] = Field(
        default_factory=lambda: [timedelta(days=7), timedelta(days=1)]
    )
    escalate_after: Duration = timedelta(days=2)
    escalate_every: Duration = timedelta(days=7)
    poll_every: Duration = timedelta(hours=6)
    review_reminder_before: Duration = timedelta(days=1)

    @model_validator(mode="after")
    def _valid_policy(self) -> FollowUpConfig:
        # The policy's own rules, reported at load time with the file's field names.
        names = {
            "reminder_offsets": "reminders_before",
            "escalation_grace": "escalate_after",
            "escalation_repeat": "escalate_every",
            "status_poll_interval": "poll_every",
        }
        try:
            self.to_policy()
        except ValidationError as exc:
            problems = [
                f"{names.get(str(e['loc'][0]), e['loc'][0])}: "
                + e["msg"].removeprefix("Value error, ")
                for e in exc.errors()
            ]
            raise ValueError("; ".join(problems)) from None
        return self

    def to_policy(self) -> FollowUpPolicy:
        return FollowUpPolicy(
            reminder_offsets=self.reminders_before,
            escalation_grace=self.escalate_after,
            escalation_repeat=self.escalate_every,
            status_poll_interval=self.poll_every,
            review_reminder_before=self.review_reminder_before,
        )


class PolicyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    severity: dict[Severity, SeverityPolicy] = Field(default_factory=dict)
    follow_up: FollowUpConfig = Field(default_factory=FollowUpConfig)

    def for_severity(self, severity: Severity) -> SeverityPolicy:
        return self.severity.get(severity) or DEFAULT_SEVERITY_POLICIES[severity.value]


class SecretSource(BaseModel):
    """Where a token comes from: an environment variable or a file, never this file."""

    model_config = ConfigDict(extra="forbid")

    token_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    token_file: Path | None = None


class JiraConfig(SecretSource):
    url: str = Field(pattern=r"^https?://[^\s/]+.*$")
    deployment: Literal["cloud", "datacenter"] = "cloud"
    project: str = Field(pattern=r"^[A-Z][A-Z0-9_]{0,19}$")
    issue_type: str = "Task"
    email: str | None = None  # the account the Cloud API token belongs to
    # Our P1..P4 to the instance's priority names; unset: Highest, High, Medium, Low.
    priorities: dict[Priority, str] | None = None
    fields: dict[str, Any] = Field(default_factory=dict)  # components, custom fields
    link_type: str = "Relates"
    # How long Jira's search may miss a new issue: unset, 60 s on Cloud, 0 on Data Center.
    search_lag_seconds: float | None = Field(default=None, ge=0, le=3600)

    @model_validator(mode="after")
    def _cloud_needs_email(self) -> JiraConfig:
        if self.deployment == "cloud" and not self.email:
            raise ValueError("Jira Cloud needs `email`, the account of the API token")
        return self


class GitHubConfig(SecretSource):
    repo: str = Field(pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
    api_url: str = Field(default="https://api.github.com", pattern=r"^https?://[^\s/]+.*$")
    app_id: int | None = None
    installation_id: int | None = None
    private_key_file: Path | None = None
    logins: dict[str, str] = Field(default_factory=dict)  # owner email -> GitHub login
    milestones: bool = False

    @model_validator(mode="after")
    def _app_is_complete(self) -> GitHubConfig:
        if self.app_id is not None and (self.installation_id is None or not self.private_key_file):
            raise ValueError("a GitHub App needs app_id, installation_id and private_key_file")
        return self


class DigestConfig(BaseModel):
    """Where a team's digest goes (any of them), and when (the team's time zone)."""

    model_config = ConfigDict(extra="forbid")

    tracker_issue: str | None = None  # an issue in the team's tracker to comment on
    email: list[str] = Field(default_factory=list)
    webhook_url_env: str | None = Field(  # the variable holding a Slack-compatible URL
        default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$"
    )
    weekly: str = Field(default="MON 09:00", pattern=r"^(MON|TUE|WED|THU|FRI|SAT|SUN) \d{2}:\d{2}$")
    sev1_daily: str | None = Field(default="09:00", pattern=r"^\d{2}:\d{2}$")

    @property
    def enabled(self) -> bool:
        return bool(self.tracker_issue or self.email or self.webhook_url_env)


class FolderPublishConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["folder"] = "folder"
    dir: Path | None = None  # default: PM_PUBLISH_DIR


class GitHubPublishConfig(GitHubConfig):
    """A repository the team publishes to; the token as for a GitHub tracker."""

    kind: Literal["github"]
    branch: str | None = None  # default: the repository's default branch
    folder: str = Field(default="postmortems", pattern=r"^[A-Za-z0-9_./-]*$")


PublishConfig = Annotated[FolderPublishConfig | GitHubPublishConfig, Field(discriminator="kind")]


def _default_publishers() -> list[PublishConfig]:
    return [FolderPublishConfig()]


class DateRange(BaseModel):
    """A day, or an inclusive range of days written "2026-12-21..2027-01-01"."""

    first: date
    last: date

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        if isinstance(value, date):
            return {"first": value, "last": value}
        if isinstance(value, str):
            first, sep, last = value.partition("..")
            try:
                start = date.fromisoformat(first.strip())
                end = date.fromisoformat(last.strip()) if sep else start
            except ValueError:
                raise ValueError(
                    f"{value!r} is not a date (2026-12-24) or a range (2026-12-21..2027-01-01)"
                ) from None
            return {"first": start, "last": end}
        return value

    @model_validator(mode="after")
    def _ordered(self) -> DateRange:
        if self.last < self.first:
            raise ValueError(f"the range {self.first}..{self.last} ends before it starts")
        if (self.last - self.first).days > 366:
            raise ValueError(f"the range {self.first}..{self.last} is longer than a year")
        return self

    def days(self) -> set[date]:
        return {self.first + timedelta(days=n) for n in range((self.last - self.first).days + 1)}


@functools.cache
def _public_holidays(country: str, subdivision: str | None, year: int) -> frozenset[date]:
    try:
        found = holidays.country_holidays(country, subdiv=subdivision, years=[year])
    except NotImplementedError:
        raise ValueError(
            f"no public holidays known for country {country!r} "
            "(use an ISO 3166 code such as DE, US, GB)"
        ) from None
    except Exception as exc:  # the package names the bad subdivision itself
        raise ValueError(f"country {country!r}: {exc}") from None
    return frozenset(found)


@functools.cache
def country_weekend(country: str, subdivision: str | None) -> frozenset[int]:
    found = holidays.country_holidays(country.upper(), subdiv=subdivision, years=[2026])
    return frozenset(found.weekend) or WEEKEND


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def public_holidays(country: str, subdivision: str | None, years: Iterable[int]) -> set[date]:
    days: set[date] = set()
    for year in years:
        days |= _public_holidays(country.upper(), subdivision, year)
    return days


class TeamConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tracker: Literal["local", "jira", "github"] = "local"
    project: str | None = Field(default=None, pattern=r"^[A-Z][A-Z0-9]{0,9}$")
    manager: str = Field(min_length=1)
    timezone: str = "UTC"
    working_hours: str = "09:00-17:00"
    postmortem_owner: str | None = None
    holidays: list[date] = Field(default_factory=list)
    # Public holidays from the `holidays` package: an ISO 3166 country ("DE") and optionally
    # a subdivision ("BY"); added to the explicit `holidays` above.
    country: str | None = None
    subdivision: str | None = None
    # The days off each week, when they are not the country's (or Saturday and Sunday
    # without a country): ["fri", "sat"].
    weekend: list[Weekday] | None = Field(default=None, max_length=6)
    # Days no review is held (a freeze, an offsite): "2026-12-24" or "2026-12-21..2027-01-01".
    blackout: list[DateRange] = Field(default_factory=list)
    # Who facilitates reviews, in turn; never one of the incident's responders if another can.
    facilitators: list[str] = Field(default_factory=list)
    review_minutes: int = Field(default=60, ge=15, le=480)
    review_location: str = ""  # a room or a video-call link, put on the invitation
    # Where the team's post-mortems are published (several at once); default: the folder.
    publish: list[PublishConfig] = Field(default_factory=lambda: _default_publishers())
    # Where the public versions go (`postmortem public <id> --publish`): a folder of their
    # own (default: public/ under the publish folder) or a repository, never beside the
    # internal documents.
    public: list[PublishConfig] = Field(default_factory=list)
    # Hosts whose links may stay in a public version (the status page, the docs site).
    public_hosts: list[str] = Field(default_factory=list)
    # A folder with the team's own postmortem.md.j2 and/or postmortem.html.j2.
    template_dir: Path | None = None
    digest: DigestConfig | None = None
    jira: JiraConfig | None = None
    github: GitHubConfig | None = None

    @model_validator(mode="after")
    def _tracker_is_configured(self) -> TeamConfig:
        if self.tracker == "jira" and self.jira is None:
            raise ValueError('tracker = "jira" needs a [teams.<name>.jira] table')
        if self.tracker == "github" and self.github is None:
            raise ValueError('tracker = "github" needs a [teams.<name>.github] table')
        return self

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r} (use an IANA name such as Europe/Berlin)"
            ) from None
        return value

    @field_validator("working_hours")
    @classmethod
    def _hours(cls, value: str) -> str:
        WorkingHours.parse(value)
        return value

    @field_validator("template_dir")
    @classmethod
    def _template_dir_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_dir():
            raise ValueError(f"template folder {value} does not exist")
        return value

    @model_validator(mode="after")
    def _known_country(self) -> TeamConfig:
        if self.subdivision and not self.country:
            raise ValueError("subdivision needs a country")
        if self.country:
            public_holidays(self.country, self.subdivision, [2026])  # raises with the reason
        return self

    def weekend_days(self) -> frozenset[int]:
        """The days off each week (date.weekday() numbers): set here, else the country's
        from the `holidays` package, else Saturday and Sunday."""
        if self.weekend is not None:
            return frozenset(WEEKDAYS.index(day) for day in self.weekend)
        if self.country:
            return country_weekend(self.country, self.subdivision)
        return WEEKEND

    def days_off(self, years: Iterable[int], extra_blackout: Iterable[DateRange] = ()) -> set[date]:
        """Holidays (explicit and public) and blackout days: no review on these days."""
        years = list(years)
        days = set(self.holidays)
        if self.country:
            days |= public_holidays(self.country, self.subdivision, years)
        for span in [*self.blackout, *extra_blackout]:
            days |= span.days()
        return days


class Routing(BaseModel):
    model_config = ConfigDict(extra="forbid")

    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    teams: dict[str, TeamConfig] = Field(min_length=1)
    # Where an incident goes when no mapping names its team: it starts there, flagged
    # `unrouted`, until an operator routes it (`postmortem route`). Unset: such deliveries
    # are answered 503 so the sender retries while someone fixes the routing.
    triage_team: str | None = None
    # Days without reviews for every team (a company-wide freeze), added to each team's own.
    blackout: list[DateRange] = Field(default_factory=list)
    # Per incident source: how its priorities, services and teams map to ours.
    sources: dict[
        Literal["pagerduty", "incidentio", "opsgenie", "alertmanager", "grafana-oncall", "generic"],
        SourceMapping,
    ] = Field(default_factory=dict)

    # Services to teams, for every source (after a source's own service_teams): an incident
    # on "checkout-api" goes to its team whichever tool reports it.
    services: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _triage_team_exists(self) -> Routing:
        if self.triage_team is not None and self.triage_team not in self.teams:
            raise ValueError(f"triage_team {self.triage_team!r} is not one of the [teams]")
        for service, team in self.services.items():
            if team not in self.teams:
                raise ValueError(f"[services] {service!r}: team {team!r} is not one of the [teams]")
        return self

    def mapping_for(self, source: str) -> SourceMapping:
        return self.sources.get(source) or SourceMapping()  # type: ignore[call-overload]

    @field_validator("teams")
    @classmethod
    def _plain_team_names(cls, teams: dict[str, TeamConfig]) -> dict[str, TeamConfig]:
        for name in teams:
            if not re.match(r"^[^'\"\\\x00-\x1f]{1,100}$", name):
                raise ValueError(
                    f"team name {name!r}: no quotes, backslashes or control characters"
                )
        return teams

    @model_validator(mode="after")
    def _projects_unique(self) -> Routing:
        seen: dict[str, str] = {}
        for name in self.local_projects():
            project = self.project_of(name)
            if project in seen:
                raise ValueError(f"teams {seen[project]!r} and {name!r} share project {project!r}")
            seen[project] = name
        return self

    def project_of(self, name: str) -> str:
        team = self.teams[name]
        return team.project or (re.sub(r"[^A-Z0-9]", "", name.upper())[:6] or "PM")

    def team(self, name: str) -> TeamConfig:
        try:
            return self.teams[name]
        except KeyError:
            known = ", ".join(sorted(self.teams))
            raise ConfigError(f"unknown team {name!r} (known teams: {known})") from None

    def team_info(self, name: str) -> TeamInfo:
        team = self.team(name)
        return TeamInfo(
            name=name,
            tracker=team.tracker,
            manager=team.manager,
            timezone=team.timezone,
            postmortem_owner=team.postmortem_owner,
        )

    def calendars(self) -> dict[str, TeamCalendar]:
        return {
            name: TeamCalendar(ZoneInfo(t.timezone), WorkingHours.parse(t.working_hours))
            for name, t in self.teams.items()
        }

    def local_projects(self) -> dict[str, str]:
        return {
            name: self.project_of(name) for name, t in self.teams.items() if t.tracker == "local"
        }


_cache: dict[Path, tuple[bytes, Routing]] = {}


def load_routing(path: Path) -> Routing:
    """Read the routing file; re-read when it changes so a fix needs no restart. Keyed on
    the content, not the modification time: two writes within one clock tick share an
    mtime, and the second would be missed."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: routing file not found (copy teams.example.toml to {path} "
            "or set PM_TEAMS_FILE)"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the routing file: {exc.strerror}") from None
    cached = _cache.get(path)
    if cached and cached[0] == raw:
        return cached[1]
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        routing = Routing.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{path}: " + "; ".join(describe_validation_error(exc))) from None
    _cache[path] = (raw, routing)
    return routing


def routed_teams(settings: Settings) -> list[str]:
    """The routing file's team names, for the blameless check (a team is an agent a
    sentence may blame); none when the file cannot be read: the check runs without them,
    and the file's own error is reported where routing is used."""
    try:
        return sorted(load_routing(settings.teams_file).teams)
    except ConfigError:
        return []


def secret_env_name(kind: str, team: str) -> str:
    """`PM_JIRA_TOKEN__PAYMENTS`: the default variable holding a team's tracker token."""
    return f"PM_{kind.upper()}_TOKEN__" + re.sub(r"[^A-Z0-9]", "_", team.upper())


def read_secret(kind: str, team: str, source: SecretSource, *, required: bool = True) -> str:
    """The token from its file or variable. The error names where to put it, never a value."""
    if source.token_file is not None:
        try:
            return source.token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(
                f"team {team!r}: {kind} token file {source.token_file}: {exc.strerror}"
            ) from None
    name = source.token_env or secret_env_name(kind, team)
    value = os.environ.get(name, "").strip()
    if not value and required:
        raise ConfigError(
            f"team {team!r}: no {kind} token: set {name} (or token_file in the routing file)"
        )
    return value
