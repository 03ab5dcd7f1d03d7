"""syncd's configuration: one YAML file, validated completely before anything runs.

Vocabulary used throughout the settings:

* **connector instance**: one CRM account (a Salesforce org, a HubSpot portal), named in the
  ``connectors:`` mapping (``salesforce/emea``, ``hubspot/main``); its ``type`` picks the
  connector type from :mod:`connectors.registry`, and its ``connector:`` block is that type's own
  settings model (URLs, auth, field mapping, newsletters), validated by it. The older top-level
  ``salesforce:`` / ``hubspot:`` keys are one instance each, named ``salesforce`` / ``hubspot``.
* **status values**: rules speak one status vocabulary (``Nurture``, ``Archived``, ...);
  ``status_values`` maps each to the value the CRM stores (``"Closed - Not Converted"``,
  ``UNQUALIFIED``). Unmapped statuses are written as named.
* **hold**: how long a lead whose status, or a field a rule sets, a person set by hand is left
  alone (``hold_rep_edits_for``).
* **breaker**: the share of leads one run may change before it writes nothing and asks for a
  human (``breaker.max_change_share``).
* **embedded**: start a loopback emulator for each connector instance (whose type has one),
  seeded with demo leads, and point the connectors at them; needs no credentials and no network.

Secrets are never written in the file: a secret setting takes ``{env: NAME}`` (an environment
variable) or ``{file: PATH}`` (a secret file, e.g. a Kubernetes secret volume). Every problem in
the file is reported at once, each with ``file:line:column``.
"""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from datetime import time as dt_time
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs, urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from ruamel.yaml.comments import CommentedMap

from connectors import registry
from rules.calendar import Calendar
from syncd.enrichment import EnrichmentSettings
from syncd.envconfig import apply_overrides
from syncd.lifecycle import LifecycleSettings
from syncd.yamlfile import (
    Located,
    YamlFileError,
    load_yaml,
    locate,
    overridden_by,
    validation_problems,
)

__all__ = [
    "ConnectorSettings",
    "InstanceName",
    "LeaseSettings",
    "RetentionSettings",
    "Settings",
    "load_settings",
    "parse_duration",
]

_MAX_SECRET_BYTES = 64 * 1024  # keys and tokens are a few kB; /dev/zero is not a secret


MIN_INTERVAL = timedelta(seconds=10)  #: cycles closer than this only spend API calls


def parse_duration(value: Any) -> timedelta:
    """``"30s"``, ``"15m"``, ``"48h"``, ``"90d"``, ``"2w"`` or a number of seconds.

    The grammar is the rule language's (``rules.durations``), so config and rules accept the
    same forms.

    Raises:
        ValueError: not a duration, negative, or too long for a date (pydantic reports it at
            its place in the file).
    """
    from rules.durations import parse_duration_setting

    return parse_duration_setting(value)


def _at_least_min_interval(value: timedelta) -> timedelta:
    if value < MIN_INTERVAL:
        raise ValueError(
            f"an interval of {value.total_seconds():g}s is below the minimum of "
            f"{MIN_INTERVAL.total_seconds():g}s; cycles closer together only spend "
            "API calls (a cycle reads every change since the last one)"
        )
    return value


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
Interval = Annotated[
    timedelta, BeforeValidator(parse_duration), AfterValidator(_at_least_min_interval)
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _secret_text(value: Any) -> Any:
    # A setting that may hold a password takes plain text or {env:}/{file:} (a SecretStr by
    # then); either way it is kept as a SecretStr, so no repr, log or error shows it.
    return SecretStr(value) if isinstance(value, str) else value


class StateSettings(_Model):
    url: Annotated[SecretStr, BeforeValidator(_secret_text)] = Field(
        SecretStr("sqlite:///var/syncd-state.db"),
        description="SQLAlchemy URL of the state store (mirror, cursors, outbox, audit). SQLite "
        "by default; postgresql+psycopg://... for scale. It can hold a password: "
        "give it as {env: NAME} or {file: PATH}; it is never logged.",
    )
    dir: Path | None = Field(
        None,
        description="Directory a relative SQLite path in state.url resolves against. Default: "
        "$STATE_DIRECTORY when set (systemd's StateDirectory=), else the config file's "
        "directory. The container image sets it to /var/lib/syncd, so state never lands "
        "beside a read-only config.",
    )
    auto_upgrade: bool | None = Field(
        None,
        description="Upgrade the state store's schema at start. Default: on for SQLite "
        "(one daemon owns the file), off for PostgreSQL (run `syncd db "
        "upgrade` after a backup; DDL locks would stall the running leader).",
    )


class RulesSettings(_Model):
    files: list[Path] = Field(
        [Path("rules/default.yaml")], description="Rule files, evaluated in order."
    )
    fixtures: Path | None = Field(
        Path("rules/fixtures/default"),
        description="Directory of rule fixtures for `syncd rules test`.",
    )
    watch: bool = Field(
        True,
        description="Reload changed rule files before each cycle; an "
        "invalid change keeps the last good rules.",
    )


def _time_of_day(value: Any) -> Any:
    # pydantic reads a number as seconds after midnight: `hours: [9, 17]` would make a working
    # day of eight seconds, and every business duration in the rules with it.
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError(
            f"{value!r} is not a time of day (a number reads as seconds after midnight); "
            'write hours as text, e.g. ["09:00", "17:00"]'
        )
    return value


TimeOfDay = Annotated[dt_time, BeforeValidator(_time_of_day)]


class CalendarSettings(_Model):
    """Working time for business durations in rules (``older_than: {business_days: 2}``) and
    the local date date-only CRM fields are compared on."""

    timezone: str = Field("UTC", description="IANA time zone, e.g. Europe/Berlin.")
    workdays: list[str] = Field(
        ["mon", "tue", "wed", "thu", "fri"],
        description="Working days: mon, tue, wed, thu, fri, sat, sun.",
    )
    hours: tuple[TimeOfDay, TimeOfDay] = Field(
        (dt_time(9), dt_time(17)), description='Working hours, local: ["09:00", "17:00"].'
    )
    holidays: list[date] = Field([], description="Local dates that are not working days.")

    @model_validator(mode="after")
    def _builds(self) -> CalendarSettings:
        self.calendar()  # an unknown zone or day is a config error, not a failed cycle
        return self

    def calendar(self) -> Calendar:
        """The rules' calendar (raises ``CalendarError``, a ValueError, when invalid)."""
        return Calendar.build(self.timezone, self.workdays, self.hours, self.holidays)


class ReportSettings(_Model):
    """The funnel report (``syncd report``): stages, acceptance and follow-up SLA."""

    stages: list[str] = Field(
        ["New", "MQL", "SAL", "SQL", "Converted"],
        description="Funnel stages (rule statuses) in lifecycle order.",
    )
    rejected: list[str] = Field(
        ["Unqualified", "Nurture"], description="Statuses an MQL is rejected to."
    )
    acceptance: Literal["accepted_over_decided", "within_sla_over_mqls"] = Field(
        "accepted_over_decided", description="How the sales acceptance rate is computed."
    )
    acceptance_target: float = Field(0.9, ge=0, le=1, description="Flag a rate under this.")
    accept_within_business_hours: float = Field(
        16, gt=0, description="within_sla_over_mqls: an MQL accepted this soon counts."
    )
    sla_business_hours: float = Field(
        16, gt=0, description="A SAL must be followed up within this much working time."
    )
    stale_after: Duration = Field(
        timedelta(days=30), description="A lead unchanged this long in a stage is stale."
    )

    @model_validator(mode="after")
    def _funnel(self) -> ReportSettings:
        if len(self.stages) < 2 or len(set(self.stages)) != len(self.stages):
            raise ValueError("report.stages needs at least two distinct statuses, in order")
        for needed in ("MQL", "SAL"):
            if needed not in self.stages:
                raise ValueError(f"report.stages must include {needed} (acceptance and SLA)")
        return self


AlertEvent = Literal[
    "sla_breach", "acceptance_below_target", "breaker_tripped", "writes_failing", "no_leader"
]
ALERT_EVENTS: tuple[AlertEvent, ...] = (
    "sla_breach",
    "acceptance_below_target",
    "breaker_tripped",
    "writes_failing",
    "no_leader",
)


class AlertChannelSettings(_Model):
    """One place alerts go: a plain webhook (a JSON POST)."""

    name: str = Field(description="Shown in logs and the syncd_alerts_failed_total label.")
    url: Annotated[SecretStr, BeforeValidator(_secret_text)] = Field(
        description="Webhook URL (JSON POST). Webhook URLs hold tokens: give it as "
        "{env: NAME} or {file: PATH}; it is never logged."
    )
    events: list[AlertEvent] = Field(
        default_factory=lambda: list(ALERT_EVENTS), description="What this channel is sent."
    )
    timeout: Duration = Field(timedelta(seconds=5), description="Per POST.")
    max_per_hour: int = Field(
        20, ge=1, description="Messages beyond this in an hour wait (rate limit)."
    )

    @field_validator("url")
    @classmethod
    def _webhook_url(cls, value: SecretStr) -> SecretStr:
        # The message never quotes the value: a webhook URL carries its token in the path.
        parts = urlsplit(value.get_secret_value())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                "not an http:// or https:// URL with a host (the value is not shown: it may "
                "hold a token); give the webhook's whole URL, scheme included"
            )
        return value


class AlertSettings(_Model):
    channels: list[AlertChannelSettings] = Field(
        default_factory=list, description="Where alerts go; none: no alerts."
    )
    repeat_after: Duration = Field(
        timedelta(hours=24),
        description="A condition still true (acceptance under target, writes failing, no "
        "leader) is sent again after this long; each SLA breach is sent once.",
    )
    no_leader_after: Duration = Field(
        timedelta(minutes=5),
        gt=timedelta(0),
        description="A connector whose lease nobody has held for this long is reported "
        "(no_leader) by any running replica; keep it above lease.ttl plus a renewal, the "
        "time a standby needs to take over.",
    )


class BreakerSettings(_Model):
    max_change_share: float = Field(
        0.2,
        gt=0,
        le=1,
        description="A run that would change more than this share of live leads writes nothing.",
    )
    min_changes: int = Field(
        20,
        ge=0,
        description="Runs changing fewer leads than this are never "
        "stopped (small orgs, quiet days).",
    )


class LoopGuardSettings(_Model):
    """The runtime limit on flipping leads (``syncd.loop_guard``)."""

    # 3 in 7 days: the shipped lifecycle moves a lead at most about twice a week (New -> MQL,
    # MQL -> SAL, a breached SAL back to MQL), so a fourth status write within a week is rules
    # fighting each other or a CRM workflow -- and a week is longer than a weekly rule flip.
    max_changes: int = Field(
        3,
        ge=1,
        description="Status writes by syncd a lead may get within `window`; the next one is held.",
    )
    window: Duration = Field(
        timedelta(days=7), gt=timedelta(0), description="How far back status writes are counted."
    )


class OutboxSettings(_Model):
    max_attempts: int = Field(
        8,
        ge=1,
        description="Attempts for a retriable record error before the change is marked failed.",
    )
    retry_base: Duration = Field(
        timedelta(seconds=30), gt=timedelta(0), description="First retry delay; doubles."
    )


#: The shortest audit retention: changes stay undoable (``syncd revert``) and reportable for a
#: quarter. See syncd.retention for the defaults' reasoning.
MIN_AUDIT_RETENTION = timedelta(days=90)


def _at_least_undo_window(value: timedelta) -> timedelta:
    if value < MIN_AUDIT_RETENTION:
        raise ValueError(
            f"audit rows are kept at least {MIN_AUDIT_RETENTION.days} days (the "
            "window in which a change can be undone and reported on); "
            f"{value.days} days is too short"
        )
    return value


class RetentionSettings(_Model):
    enabled: bool = Field(
        True,
        description="Delete old rows while the daemon runs (between cycles, in small batches).",
    )
    audit: Annotated[
        timedelta, BeforeValidator(parse_duration), AfterValidator(_at_least_undo_window)
    ] = Field(timedelta(days=180), description="Keep audit rows this long (at least 90d).")
    runs: Duration = Field(timedelta(days=180), description="Keep finished run rows this long.")
    outbox: Duration = Field(
        timedelta(days=30),
        description="Keep finished outbox rows (done, failed, superseded, "
        "withdrawn, blocked) this long; pending ones always.",
    )
    retry_requests: Duration = Field(
        timedelta(days=180),
        description="Keep `syncd retry` requests this long after they were applied (as long "
        "as the audit, whose retry_requested rows name the request); pending ones always.",
    )
    interval: Interval = Field(timedelta(hours=1), description="Time between pruning passes.")
    batch_rows: int = Field(5000, ge=100, le=100_000, description="Rows visited per transaction.")
    max_seconds: float = Field(
        60.0, gt=0, description="A pass stops after this long; the next one continues."
    )


class LeaseSettings(_Model):
    """One writer per connector: the process holding a connector's lease runs its cycles."""

    ttl: Duration = Field(
        timedelta(seconds=30),
        gt=timedelta(0),
        description="How long a lease lasts unless renewed. A standby takes "
        "over at most this long (plus one renewal period) after "
        "the leader dies; keep it above the connectors' request "
        "timeout.",
    )
    renew_every: Duration | None = Field(
        None,
        gt=timedelta(0),
        description="How often the leader renews its lease and "
        "a standby tries to take it. Default: ttl/3; "
        "must be shorter than ttl.",
    )

    @model_validator(mode="after")
    def _renew_before_expiry(self) -> LeaseSettings:
        if self.renew_every is not None and self.renew_every >= self.ttl:
            raise ValueError("lease.renew_every must be shorter than lease.ttl")
        return self

    @property
    def renewal(self) -> timedelta:
        return self.renew_every if self.renew_every is not None else self.ttl / 3


class ServerSettings(_Model):
    enabled: bool = True
    host: str = Field("127.0.0.1", description="Bind address of /healthz, /readyz and /metrics.")
    port: int = Field(9108, ge=0, le=65535)


class LogSettings(_Model):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["text", "json"] = Field("text", description="json for log shippers.")


class EmbeddedSettings(_Model):
    enabled: bool = Field(
        False,
        description="Run each connector's CRM as a loopback emulator "
        "with demo leads; credentials are not needed.",
    )
    leads: int = Field(300, ge=0, description="Demo leads seeded into each emulator.")
    seed: int = Field(7, description="Random seed of the demo data.")
    rep_activity: bool = Field(True, description="Simulate reps editing a few leads each cycle.")
    fresh_state: bool = Field(
        True,
        description="Clear syncd's state of the demo's connectors at "
        "start: the emulators start a new world each "
        "time (syncd.demo_state).",
    )


_INSTANCE_NAME = re.compile(r"^[a-z0-9_-]+(/[a-z0-9_-]+)*$")


def _instance_name(value: str) -> str:
    # The name keys the cursor, the outbox and the metrics label, and appears in logs and
    # paths of the config: keep it to a small, unambiguous alphabet.
    if len(value) > 64 or not _INSTANCE_NAME.match(value):
        raise ValueError(
            f"connector name '{value}' must be at most 64 lowercase letters, digits, "
            "'-', '_' or '/' (between parts), e.g. 'salesforce/emea'"
        )
    return value


InstanceName = Annotated[str, AfterValidator(_instance_name)]


class ProvenanceSettings(_Model):
    """CRM fields syncd writes with each status change, named as the CRM names them.

    Written in the same record as the status (no extra API call); see the README, "Provenance
    written back", for the fields an admin creates in each CRM.
    """

    rule: str | None = Field(None, description="Field for the deciding rule's id.")
    reason: str | None = Field(
        None, description="Field for the rule's explain sentence (cut to the field's length)."
    )
    changed_at: str | None = Field(None, description="Field for when syncd wrote the change.")
    run: str | None = Field(None, description="Field for the run id that decided the change.")
    stage_dates: dict[str, str] = Field(
        default_factory=dict,
        description="Rule status -> a date-time field set when "
        "syncd moves a lead into that status.",
    )

    def field_names(self) -> list[str]:
        names = [n for n in (self.rule, self.reason, self.changed_at, self.run) if n]
        return names + list(self.stage_dates.values())


class ConnectorSettings(_Model):
    type: str = Field(
        description="The connector type: salesforce, hubspot, or one registered "
        "by a plugin (see connectors.registry)."
    )
    enabled: bool = True
    interval: Interval = Field(timedelta(minutes=5), description="Time between cycles.")
    status_values: dict[str, str] = Field(
        default_factory=dict, description="Rule status -> the CRM's stored value."
    )
    settable_fields: list[str] = Field(
        default_factory=list, description="Fields rules may change with set_field."
    )
    hold_rep_edits_for: Duration = Field(
        timedelta(days=14),
        description="A lead whose status, or a field a rule sets, a person set is left alone "
        "this long.",
    )
    read_crm_history: bool = Field(
        True,
        description="Read the CRM's own status history: when leads are first mirrored (the "
        "ledger's backfill; a status a person set before is held) and after each batch of "
        "status writes (a person's edit made while it was in flight is restored). One query "
        "per 200 Salesforce leads, one read per 50 HubSpot contacts; false where the CRM keeps "
        "none (Salesforce without field history tracking on Lead Status).",
    )
    connector: dict[str, Any] = Field(
        default_factory=dict, description="The connector's own settings."
    )
    lifecycle: LifecycleSettings | None = Field(
        None,
        description="Lifecycle stage vocabulary, forward order and allowed backward "
        "moves (syncd.lifecycle); None: the stage is set like any field.",
    )
    provenance: ProvenanceSettings | None = Field(
        None, description="CRM fields that record which rule changed a lead, why and when."
    )

    @field_validator("status_values")
    @classmethod
    def _one_status_per_value(cls, value: dict[str, str]) -> dict[str, str]:
        # A lead's CRM value is read back as one rule status: two statuses on one value make
        # the rules of all but one of them silently never match that CRM's leads.
        seen: dict[str, str] = {}
        for status, crm_value in value.items():
            if crm_value in seen:
                raise ValueError(
                    f"'{seen[crm_value]}' and '{status}' are both written as {crm_value!r}; a "
                    "lead with that value would read back as only one of them, so rules on the "
                    "other never match it: give each status its own CRM value"
                )
            seen[crm_value] = status
        return value

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value not in registry.kinds():
            raise ValueError(registry.unknown_kind_message(value, registry.kinds()))
        return value


#: Top-level keys of configs written before ``connectors:``, each one instance of that name and
#: type. Fixed: a connector type added later is configured under ``connectors:`` only.
_LEGACY_KEYS = ("salesforce", "hubspot")


def _legacy_instance(kind: str) -> BeforeValidator:
    """A top-level ``salesforce:`` block is the instance ``salesforce`` of that type."""

    def fill_type(value: Any) -> Any:
        if isinstance(value, dict) and "type" not in value:
            return {"type": kind, **value}
        return value

    return BeforeValidator(fill_type)


class Settings(_Model):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    state: StateSettings = StateSettings()
    rules: RulesSettings = RulesSettings()
    calendar: CalendarSettings = CalendarSettings()
    report: ReportSettings = ReportSettings()
    alerts: AlertSettings = AlertSettings()
    # Validated at load time with the enricher's own model, so a wrong ICP type is a located
    # config error, not a crash when the daemon builds the enricher.
    enrichment: EnrichmentSettings = Field(
        default_factory=EnrichmentSettings, description="ICP and free-mail settings (see README)."
    )
    breaker: BreakerSettings = BreakerSettings()
    outbox: OutboxSettings = OutboxSettings()
    loop_guard: LoopGuardSettings = LoopGuardSettings()
    retention: RetentionSettings = RetentionSettings()
    lease: LeaseSettings = LeaseSettings()
    server: ServerSettings = ServerSettings()
    log: LogSettings = LogSettings()
    embedded: EmbeddedSettings = EmbeddedSettings()
    instances: dict[InstanceName, ConnectorSettings] = Field(
        default_factory=dict,
        alias="connectors",
        description="Connector instances by name: {salesforce/emea: {type: salesforce, ...}}.",
    )
    # The single-instance shape of configs written before `connectors:`; new types get no key.
    salesforce: Annotated[ConnectorSettings | None, _legacy_instance("salesforce")] = None
    hubspot: Annotated[ConnectorSettings | None, _legacy_instance("hubspot")] = None

    # Where the file was, so relative paths in it resolve against it, not the working dir.
    base_dir: Path = Field(Path("."), exclude=True)
    source: str = Field("<defaults>", exclude=True)
    #: Settings given by environment variables (syncd.envconfig): config path -> variable.
    overrides: dict[tuple[str, ...], str] = Field(default_factory=dict, exclude=True)

    def path(self, p: Path) -> Path:
        return p if p.is_absolute() else (self.base_dir / p)

    def located(self, path: Sequence[str], message: str) -> Located:
        """A problem with the setting at ``path``: at its place in the file, or naming the
        environment variable that set it."""
        variable = overridden_by(self.overrides, tuple(path))
        if variable is not None:
            return Located.variable(variable, message)
        if self.source == "<defaults>":
            return Located(self.source, 1, 1, message)
        line, col = locate(load_yaml(Path(self.source)), tuple(path))
        return Located(self.source, line, col, message)

    @field_validator(*_LEGACY_KEYS)
    @classmethod
    def _not_also_an_instance(
        cls, value: ConnectorSettings | None, info: ValidationInfo
    ) -> ConnectorSettings | None:
        if value is not None and info.field_name in info.data.get("instances", {}):
            raise ValueError(
                f"'{info.field_name}' is also a connector under connectors:; move "
                "this block there (with type: " + value.type + ") or rename one"
            )
        if value is not None and value.type != info.field_name:
            raise ValueError(
                f"the top-level '{info.field_name}' key holds a {info.field_name} "
                f"connector; configure a {value.type} connector under connectors:"
            )
        return value

    def _all_instances(self) -> dict[str, tuple[tuple[str, ...], ConnectorSettings]]:
        found: dict[str, tuple[tuple[str, ...], ConnectorSettings]] = {}
        for key in _LEGACY_KEYS:
            legacy: ConnectorSettings | None = getattr(self, key)
            if legacy is not None:
                found[key] = ((key,), legacy)
        for name, cs in self.instances.items():
            found[name] = (("connectors", name), cs)
        return found

    def connectors(self) -> dict[str, ConnectorSettings]:
        """The enabled connector instances by name: the single-instance keys, then
        ``connectors:`` in file order."""
        return {name: cs for name, (_, cs) in self._all_instances().items() if cs.enabled}

    def connector_path(self, name: str) -> tuple[str, ...]:
        """Where instance ``name`` sits in the config file: ``("connectors", name)`` or the
        single-instance key ``(name,)``."""
        return self._all_instances()[name][0]


def load_settings(path: Path, *, env: Mapping[str, str] | None = None) -> Settings:
    """Read the config file, apply ``SYNCD_...__...`` environment overrides (see
    :mod:`syncd.envconfig`), resolve secret references, and validate.

    Raises:
        YamlFileError: with every problem found, each located at file:line:column or naming
            the environment variable.
    """
    env = os.environ if env is None else env
    root = load_yaml(path)
    name = str(path)
    if root is None:
        root = CommentedMap()
    if not isinstance(root, CommentedMap):
        raise YamlFileError([Located(name, 1, 1, "the config must be a mapping of settings")])
    overrides, env_problems = apply_overrides(Settings, root, env)
    problems = [Located.variable(variable, message) for variable, message in env_problems]
    resolved = _resolve_secrets(
        root, (), env, name, root, problems, overrides, base_dir=path.resolve().parent
    )
    problems += _inline_secret_problems(resolved, name, root, overrides)
    # The instances' own blocks are checked from the file's data, not from Settings, so a file
    # with a bad top-level setting and a bad connector block shows both problems in one run.
    blocks = _connector_block_problems(resolved, name, root, overrides, path.resolve().parent)
    try:
        settings = Settings.model_validate(
            {**resolved, "base_dir": path.resolve().parent, "source": name, "overrides": overrides}
        )
    except ValidationError as exc:
        problems.extend(validation_problems(name, root, exc, model=Settings, overrides=overrides))
        raise YamlFileError(problems + blocks) from None
    problems.extend(blocks)
    if problems:
        raise YamlFileError(problems)
    return settings


def _inline_secret_problems(
    resolved: dict[str, Any], file: str, root: Any, overrides: dict[tuple[str, ...], str]
) -> list[Located]:
    """Secrets written in the file in settings that take plain text too: a ``state.url`` that
    holds a password, and an alert channel's webhook URL (its path or query is its token).

    A value given by ``{env: NAME}``, ``{file: PATH}`` or a ``SYNCD_...`` variable is not
    written in the file, so it is never a problem here; neither is a URL without a password.
    """
    found: list[tuple[tuple[str | int, ...], str]] = []
    state = resolved.get("state")
    url = state.get("url") if isinstance(state, dict) else None
    if isinstance(url, str) and _holds_password(url):
        found.append(
            (
                ("state", "url"),
                "the URL holds a password, and secrets must not be written in the config; "
                "give the URL as {env: NAME} or {file: PATH}",
            )
        )
    alerts = resolved.get("alerts")
    channels = alerts.get("channels") if isinstance(alerts, dict) else None
    for i, channel in enumerate(channels if isinstance(channels, list) else []):
        if isinstance(channel, dict) and isinstance(channel.get("url"), str):
            found.append(
                (
                    ("alerts", "channels", i, "url"),
                    "a webhook URL holds its token, and secrets must not be written in the "
                    "config; give it as {env: NAME} or {file: PATH}",
                )
            )
    problems = []
    for loc, message in found:
        where = ".".join(str(p) for p in loc)
        if overridden_by(overrides, tuple(str(p) for p in loc)) is None:
            problems.append(Located(file, *locate(root, loc), f"{where}: {message}"))
    return problems


def _holds_password(url: str) -> bool:
    """Whether a database URL carries a password (``user:password@`` or libpq's
    ``?password=``); a URL that does not parse is left to the state store's check."""
    try:
        parts = urlsplit(url)
        return bool(parts.password) or "password" in parse_qs(parts.query)
    except ValueError:
        return False


def _connector_block_problems(
    resolved: dict[str, Any],
    file: str,
    root: Any,
    overrides: dict[tuple[str, ...], str],
    base_dir: Path,
) -> list[Located]:
    """Problems in each enabled instance's ``connector:`` block, validated by its type's model.

    Every command loads the config through here, so ``syncd plan`` and ``syncd status`` refuse
    a block ``syncd run`` would refuse, except for required settings left out, which only the
    commands that contact the CRM need (``syncd.app.connector_config`` reports them). What is
    not a usable shape yet (an unknown type, a ``connector:`` that is not a mapping, ``enabled``
    that is not a boolean) is left to the Settings model, which reports it. An embedded instance whose type has an emulator is
    checked when the demo starts: the emulator fills its URLs, credentials and CA bundle.
    """
    embedded = resolved.get("embedded")
    embedded_on = _as_bool(embedded.get("enabled", False) if isinstance(embedded, dict) else False)
    instances: list[tuple[tuple[str, ...], str, Any]] = [
        ((key,), key, resolved[key]) for key in _LEGACY_KEYS if key in resolved
    ]
    declared = resolved.get("connectors")
    if isinstance(declared, dict):
        instances += [(("connectors", str(n)), "", block) for n, block in declared.items()]
    problems: list[Located] = []
    for prefix, legacy_kind, block in instances:
        if not isinstance(block, dict) or _as_bool(block.get("enabled", True)) is not True:
            continue
        kind, data = block.get("type", legacy_kind), block.get("connector") or {}
        if not isinstance(kind, str) or kind not in registry.kinds() or not isinstance(data, dict):
            continue
        try:
            spec = registry.get(kind)
        except registry.ConnectorTypeError:
            continue  # located when the daemon builds it (syncd.app.connector_spec)
        if embedded_on is not False and spec.emulator is not None:
            continue
        where = (*prefix, "connector")
        try:
            spec.config_model.model_validate(data)
        except ValidationError as exc:
            # A required setting left out (URLs, auth) is reported when the daemon builds the
            # connector: commands that only read the mirror do not need it.
            problems += validation_problems(
                file,
                root,
                exc,
                prefix=where,
                model=spec.config_model,
                overrides=overrides,
                ignore_missing=True,
            )
            continue
        _, found = _block_problems(
            file, root, where, spec.config_model, data, data, overrides, base_dir
        )
        problems.extend(found)
    return problems


def _as_bool(value: Any) -> bool | None:
    """``value`` as the Settings model reads a boolean, or None when it reads none."""
    try:
        return TypeAdapter(bool).validate_python(value)
    except ValidationError:
        return None


def _resolve_secrets(
    node: Any,
    loc: tuple[Any, ...],
    env: Any,
    file: str,
    root: Any,
    problems: list[Located],
    overrides: dict[tuple[str, ...], str] | None = None,
    base_dir: Path = Path("."),
) -> Any:
    """Replace ``{env: NAME}`` / ``{file: PATH}`` with a SecretStr; plain data is copied.

    A relative ``PATH`` is relative to the config file, as every other path in it. Both kinds
    are stripped of surrounding whitespace: a Kubernetes Secret made with ``--from-file`` or an
    ``echo`` keeps the trailing newline in the environment variable too, and a token sent with
    it is refused by the HTTP client (whose error would quote the header, token and all).
    A secret that is empty after that is a problem here, not a 401 from the CRM later.
    """
    if isinstance(node, dict):
        if len(node) == 1 and next(iter(node)) in ("env", "file"):
            kind, ref = next(iter(node.items()))
            variable = overridden_by(overrides or {}, tuple(str(p) for p in loc))
            line, col = locate(root, loc)
            if variable is not None:  # the reference came from the environment
                file, line, col = f"environment variable {variable}", 0, 0
            where = ".".join(str(p) for p in loc)
            if not isinstance(ref, str) or not ref.strip() or "\x00" in ref:
                shape = (
                    "the name of an environment variable"
                    if kind == "env"
                    else "the path of a secret file"
                )
                example = "SF_CLIENT_SECRET" if kind == "env" else "/run/secrets/sf"
                problems.append(
                    Located(
                        file,
                        line,
                        col,
                        (
                            f"{where}: {{{kind}: ...}} takes {shape} as text, not {_kind_of(ref)}; "
                            f"e.g. {{{kind}: {example}}}"
                        ),
                    )
                )
                return SecretStr("")
            value, problem = _referenced_secret(kind, ref, env, base_dir)
            if problem is not None:
                problems.append(Located(file, line, col, f"{where}: {problem}"))
            return SecretStr(value)
        return {
            k: _resolve_secrets(v, (*loc, k), env, file, root, problems, overrides, base_dir)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [
            _resolve_secrets(v, (*loc, i), env, file, root, problems, overrides, base_dir)
            for i, v in enumerate(node)
        ]
    return node


def _referenced_secret(kind: str, ref: str, env: Any, base_dir: Path) -> tuple[str, str | None]:
    """The secret ``{kind: ref}`` names, stripped, or ``("", what is wrong with it)``."""
    if kind == "env":
        if ref not in env:
            return "", f"environment variable {ref} is not set; export it or use {{file: PATH}}"
        value = env[ref].strip()
        if not value:
            return "", f"environment variable {ref} is empty; set it to the secret"
        return value, None
    secret_file = Path(ref) if Path(ref).is_absolute() else base_dir / ref
    try:
        with secret_file.open("rb") as f:
            data = f.read(_MAX_SECRET_BYTES + 1)
        if len(data) > _MAX_SECRET_BYTES:
            raise ValueError(f"it is larger than {_MAX_SECRET_BYTES} bytes")
        value = data.decode("utf-8").strip()
        if not value:
            raise ValueError("it is empty; write the secret into it")
        return value, None
    except OSError as exc:
        return "", f"cannot read secret file {secret_file}: {exc.strerror}"
    except ValueError as exc:  # UnicodeDecodeError too; never echo the content
        reason = "it is not UTF-8 text" if isinstance(exc, UnicodeError) else str(exc)
        return "", f"secret file {secret_file} is not usable: {reason}"


def _kind_of(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing"
    if isinstance(value, str):
        return "empty text"
    return f"a {type(value).__name__}"


def connector_problems(
    settings: Settings,
    name: str,
    model: type[BaseModel],
    data: dict[str, Any],
    from_file: dict[str, Any] | None = None,
) -> tuple[BaseModel | None, list[Located]]:
    """Validate one connector block with its own model; problems point into the config file.

    A secret setting written inline in the file (``from_file``), instead of as ``{env: NAME}``
    or ``{file: PATH}``, is a problem: config files get committed, copied and pasted.
    """
    root = load_yaml(Path(settings.source)) if settings.source != "<defaults>" else {}
    prefix = (*settings.connector_path(name), "connector")
    return _block_problems(
        settings.source,
        root,
        prefix,
        model,
        data,
        from_file,
        settings.overrides,
        settings.base_dir,
    )


def _block_problems(
    file: str,
    root: Any,
    prefix: tuple[str, ...],
    model: type[BaseModel],
    data: dict[str, Any],
    from_file: dict[str, Any] | None,
    overrides: Mapping[tuple[str, ...], str],
    base_dir: Path,
) -> tuple[BaseModel | None, list[Located]]:
    """``connector_problems`` for the block at ``prefix`` of the file ``root`` was read from."""

    def located(path: tuple[str, ...], message: str) -> Located:
        variable = overridden_by(overrides, path)
        if variable is not None:
            return Located.variable(variable, message)
        if file == "<defaults>":
            return Located(file, 1, 1, message)
        return Located(file, *locate(root, path), message)

    try:
        config = model.model_validate(data)
    except ValidationError as exc:
        return None, validation_problems(
            file, root, exc, prefix=prefix, model=model, overrides=overrides
        )
    config = _paths_from(config, base_dir)
    problems = []
    for loc in _secret_paths(config):
        raw: Any = from_file or {}
        for part in loc:
            raw = raw.get(part) if isinstance(raw, dict) else None
        path = (*prefix, *loc)
        # A secret given by an environment variable is not written in a file.
        if isinstance(raw, str) and overridden_by(overrides, path) is None:
            problems.append(
                located(
                    path,
                    f"{'.'.join(path)}: secrets must not be "
                    "written in the config; use {env: NAME} or "
                    "{file: PATH}",
                )
            )
    for loc, problem in _local_file_problems(config):
        path = (*prefix, *loc)
        problems.append(located(path, f"{'.'.join(path)}: {problem}"))
    return (None if problems else config), problems


def _paths_from(model: BaseModel, base_dir: Path) -> Any:
    """``model`` with each relative file path (a CA bundle) resolved against the config
    file's directory, as the config's other paths are: the daemon's working directory is
    wherever systemd or the container put it."""
    update: dict[str, Any] = {}
    for key in type(model).model_fields:
        value = getattr(model, key)
        if isinstance(value, BaseModel):
            resolved = _paths_from(value, base_dir)
            if resolved is not value:
                update[key] = resolved
        elif isinstance(value, Path) and not value.is_absolute():
            update[key] = base_dir / value
    return model.model_copy(update=update) if update else model


def _local_file_problems(
    model: BaseModel,
    prefix: tuple[str, ...] = (),
) -> list[tuple[tuple[str, ...], str]]:
    """Files a connector's settings name (CA bundles) that cannot be used, found before any
    request: a missing CA file otherwise surfaces as an error deep inside the first call."""
    found: list[tuple[tuple[str, ...], str]] = []
    for key in type(model).model_fields:
        value = getattr(model, key)
        if isinstance(value, BaseModel):
            found.extend(_local_file_problems(value, (*prefix, key)))
        elif isinstance(value, Path):
            problem = _unusable_file(value, is_ca="ca" in key.split("_"))
            if problem:
                found.append(((*prefix, key), problem))
    return found


def _unusable_file(path: Path, *, is_ca: bool) -> str | None:
    try:
        path.read_bytes()
    except OSError as exc:
        return f"cannot read {path} ({exc.strerror}); fix the path or the file's permissions"
    if is_ca:
        try:
            ssl.create_default_context(cafile=str(path))
        except ssl.SSLError:
            return (
                f"{path} holds no PEM certificate syncd can use as a CA bundle; point it at "
                "the PEM file of the CA that signed the server's certificate"
            )
    return None


def _secret_paths(model: BaseModel, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for key in type(model).model_fields:
        value = getattr(model, key)
        if isinstance(value, SecretStr):
            found.append((*prefix, key))
        elif isinstance(value, BaseModel):
            found.extend(_secret_paths(value, (*prefix, key)))
    return found
