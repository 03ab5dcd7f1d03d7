"""Wires settings into running parts: state store, rules, enricher, connectors, pipelines.

This is the only module that knows every layer; the CLI and the scheduler go through it.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from connectors import registry
from connectors.base import Connector, Preflight
from connectors.errors import BudgetExhausted, ConnectorError, RetriableError
from connectors.registry import ConnectorSpec, ConnectorTypeError
from rules import RuleBook, RuleLoadError, load_rulebook
from rules.fields import STANDARD_FIELDS
from syncd.enrichment import Enricher, EnrichmentSettings
from syncd.health import HealthServer
from syncd.metrics import Metrics
from syncd.pipeline import Pipeline
from syncd.rule_fields import field_catalogue, rules_reading
from syncd.settings import ConnectorSettings, Settings, connector_problems
from syncd.state import StateStore
from syncd.store_open import open_store
from syncd.yamlfile import Located

if TYPE_CHECKING:
    from syncd.alerts import Alerter

__all__ = ["App", "RulesHolder", "StartupError", "rule_allowlists"]

log = logging.getLogger("syncd")


class StartupError(Exception):
    """The daemon cannot start; ``problems`` says every reason, each with its place."""

    def __init__(self, problems: list[Any]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class _CrmRejects(Exception):
    """Reloaded rules that load but target statuses or fields a CRM lacks."""


#: Rule files the CRMs refused are checked again this long after (seconds), unchanged: the fix
#: the error asks for (add the status in the CRM) changes no byte of them. Not every cycle: a
#: check costs API calls, and a refused draft may sit on disk for days.
RECHECK_REFUSED_AFTER = 300.0


class RulesHolder:
    """The current rule book; reloads changed files and keeps the last good one on errors."""

    def __init__(
        self,
        paths: list[Path],
        *,
        loader: Callable[[list[Path]], RuleBook],
        validate: Callable[[RuleBook], list[str]] | None = None,
        metrics: Metrics | None = None,
        store: StateStore | None = None,
        broken: RuleLoadError | None = None,
        watch: bool = True,
    ) -> None:
        self.paths = paths
        #: ``rules.watch``: False keeps the rules loaded at start until the daemon restarts.
        self._watch = watch
        self._loader = loader
        self._validate = validate
        self._metrics = metrics
        self._store = store
        self._lock = threading.Lock()
        self.error: str | None = None
        self._digest = self._files_digest()
        #: When the CRMs refused the files of ``_digest`` (time.monotonic()); None: they did not.
        self._refused: float | None = None
        self.recheck_refused_after = RECHECK_REFUSED_AFTER
        self.book: RuleBook
        #: False when the files did not load (read-only commands only): ``book`` is unset.
        self.loaded = broken is None
        if broken is not None:
            # Read-only commands on files that do not load: the error and no book. They test
            # ``loaded`` before using the book; a daemon never gets such a holder.
            self.error = str(broken)
            return
        self.book = loader(paths)  # start-up: errors propagate and stop the daemon
        self._show_version()

    @classmethod
    def unloadable(
        cls, paths: list[Path], error: RuleLoadError, loader: Callable[[list[Path]], RuleBook]
    ) -> RulesHolder:
        """A holder for read-only commands when the files do not load: no book, the error."""
        return cls(paths, loader=loader, broken=error)

    def files_digest(self) -> str:
        """sha256 over the rule files' bytes now (what a stored rules error is tied to)."""
        return self._files_digest()

    def record_error(self, error: str | None) -> None:
        """Store the rules error (or its absence) with the digest of the files it is about,
        so ``syncd status`` can tell a current error from one about files since fixed."""
        if self._store is not None:
            self._store.set_meta("rules_error", error)
            self._store.set_meta("rules_error_files", self._digest if error else None)

    def _show_version(self) -> None:
        if self._metrics is not None:
            self._metrics.set_rules_version(self.book.version)

    def attach(
        self,
        *,
        store: StateStore | None = None,
        validate: Callable[[RuleBook], list[str]] | None = None,
    ) -> None:
        """Record reload errors in ``store`` and check reloaded rules with ``validate`` (both
        exist only after the first rules loaded)."""
        if store is not None:
            self._store = store
        if validate is not None:
            self._validate = validate

    def _files_digest(self) -> str:
        h = hashlib.sha256()
        for p in self.paths:
            try:
                h.update(p.read_bytes())
            except OSError as exc:
                h.update(str(exc).encode())
        return h.hexdigest()

    def current(self) -> RuleBook:
        """The book to use for the next cycle (reloading first if a file changed, unless
        ``rules.watch`` is off)."""
        if not self._watch:
            return self.book
        with self._lock:
            digest = self._files_digest()
            if digest == self._digest and (
                self._refused is None
                or time.monotonic() - self._refused < self.recheck_refused_after
            ):
                return self.book
            previous, self._digest = self._digest, digest
            try:
                book = self._loader(self.paths)
                # Every CRM's read-only check first; a CRM changes (prepare) only when all of
                # them accepted the new rules, so a rejected reload leaves every CRM as it was.
                problems = self._validate(book) if self._validate else []
                if problems:
                    raise _CrmRejects(
                        "the CRMs do not accept what the new rules write:\n" + "\n".join(problems)
                    )
            except ConnectorError as exc:
                # A CRM could not answer the check (down, stopping): neither accepted nor
                # refused. Keep the current rules and check the new ones again next cycle.
                self._digest = previous
                log.warning(
                    "rule files changed but could not be checked against the CRMs "
                    "(%s); keeping version %s and checking again next cycle",
                    exc,
                    self.book.version,
                )
                return self.book
            except (RuleLoadError, _CrmRejects) as exc:
                refused = isinstance(exc, _CrmRejects)
                # The same refusal of the same files, checked again: logged once.
                again = refused and digest == previous and self.error == str(exc)
                self.error = str(exc)
                self._refused = time.monotonic() if refused else None
                if not again:
                    log.error(
                        "rule files changed but do not load; keeping version %s:\n%s%s",
                        self.book.version,
                        exc,
                        f"\nchecking them again every {self.recheck_refused_after:.0f}s "
                        "(or when the files change)"
                        if refused
                        else "",
                    )
                if self._metrics:
                    self._metrics.rules_valid.set(0)
                self.record_error(self.error)
                return self.book
            if book.version == self.book.version:  # a broken edit put right again
                log.info("rule files load again: still version %s", book.version)
            else:
                log.info("rules reloaded: version %s -> %s", self.book.version, book.version)
            self.book, self.error, self._refused = book, None, None
            self._show_version()
            if self._metrics:
                self._metrics.rules_valid.set(1)
            self.record_error(None)
            return self.book


def unknown_mapped_statuses(settings: Settings, book: RuleBook) -> list[str]:
    """Warnings for ``status_values`` keys that look like a misspelt status of the rules,
    located in the config.

    A misspelt key maps nothing: the status it meant is written as named (``Nurture``, not
    ``NURTURE``), and with ``allow_add_status_options`` HubSpot is given that extra option.
    A key no rule set declares and nothing resembles is left alone: one config may map the
    whole lifecycle for rule files that use part of it.
    """
    from rules.issues import suggest

    known = book.statuses
    warnings: list[str] = []
    for name, cs in settings.connectors().items():
        path = (*settings.connector_path(name), "status_values")
        for status in cs.status_values:
            guess = None if status in known else suggest(status, known - set(cs.status_values))
            if guess is None:
                continue
            message = (
                f"warning: {'.'.join(path)} maps '{status}', which no rule set declares; "
                f"did you mean '{guess}'? Unmapped, '{guess}' is written to {name} as '{guess}'"
            )
            warnings.append(str(settings.located((*path, status), message)))
    return warnings


def _warn_unknown_mapped_statuses(settings: Settings, book: RuleBook) -> None:
    for warning in unknown_mapped_statuses(settings, book):
        log.warning("%s", warning)


def _unaccepted_statuses(
    book: RuleBook, name: str, status_values: Mapping[str, str], missing: set[str], where: str
) -> list[str]:
    """One problem per rule setting a status the CRM ``name`` does not accept."""
    problems: list[str] = []
    for rs in book.sets:
        for rule in rs.rules:
            if rule.status is None:
                continue
            value = status_values.get(rule.status, rule.status)
            if value in missing:
                problems.append(
                    f"{rs.path}:{rule.line}: rule '{rule.id}' sets status "
                    f"'{rule.status}', written to {name} as '{value}', which {name} "
                    f"does not accept; add the value in {name} or map "
                    f"'{rule.status}' in {where}.status_values"
                )
    return problems


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
    #: The health server, bound at start-up before any CRM is contacted (``serve_health``).
    health: HealthServer | None = None
    #: Connectors whose daily API budget was spent when their check was due: they are paused
    #: until the time given, and check the rules before their first cycle after it.
    unchecked: dict[str, datetime | None] = field(default_factory=dict)
    #: False for commands that must not change a CRM (``plan --pull``): checks run, but the
    #: set-up they list is not carried out.
    prepare: bool = True
    #: True for the commands that run cycles (``run``, ``sync``): a CRM that cannot answer its
    #: check at start-up (down, timing out, rate-limited past the retries) leaves its
    #: connector unchecked, and its cycles check the rules before they pull or write, instead
    #: of the process exiting as for a configuration problem (systemd would not restart it).
    defer_unreachable: bool = False
    #: The alert channels (None: none configured); shared by the cycles and the leader watch.
    alerter: Alerter | None = None

    @classmethod
    def build(
        cls,
        settings: Settings,
        *,
        clock: Callable[[], datetime] | None = None,
        connect: bool = True,
        metrics: Metrics | None = None,
        connectors: dict[str, Connector] | None = None,
        stop: threading.Event | None = None,
        serve_health: bool = False,
        prepare: bool = True,
        keep_funnel_state: bool = True,
        defer_unreachable: bool = False,
    ) -> App:
        """Check local resources, then build and preflight connectors.

        The order is the point: everything local (rule files, the state store, the health
        port, the connectors' own settings and CA files) is known good before any CRM is
        contacted, so a start-up that fails for a local reason costs no API call.

        Raises:
            StartupError: rules, settings, a local resource or the CRMs' preflight found
                problems; nothing has been written to any CRM.
            Interrupted: ``stop`` was set while a CRM check waited to retry.
        """
        clock = clock or (lambda: datetime.now(UTC))
        metrics = metrics or Metrics()
        holder = _rules_holder(settings, metrics, required=connect)
        # A command that only reads the mirror may use a read-only store.
        store = open_store(settings, writable=connect)
        holder.attach(store=store)
        if connect:
            holder.record_error(None)  # the files loaded: an error stored before is stale
        enricher = Enricher(EnrichmentSettings.model_validate(settings.enrichment))
        app = cls(
            settings=settings,
            store=store,
            rules=holder,
            enricher=enricher,
            metrics=metrics,
            clock=clock,
            stop=stop or threading.Event(),
            prepare=prepare,
            defer_unreachable=defer_unreachable,
        )
        if not connect:
            return app
        provenance: dict[str, Any] = {}
        try:
            if serve_health and settings.server.enabled:
                app.health = _bind_health(settings, metrics)
            if settings.embedded.enabled and connectors is None:
                app.embedded = _start_embedded(settings)
            app.connectors = connectors or _build_connectors(settings, app.embedded)
            for name, connector in app.connectors.items():
                connector.name = name  # given ones too: the pipeline keys state by it
                connector.bind_stop(app.stop)  # a stop request cuts retry and pacing waits
            provenance, problems = app._start_checks(holder.book)
        except BaseException:
            app.close()
            raise
        if problems:
            app.close()
            raise StartupError(problems)
        _warn_unknown_mapped_statuses(settings, holder.book)
        holder.attach(validate=app.preflight)
        for name, connector in app.connectors.items():
            app.pipelines[name] = Pipeline(
                connector=connector,
                store=store,
                rules=holder.current,
                enricher=enricher,
                settings=settings.connectors()[name],
                breaker=settings.breaker,
                outbox=settings.outbox,
                clock=clock,
                metrics=metrics,
                stop=app.stop,
                loop_guard=settings.loop_guard,
            )
            path = (*settings.connector_path(name), "connector", "fields")
            app.pipelines[name].fields_where = ".".join(path)
        for name, value in provenance.items():
            app.pipelines[name].provenance = value
        for name, resume_at in app.unchecked.items():
            app._pause_until_checked(name, resume_at)
        metrics.watch(engine=store.engine, connectors=app.connectors)
        app.alerter = _alerter(settings, store, metrics)
        metrics.after_cycle = _after_cycle(
            settings, store, metrics, app.alerter, keep_state=keep_funnel_state
        )
        return app

    def _start_checks(self, book: RuleBook) -> tuple[dict[str, Any], list[str]]:
        """The CRM checks of a start (preflight, then provenance): each instance's provenance
        and every problem. The demo's state is made fresh only when they pass: a start they
        stop leaves the last demo's state for `syncd status` and `syncd audit`."""
        problems = self.preflight(book)
        if problems:
            return {}, problems
        provenance, problems = self._check_provenance()
        if not problems and self.embedded is not None and self.settings.embedded.fresh_state:
            _start_demo_fresh(self.settings, self.store)
        return provenance, problems

    def _check_provenance(self) -> tuple[dict[str, Any], list[str]]:
        """Each instance's provenance fields, checked against its CRM; every problem named."""
        found: dict[str, Any] = {}
        problems: list[str] = []
        for name, cs in self.settings.connectors().items():
            if cs.provenance is None or name not in self.connectors or name in self.unchecked:
                continue
            issues, found[name] = self._provenance_of(name)
            problems += issues
        return found, problems

    def _provenance_of(self, name: str) -> tuple[list[str], Any]:
        """Instance ``name``'s provenance fields checked against its CRM: the problems, and
        its ``syncd.provenance.Provenance``."""
        from syncd.provenance import Provenance, check_provenance

        cs = self.settings.connectors()[name]
        assert cs.provenance is not None
        where = ".".join(self.settings.connector_path(name))
        issues, lengths = check_provenance(self.connectors[name], cs.provenance, where)
        provenance = Provenance(cs.provenance, lengths, {v: k for k, v in cs.status_values.items()})
        return issues, provenance

    def preflight(self, book: RuleBook, *, only: str | None = None) -> list[str]:
        """Ask each CRM whether it accepts everything the rules may write; then prepare them.

        Every connector's read-only ``check`` runs first; only when no CRM found a problem
        does each connector's ``prepare`` carry out the set-up its check listed (HubSpot adds
        missing ``hs_lead_status`` options there), so rules that some CRM rejects never change
        any CRM. A status a CRM lacks is reported once per rule that targets it, naming the
        rule, its place, the rule's status and the CRM value it maps to.

        A connector whose daily API budget is spent cannot be checked: it is left unchecked
        and paused (see :attr:`unchecked`), and checks the rules when the budget is back.
        ``only`` checks that one connector (its deferred check) and lets ``BudgetExhausted``
        propagate to its cycle.
        """
        problems: list[str] = []
        checked: dict[str, Preflight] = {}
        names = (
            [only] if only is not None else [n for n in self.connectors if n not in self.unchecked]
        )
        for name in names:
            connector = self.connectors[name]
            cs = self.settings.connectors()[name]
            where = ".".join(self.settings.connector_path(name))
            statuses = {cs.status_values.get(s, s) for s in book.target_statuses}
            fields = set(book.fields_written) | ({"status"} if statuses else set())
            try:
                result = connector.check(
                    statuses=statuses, fields=fields, newsletters=set(book.newsletters_used)
                )
            except BudgetExhausted as exc:
                if only is not None:
                    raise
                self._defer_check(name, exc)
                continue
            except RetriableError as exc:
                if only is not None or not self.defer_unreachable:
                    raise
                self._defer_unreachable_check(name, exc)
                continue
            checked[name] = result
            problems.extend(self._absent_field_problems(name, book, result, fields))
            problems.extend(_custom_type_problems(name, where, book, result))
            # ``statuses`` is what the CRM accepts once ``prepare`` ran (HubSpot may add
            # options); ``missing_statuses`` is what it lacks now, so it is not the test here.
            # Without a status field at all, the connector's own problem names that cause.
            missing = (
                set()
                if "status" in result.missing_fields
                else {v for v in statuses if v not in result.statuses}
            )
            problems.extend(_unaccepted_statuses(book, name, cs.status_values, missing, where))
            problems.extend(f"{name}: {p}" for p in result.problems)
            _warn_partly_refused(name, cs, book, result)
        if problems:
            return problems
        for name, result in checked.items():
            if not self.prepare:
                if result.setup:
                    log.info(
                        "%s: would prepare for the rules (not in a read-only command): %s",
                        name,
                        "; ".join(result.setup),
                    )
                continue
            if result.setup:
                log.info("%s: preparing for the rules: %s", name, "; ".join(result.setup))
            self.connectors[name].prepare(result)
        if only is not None:
            self.unchecked.pop(only, None)
        return problems

    def _absent_field_problems(
        self, name: str, book: RuleBook, result: Preflight, written: set[str]
    ) -> list[str]:
        """Mapped fields the CRM lacks: a problem per rule that reads one, else a warning.

        Fields the rules write (and ``status``) are the connector's own problems already.
        """
        where = ".".join(self.settings.connector_path(name))
        problems: list[str] = []
        for canonical in sorted(result.missing_fields - written - {"status"}):
            users = rules_reading(book, canonical)
            if users:
                problems += [
                    f"{use}: uses field '{canonical}', which {name} does not have "
                    f"(mapped in {where}.connector.fields); create the field in "
                    f"{name}, map '{canonical}' to a field it has, or change the rule"
                    for use in users
                ]
            else:
                log.warning(
                    "%s: field '%s' (mapped in %s.connector.fields) does not exist in "
                    "the CRM; no rule uses it, so pulls leave it out",
                    name,
                    canonical,
                    where,
                )
        return problems

    def _defer_check(self, name: str, exc: BudgetExhausted) -> None:
        self.unchecked[name] = exc.resume_at
        until = (
            f"{exc.resume_at:%Y-%m-%d %H:%M} UTC"
            if exc.resume_at is not None
            else "the budget is back"
        )
        log.warning(
            "%s: the daily API budget is spent (%s); %s stays paused until %s, sends "
            "no request until then, and checks the rules before its first cycle after",
            name,
            exc,
            name,
            until,
        )
        if name in self.pipelines:
            self._pause_until_checked(name, exc.resume_at)

    def _defer_unreachable_check(self, name: str, exc: RetriableError) -> None:
        self.unchecked[name] = None
        log.warning(
            "%s: the CRM could not answer its start-up check (%s); syncd starts anyway, and "
            "each %s cycle checks the rules before it pulls or writes until the CRM answers",
            name,
            exc,
            name,
        )

    def _pause_until_checked(self, name: str, resume_at: datetime | None) -> None:
        pipeline = self.pipelines[name]
        pipeline.pause(resume_at, reason="daily API budget spent at start-up")

        def check(book: RuleBook) -> list[str]:
            problems = self.preflight(book, only=name)
            if not problems:
                problems = self._check_deferred_provenance(name)
            return problems

        pipeline.preflight = check

    def _check_deferred_provenance(self, name: str) -> list[str]:
        """The provenance check a connector left unchecked at start-up skipped."""
        if self.settings.connectors()[name].provenance is None:
            return []
        issues, provenance = self._provenance_of(name)
        if not issues:
            self.pipelines[name].provenance = provenance
        return issues

    def recover_interrupted_runs(self, crm: str) -> None:
        """Call while holding ``crm``'s lease, before its first cycle (a standby must not: the
        leader's live run is ``running`` too)."""
        interrupted = self.store.close_interrupted_runs(self.clock(), crm=crm)
        if interrupted:
            log.warning(
                "%s: %d run(s) were interrupted (crash or kill); their approved changes "
                "are still in the outbox and the next cycle sends them",
                crm,
                interrupted,
            )

    def close(self, *, in_use: bool = False) -> None:
        """Release everything; with ``in_use`` (a cycle still waits on a CRM as the process
        exits) only the health server, leaving the cycle's connector and store to the exit."""
        if self.health is not None:
            self.health.stop()
            self.health = None
        if in_use:
            return
        for connector in self.connectors.values():
            connector.close()
        self.store.close()
        if self.embedded is not None:
            self.embedded.stop()


def _custom_type_problems(name: str, where: str, book: RuleBook, result: Preflight) -> list[str]:
    """Custom fields rules use whose type differs from the CRM's (e.g. a number field left
    as text: ``gte`` would not load and ``eq: "90"`` would never match): name the fix."""
    problems: list[str] = []
    for canonical, ftype in book.fields.items():
        kind = result.field_kinds.get(canonical)
        if canonical in STANDARD_FIELDS or kind is None or kind == ftype.value:
            continue
        if {ftype.value, kind} == {"integer", "number"}:
            continue  # numbers compare with numbers either way
        for use in rules_reading(book, canonical):
            problems.append(
                f"{use}: uses field '{canonical}' as {ftype.value}, but {name} "
                f"stores it as {kind}; set field_types: {{{canonical}: {kind}}} in "
                f"{where}.connector"
            )
    return problems


def _rules_holder(settings: Settings, metrics: Metrics, *, required: bool) -> RulesHolder:
    """The rules of the config's files; files that do not load stop start-up when the rules
    are ``required``, else (read-only commands) give a holder with the error and no book:
    status and audit need no rules, plan and explain say the rules are broken."""
    paths = [settings.path(p) for p in settings.rules.files]
    try:
        return RulesHolder(
            paths, loader=_book_loader(settings), metrics=metrics, watch=settings.rules.watch
        )
    except RuleLoadError as exc:
        if required:
            raise StartupError(list(getattr(exc, "issues", [exc]))) from None
        return RulesHolder.unloadable(paths, exc, _book_loader(settings))


def _bind_health(settings: Settings, metrics: Metrics) -> HealthServer:
    """Bind the health port now, so a port in use stops start-up before any CRM call."""
    server = settings.server
    try:
        health = HealthServer(
            server.host,
            server.port,
            registry=metrics.registry,
            readiness=lambda: (False, {"starting": True}),
        )
    except OSError as exc:
        where, path = f"{server.host}:{server.port}", "port"
        if exc.errno == errno.EADDRINUSE:
            problem = (
                f"server.port: {where} is already in use by another process; stop the other "
                "process or choose another server.port (or server.host)"
            )
        elif exc.errno == errno.EACCES:
            problem = (
                f"server.port: {where} cannot be bound ({exc.strerror}); a port below 1024 "
                "needs privileges syncd should not have: choose one above 1023"
            )
        else:  # a name that does not resolve, an address this machine does not have
            path = "host"
            problem = (
                f"server.host: {where} cannot be bound ({exc.strerror}); set server.host to "
                "an address of this machine: 127.0.0.1, or 0.0.0.0 for every interface"
            )
        raise StartupError([settings.located(("server", path), problem)]) from None
    health.start()  # liveness answers while the CRMs are checked; readiness says "starting"
    return health


def _start_embedded(settings: Settings) -> Any:
    """The demo's emulators (their state is made fresh once the start passed its checks)."""
    from syncd.embedded import EmbeddedCRMs

    return EmbeddedCRMs.start(settings)


def _start_demo_fresh(settings: Settings, store: StateStore) -> None:
    """New emulators, new state (syncd.demo_state); a store of real CRMs stops start-up."""
    from syncd.demo_state import NotTheDemosStore, start_fresh

    try:
        start_fresh(store, list(settings.connectors()))
    except NotTheDemosStore as exc:
        raise StartupError([settings.located(("state", "url"), str(exc))]) from None


def rule_allowlists(settings: Settings) -> dict[str, Any]:
    """What the config lets rules use: fields (standard and the connectors' custom ones),
    ``set_field`` fields and newsletter names.

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
    blocks = {name: cs.connector or {} for name, cs in settings.connectors().items()}
    return {
        "settable_fields": settable,
        "newsletters": newsletters or None,
        "fields": field_catalogue(blocks),
    }


def _book_loader(settings: Settings) -> Callable[[list[Path]], RuleBook]:
    allow = rule_allowlists(settings)
    calendar = settings.calendar.calendar()  # business time and date-only fields in rules

    def load(paths: list[Path]) -> RuleBook:
        return load_rulebook(paths, **allow, calendar=calendar)

    return load


def connector_spec(settings: Settings, name: str, cs: ConnectorSettings) -> ConnectorSpec[Any]:
    """The registered spec of the instance's ``type``; a type that fails to load is located."""
    try:
        return registry.get(cs.type)
    except ConnectorTypeError as exc:
        path = (*settings.connector_path(name), "type")
        raise StartupError([settings.located(path, f"{'.'.join(path)}: {exc}")]) from None


def connector_config(
    settings: Settings, name: str, cs: ConnectorSettings, embedded: Any = None
) -> BaseModel:
    """The instance's own connector settings, validated by its type's model, with problems
    located in the file."""
    data = dict(cs.connector or {})
    if embedded is not None:
        data = {**data, **embedded.connector_overrides(name)}
    spec = connector_spec(settings, name, cs)
    config, problems = connector_problems(
        settings, name, spec.config_model, data, from_file=dict(cs.connector or {})
    )
    if config is None or problems:
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
        out[name] = connector_spec(settings, name, cs).create(config, name)
    if problems:
        for connector in out.values():
            connector.close()
        raise StartupError(problems)
    return out


def _warn_partly_refused(name: str, cs: ConnectorSettings, book: Any, result: Preflight) -> None:
    """Log what works only in part (e.g. a status some Salesforce record types refuse): once
    per rule that writes it, naming the rule and where it refuses; never a start-up failure,
    since the rule still works elsewhere."""
    for warning in result.warnings:
        log.warning("%s: %s", name, warning)
    for rs in book.sets:
        for rule in rs.rules:
            value = cs.status_values.get(rule.status, rule.status)
            where = result.partly_refused_statuses.get(value) if rule.status else None
            if where:
                log.warning(
                    "%s:%s: rule '%s' sets status '%s' (%s in %s), which %s record "
                    "types %s refuse; those leads will fail",
                    rs.path,
                    rule.line,
                    rule.id,
                    rule.status,
                    value,
                    name,
                    name,
                    ", ".join(where),
                )


def _alerter(settings: Settings, store: StateStore, metrics: Metrics) -> Alerter | None:
    """The alert channels (syncd.alerts), when configured; one per process, so each channel's
    rate limit counts every message this process sends."""
    from syncd import alerts

    if not settings.alerts.channels:
        return None
    return alerts.Alerter(
        settings.alerts,
        store,
        on_failure=lambda channel: metrics.alerts_failed.labels(channel).inc(),
        on_sent=lambda channel, event: metrics.alerts_sent.labels(channel, event).inc(),
    )


def _after_cycle(
    settings: Settings,
    store: StateStore,
    metrics: Metrics,
    alerter: Alerter | None,
    *,
    keep_state: bool,
) -> Callable[[Any], None]:
    """What follows each cycle: the funnel KPI gauges (syncd.kpi), then the alerts they and
    the cycle call for (syncd.alerts, when channels are configured). ``keep_state``: keep the
    funnel's per-lead state for the next refresh (a daemon), or not (one cycle, then exit)."""
    from syncd.kpi import FunnelKpis

    kpis = FunnelKpis(store.engine, settings, metrics.publish_funnel, incremental=keep_state)

    def after(cycle: Any) -> None:
        if cycle.ledger_moved:  # even by a cycle that failed after the page that moved them
            kpis.ledger_moved(cycle.crm)
        funnel = kpis.refresh(cycle.crm, cycle.ledger_mark) if cycle.outcome != "failed" else None
        if alerter is not None:
            alerter.after_cycle(cycle, funnel)

    return after
