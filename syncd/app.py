"""Wires settings into running parts: state store, rules, enricher, connectors, pipelines.

This is the only module that knows every layer; the CLI and the scheduler go through it.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connectors.base import Connector
from rules import RuleLoadError, load_rulebook
from syncd.enrichment import Enricher, EnrichmentSettings
from syncd.metrics import Metrics
from syncd.pipeline import Pipeline
from syncd.settings import ConnectorSettings, Settings, connector_problems
from syncd.state import StateStore, StateStoreError
from syncd.yamlfile import Located

__all__ = ["App", "RulesHolder", "StartupError", "rule_allowlists"]

log = logging.getLogger("syncd")


class StartupError(Exception):
    """The daemon cannot start; ``problems`` says every reason, each with its place."""

    def __init__(self, problems: list[Any]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class _CrmRejects(Exception):
    """Reloaded rules that load but target statuses or fields a CRM lacks."""


class RulesHolder:
    """The current rule book; reloads changed files and keeps the last good one on errors."""

    def __init__(self, paths: list[Path], *, loader: Callable[[list[Path]], Any],
                 validate: Callable[[Any], list[str]] | None = None,
                 metrics: Metrics | None = None, store: StateStore | None = None) -> None:
        self.paths = paths
        self._loader = loader
        self._validate = validate
        self._metrics = metrics
        self._store = store
        self._lock = threading.Lock()
        self.error: str | None = None
        self._digest = self._files_digest()
        self.book = loader(paths)  # start-up: errors propagate and stop the daemon

    def _files_digest(self) -> str:
        h = hashlib.sha256()
        for p in self.paths:
            try:
                h.update(p.read_bytes())
            except OSError as exc:
                h.update(str(exc).encode())
        return h.hexdigest()

    def current(self) -> Any:
        """The book to use for the next cycle (reloading first if a file changed)."""
        with self._lock:
            digest = self._files_digest()
            if digest == self._digest:
                return self.book
            self._digest = digest
            try:
                book = self._loader(self.paths)
                problems = self._validate(book) if self._validate else []
                if problems:
                    raise _CrmRejects("the CRMs do not accept what the new rules write:\n"
                                      + "\n".join(problems))
            except (RuleLoadError, _CrmRejects) as exc:
                self.error = str(exc)
                log.error("rule files changed but do not load; keeping version %s:\n%s",
                          self.book.version, exc)
                if self._metrics:
                    self._metrics.rules_valid.set(0)
                if self._store:
                    self._store.set_meta("rules_error", self.error)
                return self.book
            log.info("rules reloaded: version %s -> %s", self.book.version, book.version)
            self.book, self.error = book, None
            if self._metrics:
                self._metrics.rules_valid.set(1)
            if self._store:
                self._store.set_meta("rules_error", None)
            return self.book


@dataclass
class App:
    settings: Settings
    store: StateStore
    rules: RulesHolder
    enricher: Enricher
    metrics: Metrics
    connectors: dict[str, Connector] = field(default_factory=dict)
    pipelines: dict[str, Pipeline] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)
    embedded: Any = None
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    @classmethod
    def build(cls, settings: Settings, *, clock: Callable[[], datetime] | None = None,
              connect: bool = True, metrics: Metrics | None = None,
              connectors: dict[str, Connector] | None = None) -> App:
        """Load rules, open the store, build and preflight connectors.

        Raises:
            StartupError: rules, settings or the CRMs' preflight found problems; nothing has
                been written anywhere.
        """
        clock = clock or (lambda: datetime.now(UTC))
        metrics = metrics or Metrics()
        # Rules first: a bad rule file stops start-up before any CRM is contacted.
        try:
            holder = RulesHolder([settings.path(p) for p in settings.rules.files],
                                 loader=_book_loader(settings), metrics=metrics)
        except RuleLoadError as exc:
            raise StartupError(list(getattr(exc, "issues", [exc]))) from None
        embedded = None
        if settings.embedded.enabled and connect and connectors is None:
            from syncd.embedded import EmbeddedCRMs

            embedded = EmbeddedCRMs.start(settings)
        enricher = Enricher(EnrichmentSettings.model_validate(settings.enrichment))
        try:
            store = _open_store(settings)
        except StateStoreError as exc:
            raise StartupError([str(exc)]) from None
        holder._store = store
        app = cls(settings=settings, store=store, rules=holder, enricher=enricher,
                  metrics=metrics, embedded=embedded, clock=clock)
        if not connect:
            return app
        try:
            app.connectors = connectors or _build_connectors(settings, embedded)
            problems = app.preflight(holder.book)
        except BaseException:
            app.close()
            raise
        if problems:
            app.close()
            raise StartupError(problems)
        holder._validate = app.preflight
        for name, connector in app.connectors.items():
            app.pipelines[name] = Pipeline(
                connector=connector, store=store, rules=holder.current, enricher=enricher,
                settings=settings.connectors()[name], breaker=settings.breaker,
                outbox=settings.outbox, clock=clock, metrics=metrics, stop=app.stop)
        return app

    def preflight(self, book: Any) -> list[str]:
        """Ask each CRM whether it accepts everything the rules may write.

        A status the CRM lacks is reported once per rule that targets it, naming the rule, its
        place, the rule's status and the CRM value it maps to.
        """
        problems: list[str] = []
        for name, connector in self.connectors.items():
            cs = self.settings.connectors()[name]
            statuses = {cs.status_values.get(s, s) for s in book.target_statuses}
            fields = set(book.fields_written) | ({"status"} if statuses else set())
            result = connector.check(statuses=statuses, fields=fields,
                                     newsletters=set(book.newsletters_used))
            missing = {v for v in statuses if v not in result.statuses}
            for rs in book.sets:
                for rule in rs.rules:
                    value = cs.status_values.get(rule.status, rule.status)
                    if rule.status is not None and value in missing:
                        problems.append(
                            f"{rs.path}:{rule.line}: rule '{rule.id}' sets status "
                            f"'{rule.status}', written to {name} as '{value}', which {name} "
                            f"does not accept; add the value in {name} or map "
                            f"'{rule.status}' in {name}.status_values")
            problems.extend(f"{name}: {p}" for p in result.problems
                            if not any(f"'{v}'" in p for v in missing))
        return problems

    def recover_interrupted_runs(self, crm: str) -> None:
        """Call while holding ``crm``'s lease, before its first cycle (a standby must not: the
        leader's live run is ``running`` too)."""
        interrupted = self.store.close_interrupted_runs(self.clock(), crm=crm)
        if interrupted:
            log.warning("%s: %d run(s) were interrupted (crash or kill); their approved changes "
                        "are still in the outbox and the next cycle sends them", crm, interrupted)

    def close(self) -> None:
        for connector in self.connectors.values():
            connector.close()
        self.store.close()
        if self.embedded is not None:
            self.embedded.stop()


def rule_allowlists(settings: Settings) -> dict[str, Any]:
    """What the config lets rules write: ``set_field`` fields and newsletter names.

    Newsletter names are checked only when some connector names newsletters (or the embedded
    demo, which creates its own); otherwise the CRM preflight is the check.
    """
    settable: set[str] = set()
    newsletters: set[str] = set()
    for cs in settings.connectors().values():
        settable.update(cs.settable_fields)
        newsletters.update((cs.connector or {}).get("newsletters", {}) or {})
    if settings.embedded.enabled:
        from syncd.embedded import NEWSLETTERS

        newsletters.update(NEWSLETTERS)
    return {"settable_fields": settable, "newsletters": newsletters or None}


def _book_loader(settings: Settings) -> Callable[[list[Path]], Any]:
    allow = rule_allowlists(settings)

    def load(paths: list[Path]) -> Any:
        return load_rulebook(paths, **allow)

    return load


def _open_store(settings: Settings) -> StateStore:
    url = settings.state.url
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        # A relative SQLite path is relative to the config file, like every other path in it.
        rel = Path(url.removeprefix("sqlite:///"))
        path = settings.path(rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{path}"
    elif url.startswith("sqlite:////"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return StateStore(url)


def connector_config(settings: Settings, name: str, cs: ConnectorSettings,
                     embedded: Any = None) -> Any:
    """The connector's own settings model, validated, with problems located in the file."""
    data = dict(cs.connector or {})
    if embedded is not None:
        data = {**data, **embedded.connector_overrides(name)}
    if name == "salesforce":
        from connectors.salesforce.config import SalesforceConfig as model
    else:
        from connectors.hubspot.config import HubSpotConfig as model
    config, problems = connector_problems(settings, name, model, data,
                                          from_file=dict(cs.connector or {}))
    if problems:
        raise StartupError(problems)
    return config


def _build_connectors(settings: Settings, embedded: Any) -> dict[str, Connector]:
    out: dict[str, Connector] = {}
    problems: list[Located] = []
    for name, cs in settings.connectors().items():
        try:
            config = connector_config(settings, name, cs, embedded)
        except StartupError as exc:
            problems.extend(exc.problems)
            continue
        if name == "salesforce":
            from connectors.salesforce.connector import SalesforceConnector

            out[name] = SalesforceConnector(config)
        else:
            from connectors.hubspot.connector import HubSpotConnector

            out[name] = HubSpotConnector(config)
    if problems:
        raise StartupError(problems)
    return out
