"""syncd's configuration: one YAML file, validated completely before anything runs.

Vocabulary used throughout the settings:

* **connector**: one CRM account (``salesforce`` or ``hubspot``); its ``connector:`` block is the
  connector's own settings model (URLs, auth, field mapping, newsletters), validated by it.
* **status values**: rules speak one status vocabulary (``Nurture``, ``Archived``, ...);
  ``status_values`` maps each to the value the CRM stores (``"Closed - Not Converted"``,
  ``UNQUALIFIED``). Unmapped statuses are written as named.
* **hold**: how long a status a person set by hand is left alone (``hold_rep_edits_for``).
* **breaker**: the share of leads one run may change before it writes nothing and asks for a
  human (``breaker.max_change_share``).
* **embedded**: start loopback emulators of both CRMs, seeded with demo leads, and point the
  connectors at them; needs no credentials and no network.

Secrets are never written in the file: a secret setting takes ``{env: NAME}`` (an environment
variable) or ``{file: PATH}`` (a secret file, e.g. a Kubernetes secret volume). Every problem in
the file is reported at once, each with ``file:line:column``.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, ValidationError
from ruamel.yaml.comments import CommentedMap

from syncd.yamlfile import Located, YamlFileError, load_yaml, locate, validation_problems

__all__ = [
    "ConnectorSettings",
    "Settings",
    "load_settings",
    "parse_duration",
]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: Any) -> timedelta:
    """``"30s"``, ``"15m"``, ``"48h"``, ``"90d"``, ``"2w"`` or a number of seconds.

    The grammar is the rule language's (``rules.durations``), so config and rules accept the
    same forms; a bad or overlong value raises ``ValueError`` (reported with its location).
    """
    from rules.durations import parse_duration_setting

    return parse_duration_setting(value)


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StateSettings(_Model):
    url: str = Field("sqlite:///var/syncd-state.db",
                     description="SQLAlchemy URL of the state store (mirror, cursors, outbox, "
                                 "audit). SQLite by default; postgresql+psycopg://... for scale.")


class RulesSettings(_Model):
    files: list[Path] = Field([Path("rules/default.yaml")],
                              description="Rule files, evaluated in order.")
    fixtures: Path | None = Field(Path("rules/fixtures/default"),
                                  description="Directory of rule fixtures for `syncd rules test`.")
    watch: bool = Field(True, description="Reload changed rule files before each cycle; an "
                                          "invalid change keeps the last good rules.")


class BreakerSettings(_Model):
    max_change_share: float = Field(0.2, gt=0, le=1,
                                    description="A run that would change more than this share of "
                                                "live leads writes nothing.")
    min_changes: int = Field(20, ge=0, description="Runs changing fewer leads than this are never "
                                                    "stopped (small orgs, quiet days).")


class OutboxSettings(_Model):
    max_attempts: int = Field(8, ge=1, description="Attempts for a retriable record error before "
                                                   "the change is marked failed.")
    retry_base: Duration = Field(timedelta(seconds=30), description="First retry delay; doubles.")


class ServerSettings(_Model):
    enabled: bool = True
    host: str = Field("127.0.0.1", description="Bind address of /healthz, /readyz and /metrics.")
    port: int = Field(9108, ge=0, le=65535)


class LogSettings(_Model):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["text", "json"] = Field("text", description="json for log shippers.")


class EmbeddedSettings(_Model):
    enabled: bool = Field(False, description="Run both CRMs as loopback emulators with demo "
                                             "leads; connector credentials are not needed.")
    leads: int = Field(300, ge=0, description="Demo leads seeded into each emulator.")
    seed: int = Field(7, description="Random seed of the demo data.")
    rep_activity: bool = Field(True, description="Simulate reps editing a few leads each cycle.")


class ConnectorSettings(_Model):
    enabled: bool = True
    interval: Duration = Field(timedelta(minutes=5), description="Time between cycles.")
    status_values: dict[str, str] = Field(default_factory=dict,
                                          description="Rule status -> the CRM's stored value.")
    settable_fields: list[str] = Field(default_factory=list,
                                       description="Fields rules may change with set_field.")
    hold_rep_edits_for: Duration = Field(timedelta(days=14),
                                         description="A status set by a person is left alone "
                                                     "this long.")
    connector: dict[str, Any] = Field(default_factory=dict,
                                      description="The connector's own settings.")


class Settings(_Model):
    state: StateSettings = StateSettings()
    rules: RulesSettings = RulesSettings()
    enrichment: dict[str, Any] = Field(default_factory=dict,
                                       description="ICP and free-mail settings (see README).")
    breaker: BreakerSettings = BreakerSettings()
    outbox: OutboxSettings = OutboxSettings()
    server: ServerSettings = ServerSettings()
    log: LogSettings = LogSettings()
    embedded: EmbeddedSettings = EmbeddedSettings()
    salesforce: ConnectorSettings | None = None
    hubspot: ConnectorSettings | None = None

    # Where the file was, so relative paths in it resolve against it, not the working dir.
    base_dir: Path = Field(Path("."), exclude=True)
    source: str = Field("<defaults>", exclude=True)

    def path(self, p: Path) -> Path:
        return p if p.is_absolute() else (self.base_dir / p)

    def connectors(self) -> dict[str, ConnectorSettings]:
        out = {}
        for name in ("salesforce", "hubspot"):
            cs = getattr(self, name)
            if cs is not None and cs.enabled:
                out[name] = cs
        return out


def load_settings(path: Path, *, env: dict[str, str] | None = None) -> Settings:
    """Read, resolve secret references in, and validate the config file.

    Raises:
        YamlFileError: with every problem found, each located at file:line:column.
    """
    env = os.environ if env is None else env
    root = load_yaml(path)
    name = str(path)
    if root is None:
        root = CommentedMap()
    if not isinstance(root, CommentedMap):
        raise YamlFileError([Located(name, 1, 1, "the config must be a mapping of settings")])
    problems: list[Located] = []
    resolved = _resolve_secrets(root, (), env, name, root, problems)
    try:
        settings = Settings.model_validate(
            {**resolved, "base_dir": path.resolve().parent, "source": name})
    except ValidationError as exc:
        problems.extend(validation_problems(name, root, exc))
        raise YamlFileError(problems) from None
    if problems:
        raise YamlFileError(problems)
    return settings


def _resolve_secrets(node: Any, loc: tuple[Any, ...], env: Any, file: str, root: Any,
                     problems: list[Located]) -> Any:
    """Replace ``{env: NAME}`` / ``{file: PATH}`` with a SecretStr; plain data is copied."""
    if isinstance(node, dict):
        if len(node) == 1 and next(iter(node)) in ("env", "file"):
            kind, ref = next(iter(node.items()))
            line, col = locate(root, loc)
            where = ".".join(str(p) for p in loc)
            if kind == "env":
                if ref not in env:
                    problems.append(Located(file, line, col,
                                            f"{where}: environment variable {ref} is not set; "
                                            "export it or use {file: PATH}"))
                    return SecretStr("")
                return SecretStr(env[ref])
            try:
                return SecretStr(Path(ref).read_text(encoding="utf-8").strip())
            except OSError as exc:
                problems.append(Located(file, line, col,
                                        f"{where}: cannot read secret file {ref}: {exc.strerror}"))
                return SecretStr("")
        return {k: _resolve_secrets(v, (*loc, k), env, file, root, problems)
                for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve_secrets(v, (*loc, i), env, file, root, problems)
                for i, v in enumerate(node)]
    return node


def connector_problems(settings: Settings, name: str, model: type[BaseModel],
                       data: dict[str, Any], from_file: dict[str, Any] | None = None,
                       ) -> tuple[BaseModel | None, list[Located]]:
    """Validate one connector block with its own model; problems point into the config file.

    A secret setting written inline in the file (``from_file``), instead of as ``{env: NAME}``
    or ``{file: PATH}``, is a problem: config files get committed, copied and pasted.
    """
    root = load_yaml(Path(settings.source)) if settings.source != "<defaults>" else {}
    try:
        config = model.model_validate(data)
    except ValidationError as exc:
        return None, validation_problems(settings.source, root, exc, prefix=(name, "connector"))
    problems = []
    for loc in _secret_paths(config):
        raw: Any = from_file or {}
        for part in loc:
            raw = raw.get(part) if isinstance(raw, dict) else None
        if isinstance(raw, str):
            path = (name, "connector", *loc)
            line, col = locate(root, path)
            problems.append(Located(settings.source, line, col,
                                    f"{'.'.join(path)}: secrets must not be written in the "
                                    "config; use {env: NAME} or {file: PATH}"))
    return (None if problems else config), problems


def _secret_paths(model: BaseModel, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for key in type(model).model_fields:
        value = getattr(model, key)
        if isinstance(value, SecretStr):
            found.append((*prefix, key))
        elif isinstance(value, BaseModel):
            found.extend(_secret_paths(value, (*prefix, key)))
    return found
