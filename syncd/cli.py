"""The ``syncd`` command.

Exit status: 0 success (also: stopped by a signal, or paused because a CRM's daily API budget is
spent); 1 a cycle failed at run time; 2 syncd could not start: bad configuration or rules,
another process holds a connector's lease (``sync --once``, ``plan --pull``), or a resource it
needs (state store, health port, CA file, a CRM's check) is not usable. Nothing was written to
any CRM then. Every error is reported in one line per problem, never as a traceback.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sized
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from syncd.logs import json_mode, setup_logging
from syncd.settings import ConnectorSettings, LogSettings, Settings, load_settings
from syncd.views import ConflictView, CrmPlan, Plan

if TYPE_CHECKING:  # the CLI imports the daemon lazily: `syncd --help` stays fast
    from rules.engine import RuleBook
    from syncd.app import App
    from syncd.pipeline import CycleReport
    from syncd.state import StateStore
from syncd.yamlfile import YamlFileError

# pretty_exceptions off: no boxed traceback may reach a user or a log shipper (main() turns
# an unexpected error into one line).
app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="syncd: keeps lead statuses right in Salesforce and HubSpot.",
)
rules_app = typer.Typer(
    no_args_is_help=True, help="Check, test, compare and print the schema of rule files."
)
app.add_typer(rules_app, name="rules")
db_app = typer.Typer(no_args_is_help=True, help="The state store's schema (Alembic revisions).")
app.add_typer(db_app, name="db")
history_app = typer.Typer(no_args_is_help=True, help="The status history ledger.")
app.add_typer(history_app, name="history")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

ConfigOpt = Annotated[
    Path, typer.Option("--config", "-c", help="Config file.", envvar="SYNCD_CONFIG")
]
RulesOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--rules",
        help="Use these rule files (a draft; repeat for several) instead of the "
        "config's rules.files. The live files and a running daemon are untouched.",
    ),
]
AtOpt = Annotated[
    str | None,
    typer.Option(
        "--at", help="Plan for this time: ISO (2026-12-07T09:00Z) or from now (+3d, +12h)."
    ),
]
DEFAULT_CONFIG = Path("config.example.yaml")


def version_text() -> str:
    """``syncd 0.1.0 (Python 3.11.9, Linux-6.1-x86_64)``: what a bug report needs."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    try:
        ours = version("syncd")
    except PackageNotFoundError:  # run from a source tree that was never installed
        ours = "unknown (not installed)"
    return f"syncd {ours} (Python {platform.python_version()}, {platform.platform()})"


def _show_version(value: bool) -> None:
    if value:
        out.print(version_text(), markup=False, highlight=False)
        raise typer.Exit(0)


@app.callback()
def _root(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_show_version,
            is_eager=True,
            help="Print syncd's version, Python's and the platform, then exit.",
        ),
    ] = False,
) -> None:
    """syncd: keeps lead statuses right in Salesforce and HubSpot."""
    if ctx.invoked_subcommand == "run":
        # A SIGTERM before `run` installs its handlers is a stop asked for, not an interrupted
        # command: main's handler, still in place, notes it; `run` acts on it.
        return
    # Any other command: SIGTERM interrupts it as Ctrl-C does (its leases released, no
    # traceback); one that came while the command line was loading stops it before it begins.
    signal.signal(signal.SIGTERM, _interrupt)
    if _terminated.is_set():
        raise KeyboardInterrupt


def main(*, terminated: Sized = ()) -> None:
    """``terminated``: the SIGTERMs syncd.launch noted while the command line was being
    imported (read after this function's own handler is in place, so none falls between the
    two); the command acts on one as on a SIGTERM arriving now."""
    # SIGTERM (a systemd stop, a Kubernetes Job's deadline, `timeout`) ends any command as
    # Ctrl-C does: its leases are released and no traceback is printed. Python's default
    # would end the process on the spot, leaving a `sync --once`'s leases held by a dead
    # process for lease.ttl. `syncd run` installs its own handlers (finish the batch, stop).
    # Until the command is known (_root), a SIGTERM is only noted: raised as an interrupt
    # while typer parses the command line, it ended `syncd run` with 143 (-2 in one CI run)
    # where a stop at any other moment of its start-up exits 0.
    signal.signal(signal.SIGTERM, _note_terminated)
    if len(terminated):
        _terminated.set()
    try:
        app()
    except SystemExit as exc:
        # Typer ends an interrupted command with 130 (SIGINT's), silently; SIGTERM's is 143.
        if exc.code == 130:
            _stopped()
        raise
    except KeyboardInterrupt:
        # Raised outside typer's own handling (as the command's clean-up ended): left to
        # Python, it would end the process by SIGINT, whatever the signal was.
        _stopped()
    except Exception as exc:  # the last line of defence: no traceback for users
        logging.getLogger("syncd").debug("unexpected error", exc_info=True)
        _error(
            f"syncd: unexpected {type(exc).__name__}: {_one_line(exc)} (a bug: please "
            "report it with the command you ran; log.level DEBUG logs the traceback)"
        )
        sys.exit(1)


_terminated = threading.Event()


def _interrupt(signum: int, _frame: Any) -> None:
    # Once only: a second SIGTERM must not break into the first one's clean-up (the leases'
    # release, the store's close), nor reach Python's exit as an unhandled interrupt.
    if _terminated.is_set():
        return
    _terminated.set()
    raise KeyboardInterrupt


def _stopped() -> NoReturn:
    """End an interrupted command: its line, then 143 after SIGTERM, 130 after Ctrl-C."""
    terminated = _terminated.is_set()
    _say_interrupted("SIGTERM" if terminated else "Ctrl-C (SIGINT)")
    sys.exit(128 + (signal.SIGTERM if terminated else signal.SIGINT))


def _note_terminated(signum: int, _frame: Any) -> None:
    _terminated.set()


def _say_interrupted(signal_name: str) -> None:
    """The line a stopped command leaves, so an interrupted ``sync --once`` does not end in
    silence: transactions commit whole, so what was committed stands and the rest is redone."""
    _error(
        f"syncd: stopped by {signal_name} before the command finished; what it committed "
        "stays in the state store and a cycle cut short is taken up by the next one "
        "(`syncd status` shows its run)"
    )


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else ""


def _error(text: str) -> None:
    """One error line for the user: a JSON record when the process logs JSON."""
    if json_mode():
        logging.getLogger("syncd").error(text)
    else:
        err.print(text, markup=False, highlight=False)


def _open_store_or_exit(settings: Settings, *, writable: bool = True) -> StateStore:
    """The state store, or exit 2 with what is wrong with it (``store_open.open_store``)."""
    from syncd.app import StartupError
    from syncd.store_open import open_store

    try:
        return open_store(settings, writable=writable)
    except StartupError as exc:
        _report_problems("syncd cannot start", exc.problems)
        raise typer.Exit(2) from None


def _report_problems(title: str, problems: list[Any]) -> None:
    """One line per problem, each starting with its place (file:line:col where known)."""
    if len(problems) > 1:
        _error(f"{title}: {len(problems)} problems; nothing was written to any CRM")
    for p in problems:
        _error(str(p))


def _settings(config: Path) -> Settings:
    try:
        return load_settings(config)
    except YamlFileError as exc:
        if _declared_log_format(config) == "json":
            setup_logging(LogSettings(format="json"))
        _report_problems(f"config error in {config}", exc.problems)
        raise typer.Exit(2) from None


def _declared_log_format(config: Path) -> str:
    """``log.format`` as the environment or the file gives it, read from a config that does
    not validate: its errors are reported as JSON when JSON was asked for."""
    from syncd.yamlfile import load_yaml

    # Variable names are read in any case (README, "Settings from the environment").
    declared = next(
        (v.strip() for k, v in os.environ.items() if k.upper() == "SYNCD_LOG__FORMAT"), ""
    )
    if not declared:
        try:
            root = load_yaml(config)
        except YamlFileError:
            return "text"
        section = root.get("log") if isinstance(root, dict) else None
        declared = str(section.get("format", "")) if isinstance(section, dict) else ""
    return "json" if declared == "json" else "text"


def _build(
    settings: Settings,
    *,
    connect: bool = True,
    stop: threading.Event | None = None,
    serve_health: bool = False,
    prepare: bool = True,
    keep_funnel_state: bool = True,
    defer_unreachable: bool = False,
) -> App:
    """The application, or one line per start-up problem and exit 2 (exit 0 if stopped)."""
    from connectors.errors import ConnectorError, Interrupted
    from syncd.app import App, StartupError

    try:
        return App.build(
            settings,
            connect=connect,
            stop=stop,
            serve_health=serve_health,
            prepare=prepare,
            keep_funnel_state=keep_funnel_state,
            defer_unreachable=defer_unreachable,
        )
    except StartupError as exc:
        _report_problems("syncd cannot start", exc.problems)
    except Interrupted:
        _error("stopped during start-up; nothing was written")
        raise typer.Exit(0) from None
    except ConnectorError as exc:
        # The CRM check could not run (unreachable, credentials refused): say which and why.
        _error(
            f"syncd cannot start: {exc.crm or 'a CRM'} check failed: {_one_line(exc)}; "
            "nothing was written"
        )
    except Exception as exc:  # start-up failures are one line, exit 2
        logging.getLogger("syncd").debug("start-up failed", exc_info=True)
        _error(f"syncd cannot start: {type(exc).__name__}: {_one_line(exc)}; nothing was written")
    raise typer.Exit(2)


@app.command()
def run(config: ConfigOpt = DEFAULT_CONFIG) -> None:
    """Run the daemon: a cycle per connector at its interval until SIGTERM/SIGINT."""
    # SIGTERM at any moment of start-up (the config still loading, a CRM check waiting to
    # retry) stops it cleanly with exit 0, as one during a cycle does: a service manager
    # stopping a unit that just started is not a failure.
    stop = threading.Event()
    from syncd.notify import Notifier

    notifier = Notifier()  # systemd Type=notify; a no-op without NOTIFY_SOCKET

    starting = threading.Event()
    starting.set()

    def _stop(signum: int, _frame: Any) -> None:
        logging.getLogger("syncd").info(
            "%s received during start-up; stopping", signal.Signals(signum).name
        )
        notifier.stopping()
        stop.set()
        threading.Thread(target=_exit_if_still_starting, args=(starting,), daemon=True).start()

    # Kept until the daemon installs its own handlers, which set the same event.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _stop)
    if _terminated.is_set():  # arrived while the command line was loading (see _root)
        _stop(signal.SIGTERM, None)
    settings = _settings(config)
    setup_logging(settings.log)
    _require_a_connector(settings)
    _require_a_durable_store(settings)
    if stop.is_set():
        _error("stopped during start-up; nothing was written")
        raise typer.Exit(0)
    application = _build(settings, stop=stop, serve_health=True, defer_unreachable=True)
    starting.clear()
    from syncd.heap import freeze_startup_heap

    freeze_startup_heap()  # full collections in a cycle skip the start-up heap (syncd.heap)
    _show_progress(application, settings)
    from syncd.scheduler import Daemon  # recovers each connector's runs once it leads it

    def show(report: CycleReport) -> None:
        _print_cycle(application, report, summary=False)  # the log line carries the summary

    daemon = Daemon(application, on_cycle=show, notifier=notifier)
    try:
        # The first preflight passed in _build: every CRM accepted the rules.
        notifier.ready(f"started; {len(application.pipelines)} connector(s) checked")
        code = daemon.run()
    finally:
        notifier.close()
        # A cycle still waiting on a CRM keeps its connector and store; exit releases them.
        application.close(in_use=daemon.abandoned)
    raise typer.Exit(code)


def _require_a_connector(settings: Settings, doing: str = "sync", opened: Any = None) -> None:
    """Exit 2 when no connector instance is enabled: an empty or truncated config (a ConfigMap
    key that did not match, a templating step that wrote nothing) would otherwise run a daemon
    that is alive and ready and does nothing, a `sync --once` that exits 0 silently, or a
    `status` or `plan` that shows nothing, as if all were well. ``opened``: the application
    a read-only command built first (so a state store problem is reported before this), closed
    on exit."""
    if settings.connectors():
        return
    if opened is not None:
        opened.close()
    _report_problems(
        f"config error in {settings.source}",
        [
            settings.located(
                ("connectors",),
                f"no connector instance is enabled, so there is nothing to {doing}; configure "
                "one under connectors: (README: Connector instances), or set enabled: true on "
                "one",
            )
        ],
    )
    raise typer.Exit(2)


def _require_a_durable_store(settings: Settings) -> None:
    """Exit 2 when ``state.url`` keeps the state in memory (``sqlite://``): the outbox's
    intents, the cursors, the holds and the audit would end with the process, so a restart
    would pull everything again and could lose writes in flight or the means to undo them."""
    from syncd.store_open import in_memory

    if not in_memory(settings.state.url.get_secret_value()):
        return
    _report_problems(
        f"config error in {settings.source}",
        [
            settings.located(
                ("state", "url"),
                "state.url keeps syncd's state in memory, where the outbox, cursors, holds "
                "and audit end with the process; give a file (sqlite:///var/syncd-state.db) "
                "or a PostgreSQL URL",
            )
        ],
    )
    raise typer.Exit(2)


def _exit_if_still_starting(starting: threading.Event) -> None:
    """Exit 0 when start-up has not stopped within the grace period after a signal.

    Start-up has written nothing a cycle relies on (a check reads; a connector's set-up is
    idempotent), so leaving a CRM request unanswered is safe; waiting past the grace period
    would get the process killed instead.
    """
    from syncd.scheduler import SHUTDOWN_GRACE_SECONDS

    time.sleep(SHUTDOWN_GRACE_SECONDS)
    if starting.is_set():
        logging.getLogger("syncd").warning(
            "start-up still waiting on a CRM %.0fs after the signal; exiting",
            SHUTDOWN_GRACE_SECONDS,
        )
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os._exit(0)


@app.command()
def sync(
    config: ConfigOpt = DEFAULT_CONFIG,
    once: Annotated[bool, typer.Option("--once", help="One cycle, then exit.")] = False,
    approve_large_run: Annotated[
        bool, typer.Option("--approve-large-run", help="Let this run past the change breaker.")
    ] = False,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait", help="If a daemon holds a connector's lease, wait for it instead of refusing."
        ),
    ] = False,
) -> None:
    """One cycle per connector, then a summary (pulled, changed, written, failed per CRM)."""
    if not once:
        err.print("use `syncd sync --once` for one cycle, or `syncd run` for the daemon")
        raise typer.Exit(2)
    settings = _settings(config)
    setup_logging(settings.log)
    _require_a_connector(settings)
    _require_a_durable_store(settings)
    failed = False
    with _leases(settings, "sync --once", wait=wait) as leases:
        # One cycle, then exit: the funnel KPIs are computed once, no per-lead state kept.
        application = _build(settings, keep_funnel_state=False, defer_unreachable=True)
        _show_progress(application, settings)
        try:
            for name, pipeline in application.pipelines.items():
                pipeline.lease = leases[name]
                application.recover_interrupted_runs(name)
                report = pipeline.run_cycle(approve_large_run=approve_large_run)
                _print_cycle(application, report)
                failed |= report.outcome in ("failed", "lease_lost")
        finally:
            application.close()
    raise typer.Exit(1 if failed else 0)


@contextmanager
def _leases(
    settings: Settings, command: str, *, wait: bool, only: str | None = None
) -> Iterator[dict[str, Any]]:
    """Hold every enabled connector's lease (``only``: that connector's) for the block, or
    refuse (exit 2) naming the holder.

    Taken before anything connects to a CRM, so a refusal writes nothing anywhere.
    """
    from syncd.lease import Lease, connector_lease

    store = _open_store_or_exit(settings)
    held: dict[str, Lease] = {}
    try:
        names = sorted(settings.connectors()) if only is None else [only]
        for name in names:  # one order: two waiters cannot deadlock
            lease = connector_lease(store, settings, name, announce=logging.DEBUG)
            if wait and not lease.try_acquire():
                holder = lease.last_holder
                err.print(
                    f"syncd {command}: waiting for the {name} lease held by "
                    f"{holder.describe() if holder else 'another process'}",
                    markup=False,
                    highlight=False,
                )
                lease.wait_acquire()
            if not lease.leader and not lease.try_acquire():
                holder = lease.last_holder
                # A holder that was killed keeps the lease until it runs out: say when.
                ends = (
                    f"; its lease runs out at {holder.expires_at:%H:%M:%S} UTC unless renewed"
                    if holder
                    else ""
                )
                err.print(
                    f"syncd {command}: {name} is being written by another syncd ("
                    f"{holder.describe() if holder else 'holder unknown'}{ends}); nothing was "
                    "written. Stop it, use --wait, or run read-only commands instead",
                    markup=False,
                    highlight=False,
                )
                raise typer.Exit(2)
            lease.start(standby=False)
            held[name] = lease
        yield held
    finally:
        for lease in held.values():
            lease.close()
        store.close()


def _show_progress(application: Any, settings: Settings) -> None:
    from syncd.progress import progress_factory

    factory = progress_factory(json_logs=settings.log.format == "json")
    for pipeline in application.pipelines.values():
        pipeline.progress = factory


def _print_cycle(application: App, report: CycleReport, *, summary: bool = True) -> None:
    if json_mode():
        _log_cycle(application, report, summary=summary)
        return
    colour = {"ok": "green", "breaker": "yellow", "budget": "yellow"}.get(report.outcome, "red")
    if summary:
        out.print(f"[bold {colour}]{report.summary()}[/]", highlight=False)
    from syncd.state import AuditOutcome

    marks: dict[str, str] = {
        AuditOutcome.APPLIED: "✓",
        AuditOutcome.ALREADY_IN_PLACE: "✓",
        AuditOutcome.SUPERSEDED: "–",
        AuditOutcome.WITHDRAWN: "–",
        AuditOutcome.RETRY_REQUESTED: "↻",
    }
    unsent = (AuditOutcome.SUPERSEDED, AuditOutcome.WITHDRAWN)
    # A first sync writes hundreds of thousands of changes: fetch only what is shown.
    rows = application.store.audit_of_run(report.run_id, limit=8)
    total = application.store.audit_count(report.run_id) if len(rows) == 8 else len(rows)
    for row in rows:
        mark = marks.get(row.outcome, "✗")
        if row.outcome == AuditOutcome.RETRY_REQUESTED:
            out.print(
                f"   {mark} {row.lead_id}  [dim]{escape(row.message or '')}[/]", highlight=False
            )
            continue
        what = _change_text(row.field, row.before, row.after)
        why = f" {row.outcome}: {row.message}" if row.outcome in unsent and row.message else ""
        out.print(
            f"   {mark} {row.lead_id}  {what}  [dim](rule {row.rule_id}){why}[/]", highlight=False
        )
    if total > len(rows):
        out.print(
            f"   … and {total - len(rows)} more (syncd audit --run {report.run_id})",
            highlight=False,
        )


def _log_cycle(application: Any, report: Any, *, summary: bool) -> None:
    """The changes of a cycle as records (JSON logs): one per change shown, with its fields."""
    changes = logging.getLogger("syncd.changes")
    context = {"crm": report.crm, "run_id": report.run_id}
    if summary:
        changes.info("%s", report.summary(), extra={**context, "outcome": report.outcome})
    rows = application.store.audit_of_run(report.run_id, limit=8)
    total = application.store.audit_count(report.run_id) if len(rows) == 8 else len(rows)
    for row in rows:
        what = _change_text(row.field, row.before, row.after)
        changes.info(
            "%s %s (rule %s) %s",
            row.lead_id,
            what,
            row.rule_id,
            row.outcome,
            extra={
                **context,
                "lead_id": row.lead_id,
                "field": row.field,
                "before": row.before,
                "after": row.after,
                "rule": row.rule_id,
                "outcome": str(getattr(row.outcome, "value", row.outcome)),
            },
        )
    if total > len(rows):
        changes.info(
            "... and %d more (syncd audit --run %s)",
            total - len(rows),
            report.run_id,
            extra=context,
        )


def _change_text(name: str, before: Any, after: Any) -> str:
    """One audit change as text; a membership with after False is a removal (a revert)."""
    if name.startswith("newsletter:"):
        return f"{'left' if after is False else 'joined'} {name.split(':', 1)[1]}"
    return f"{name}: {before!s} → {after!s}"


@app.command()
def plan(
    config: ConfigOpt = DEFAULT_CONFIG,
    leads: Annotated[bool, typer.Option("--leads", help="One line per lead.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable.")] = False,
    pull: Annotated[
        bool,
        typer.Option(
            "--pull/--no-pull",
            help="Refresh the mirror from the CRMs first "
            "(reads only; needs the connectors' leases).",
        ),
    ] = False,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait",
            help="With --pull: if a daemon holds a connector's lease, wait for it "
            "instead of refusing.",
        ),
    ] = False,
    rules_files: RulesOpt = None,
    at: AtOpt = None,
) -> None:
    """Dry run on the mirror: what the next cycle would change, and what is held or blocked.

    Never writes to a CRM. ``--pull`` writes the mirror, so it takes the connectors' leases: a
    pull stored while a daemon writes would take the daemon's older reads for a person's edits.
    ``--rules DRAFT.yaml`` plans with a draft instead of the config's rule files (the live
    files, and the rules a running daemon applies, are untouched); ``--at`` plans for a time.
    """
    settings = _settings(config)
    setup_logging(settings.log, quiet=True)
    from syncd.lease import LeaseLost
    from syncd.plan import build_plan

    when = _parse_at(at) if at is not None else None
    if not pull:
        application = _build(settings, connect=False)
        _require_a_connector(settings, "plan", opened=application)
        try:
            book = _book_for(application, settings, rules_files, "plan")
            result = build_plan(application, book=book, at=when)
        finally:
            application.close()
    else:
        _refuse_clearing_the_demo(
            settings,
            "plan --pull",
            "`syncd plan` plans on the demo's mirror as its last cycle left it",
        )
        _require_a_connector(settings, "plan")
        with _leases(settings, "plan --pull", wait=wait) as leases:
            application = _build(settings, prepare=False)  # a dry run changes no CRM
            try:
                for name, pipeline in application.pipelines.items():
                    pipeline.lease = leases[name]
                book = _book_for(application, settings, rules_files, "plan")
                result = build_plan(application, pull=True, book=book, at=when)
            except LeaseLost as exc:
                err.print(f"syncd plan --pull: {exc}", markup=False, highlight=False)
                raise typer.Exit(1) from None
            finally:
                application.close()
    if as_json:
        out.print_json(json.dumps(result, default=str))
        return
    _print_plan(result, leads)


def _book_for(
    application: App, settings: Settings, drafts: list[Path] | None, command: str
) -> RuleBook:
    """The draft book when ``--rules`` is given, else the live one; exit 2 if it does not
    load (a read-only command on broken live rules says so and shows why)."""
    from rules import RuleLoadError
    from syncd.app import _book_loader

    if drafts:
        try:
            return _book_loader(settings)(list(drafts))
        except RuleLoadError as exc:
            _report_problems(f"syncd {command}: the draft rules do not load", exc.issues)
            raise typer.Exit(2) from None
    if not application.rules.loaded:
        err.print(
            f"syncd {command}: the rule files do not load, so there is nothing to "
            f"{command}; a running daemon keeps its last good rules. Fix these (then "
            "`syncd rules check`):",
            markup=False,
            highlight=False,
        )
        err.print(application.rules.error, markup=False, highlight=False)
        raise typer.Exit(2)
    return application.rules.book


#: The times a command's --at/--since/--until may name. Rules measure back from --at
#: (durations up to 1000 years) and a report's window 90 days before its end: from year 1 (or
#: year 9999 in UTC-12) that left the calendar ("unexpected OverflowError ... a bug").
EARLIEST_TIME = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_TIME = datetime(9000, 1, 1, tzinfo=UTC)


def _time_in_range(when: datetime) -> str | None:
    """Why ``when`` (aware) is no time a command can compute at, or None."""
    try:
        fits = EARLIEST_TIME <= when < LATEST_TIME
    except OverflowError:  # in UTC it is past year 9999
        fits = False
    return None if fits else "it is not between 1970 and 9000"


def _parse_at(text: str) -> datetime:
    """``--at``: an ISO time (UTC when no offset is given) or ``+DURATION`` from now."""
    from rules.durations import DurationError, parse_duration

    try:
        if text.startswith("+"):
            return datetime.now(UTC) + parse_duration(text[1:])
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
        problem = _time_in_range(when)
        if problem:
            raise ValueError(problem)
    except (ValueError, DurationError) as exc:
        # Python's "Invalid isoformat string: '...'" repeats the value in its own words.
        why = "not an ISO time" if str(exc).startswith("Invalid isoformat") else str(exc)
        err.print(
            f"--at {text!r}: {why}; give an ISO time (2026-12-07T09:00Z) or a time from "
            "now (+3d, +12h)",
            markup=False,
            highlight=False,
        )
        raise typer.Exit(2) from None
    return when


def _print_field_notes(part: CrmPlan) -> None:
    """The plan's notes on fields the next cycle treats apart: remapped, held after a remap,
    newly set by the rules."""
    if part["remapped"]:
        out.print(
            "  fields mapped otherwise than the mirror was read under ("
            + ", ".join(part["remapped"])
            + "): the next cycle reads every lead again before it plans; "
            "`syncd plan --pull` shows what it will do",
            markup=False,
            highlight=False,
        )
    if part["newly_set"]:
        out.print(
            "  the rules newly set "
            + ", ".join(part["newly_set"])
            + ": the next cycle first reads the CRM's history of "
            + ("it" if len(part["newly_set"]) == 1 else "them")
            + " for the leads changed within hold_rep_edits_for, and leaves alone those a "
            "person set it on lately; changes of it listed here may be held",
            markup=False,
            highlight=False,
        )
    for field, until in sorted(part["remap_held"].items()):
        out.print(
            f"  {field} is written by no rule until {until:%Y-%m-%d %H:%M} UTC: remapped "
            "lately, it may hold a person's edit syncd could not see (hold_rep_edits_for)",
            markup=False,
            highlight=False,
        )


def _print_plan(result: Plan, leads: bool) -> None:
    out.print(f"[bold]Plan[/] at {result['now']} with rules {result['ruleset_version']}")
    for crm, part in result["crms"].items():
        out.print(
            f"\n[bold]{crm}[/]: {part['live_leads']} live leads, "
            f"{part['changing_leads']} would change"
            + (
                f" — [yellow]breaker would stop this run[/] ({part['breaker']})"
                if part["breaker"]
                else ""
            ),
            highlight=False,
        )
        table = Table("rule", "leads", "from → to", "fields", "newsletters")
        for rule_id, info in sorted(part["rules"].items()):
            moves = ", ".join(f"{k} ×{v}" for k, v in sorted(info["moves"].items()))
            fields = ", ".join(f"{k} ×{v}" for k, v in sorted(info["fields"].items()))
            nl = ", ".join(f"{k} ×{v}" for k, v in sorted(info["newsletters"].items()))
            table.add_row(
                *(
                    escape(c)
                    for c in (rule_id, str(info["leads"]), moves or "-", fields or "-", nl or "-")
                )
            )
        out.print(table)
        if part["conflicts"]:
            out.print(
                f"  {len(part['conflicts'])} conflicts (all_match rules disagreeing; the "
                "first rule's value is kept):",
                highlight=False,
            )
            for conflict in part["conflicts"][:20]:
                out.print(
                    f"    {conflict['lead_id']}: {_conflict_text(conflict)}",
                    markup=False,
                    highlight=False,
                )
        _print_field_notes(part)
        for kind in ("held", "loop_held", "blocked", "failed"):
            if part[kind]:
                out.print(f"  {len(part[kind])} {kind}:")
                for item in part[kind][:20]:
                    out.print(f"    {item['lead_id']}: {item['reason']}", highlight=False)
        if leads:
            for planned in part["leads"]:
                out.print(
                    f"  {planned['lead_id']}: {planned['before']} → {planned['after']} "
                    f"(rule {planned['rule_id']})",
                    markup=False,
                    highlight=False,
                )


def _conflict_text(item: ConflictView) -> str:
    return (
        f"{item['field']}: kept {item['kept_value']!r} (rule {item['kept_rule']}), not "
        f"{item['rejected_value']!r} (rule {item['rejected_rule']})"
    )


@app.command()
def explain(
    lead: Annotated[
        str, typer.Argument(help="Lead id (a Salesforce Id: 15 or 18 characters) or email.")
    ],
    config: ConfigOpt = DEFAULT_CONFIG,
    rules_files: RulesOpt = None,
) -> None:
    """Every rule in order for one lead: matched or not, and which condition decided it."""
    settings = _settings(config)
    setup_logging(settings.log, quiet=True)
    from syncd.plan import explain_lead

    application = _build(settings, connect=False)
    _require_a_connector(settings, "explain", opened=application)
    try:
        book = _book_for(application, settings, rules_files, "explain")
        found = explain_lead(application, lead, book=book)
    finally:
        application.close()
    if not found:
        err.print(
            f"no lead '{lead}' in the mirror (run a cycle first, or check the id)",
            markup=False,
            highlight=False,
        )
        raise typer.Exit(1)
    # Lead values and rule text are printed as they are: "[weak]" is data, not markup.
    for item in found:
        out.print(
            f"[bold]{escape(item['crm'])} lead {escape(item['lead_id'])}[/] status "
            f"{escape(_shown(item['status']))}",
            highlight=False,
        )
        for name, reason in sorted(item["reasons"].items()):
            out.print(
                f"  {escape(name)} = {escape(_shown(item['enrichment'].get(name)))}  "
                f"[dim]{escape(str(reason))}[/]",
                highlight=False,
            )
        for trace in item["traces"]:
            mark = "[green]✓ matched[/]" if trace["matched"] else "[dim]✗ no match[/]"
            out.print(
                f"  {escape(trace['ruleset'])}/{escape(trace['rule_id'])} (line "
                f"{trace['line']}): {mark} — {escape(trace['decided_by'])}",
                highlight=False,
            )
        for conflict in item["conflicts"]:
            out.print(f"  conflict: {_conflict_text(conflict)}", markup=False, highlight=False)
        out.print(f"  verdict: {item['verdict']}", markup=False, highlight=False)


def _shown(value: Any) -> str:
    """A lead value for people: dates readably, text quoted, nothing dropped."""
    if isinstance(value, datetime):
        return (
            f"{value:%Y-%m-%d %H:%M} UTC"
            if value.utcoffset() in (None, timedelta(0))
            else value.isoformat(" ", "minutes")
        )
    return repr(value)


@app.command()
def status(config: ConfigOpt = DEFAULT_CONFIG) -> None:
    """Last runs, pending writes, failed writes with the CRM's message, held leads, rule errors."""
    settings = _settings(config)
    setup_logging(settings.log, quiet=True)
    from syncd.plan import status_report

    application = _build(settings, connect=False)
    _require_a_connector(settings, "show", opened=application)
    try:
        report = status_report(application)
    finally:
        application.close()
    if report["rules_error"]:
        out.print(
            "[bold red]rule files on disk do not load; the daemon keeps the last good rules:[/]"
        )
        out.print(report["rules_error"], markup=False, highlight=False)
    else:
        out.print(f"rules: version {report['rules_version']}", highlight=False)
    for crm, part in report["crms"].items():
        out.print(
            f"[bold]{crm}[/]: {part['pending']} pending writes, {len(part['failed'])} "
            f"failed, {len(part['held'])} held"
            + (f", {len(part['loop_held'])} held by the loop guard" if part["loop_held"] else "")
            + (f", {len(part['quarantined'])} with unusable values" if part["quarantined"] else ""),
            highlight=False,
        )
        if part["pending_by"]:
            out.print(
                "  pending: "
                + ", ".join(
                    f"{p['change']} ×{p['count']}"
                    + (f" (retrying after {p['retrying']})" if p["retrying"] else "")
                    for p in part["pending_by"]
                ),
                highlight=False,
            )
        for item in part["unsent"]:
            out.print(
                f"  [yellow]{item['outcome']}[/] ×{item['count']} in the runs below: "
                f"{item['reason']}",
                highlight=False,
            )
        latest = part["runs"][0] if part["runs"] else None
        if latest is not None and latest["outcome"] == "budget":
            out.print(f"  [yellow]paused[/] (API budget): {latest['message']}", highlight=False)
        out.print(
            f"  written by the syncd on {part['writer']}"
            if part["writer"]
            else "  no syncd holds its lease now",
            highlight=False,
        )
        for run_row in part["runs"]:
            out.print(
                f"  run {run_row['run_id']} {run_row['started_at']:%Y-%m-%d %H:%M:%S} "
                f"{run_row['outcome']}: pulled {run_row['pulled']}, written "
                f"{run_row['written']}, failed {run_row['failed']}"
                + (f" — {run_row['message']}" if run_row["message"] else ""),
                highlight=False,
            )
        _print_failed(crm, part)
        for held in part["held"]:
            out.print(f"  [yellow]held[/] {held['lead_id']}: {held['reason']}", highlight=False)
        for looped in part["loop_held"]:
            out.print(
                f"  [yellow]held by the loop guard[/] {looped['lead_id']}: "
                f"{escape(looped['reason'])}",
                highlight=False,
            )
        for bad in part["quarantined"]:
            values = "; ".join(
                f"{p['field']} = {p['excerpt']!r} ({p['reason']})" for p in bad["problems"]
            )
            # CRM text is escaped: a value like "[red]" must print as itself.
            out.print(
                f"  [yellow]quarantined[/] {bad['lead_id']}: {escape(values)} — stored "
                "empty; fix the value in the CRM",
                highlight=False,
            )


def _print_failed(crm: str, part: Any) -> None:
    """``status``: a connector's refused writes, its retry requests not applied yet, and how
    to retry."""
    for failed in part["failed"]:
        out.print(
            f"  [red]failed[/] {failed['lead_id']}: {failed['error_code']}: "
            f"{failed['error_message']}",
            highlight=False,
        )
    for waiting in part["retries_waiting"]:
        out.print(
            f"  [yellow]retry request {waiting['request_id']}[/] by "
            f"{escape(waiting['requested_by'])} at "
            f"{waiting['requested_at']:%Y-%m-%d %H:%M:%S} UTC: not applied yet (the "
            "connector's leader applies it at its next full cycle)",
            highlight=False,
        )
    if part["failed"]:
        out.print(
            f"  once their cause is fixed: syncd retry --crm {crm} (a dry run; --yes "
            "plans them again)",
            highlight=False,
        )


@app.command()
def audit(
    lead: Annotated[
        str | None, typer.Argument(help="Lead id (a Salesforce Id: 15 or 18 characters) or email.")
    ] = None,
    run_id: Annotated[str | None, typer.Option("--run", help="A run id.")] = None,
    config: ConfigOpt = DEFAULT_CONFIG,
) -> None:
    """Change history with rule id and rule-set version, for a lead or a run."""
    if not lead and not run_id:
        err.print("name a lead id or --run RUN")
        raise typer.Exit(2)
    settings = _settings(config)
    setup_logging(settings.log, quiet=True)
    application = _build(settings, connect=False)
    try:
        if lead:
            # An email (or an id) may name leads in several CRMs: show each one's history.
            from syncd.lead_refs import find_leads

            named = find_leads(application.store, settings.connectors(), lead)
            found = [(row.lead_id, row.crm) for row in named]
            rows = sorted(
                (
                    r
                    for lead_id, crm in (dict.fromkeys(found) or [(lead, None)])
                    for r in application.store.audit_of_lead(lead_id, crm)
                ),
                key=lambda r: (r.at, r.id),
            )
            if run_id:  # both: the lead's changes in that run
                rows = [r for r in rows if r.run_id == run_id]
        else:
            rows = application.store.audit_of_run(run_id or "")
    finally:
        application.close()
    if not rows:
        asked = " in ".join(
            f"{what} {value}" for what, value in (("lead", lead), ("run", run_id)) if value
        )
        err.print(f"no audit rows for {asked}", markup=False, highlight=False)
        raise typer.Exit(1)
    for r in rows:
        if r.outcome == "retry_requested":  # not a change: why the lead was planned again
            out.print(
                f"{r.at:%Y-%m-%d %H:%M:%S}  {r.crm}  {r.lead_id}  run {r.run_id}  "
                f"{r.outcome}: {r.message}",
                highlight=False,
                markup=False,
            )
            continue
        what = _change_text(r.field, r.before, r.after)
        failure = (
            f" {r.error_code}: {r.message}"
            if r.error_code
            else f": {r.message}"
            if r.message
            else ""
        )  # why superseded or withdrawn
        out.print(
            f"{r.at:%Y-%m-%d %H:%M:%S}  {r.crm}  {r.lead_id}  {what}  rule {r.rule_id} "
            f"(rules {r.ruleset_version})  run {r.run_id}  {r.outcome}{failure}",
            highlight=False,
            markup=False,
        )


@app.command()
def revert(
    run_id: Annotated[str, typer.Argument(metavar="RUN", help="The run to undo.")],
    rule: Annotated[
        str | None, typer.Option("--rule", help="Only the changes of this rule.")
    ] = None,
    lead: Annotated[
        str | None, typer.Option("--lead", help="Only this lead's changes (its id).")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since", help="Only changes applied since: an ISO time or a duration ago (2h, 3d)."
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the plan; write nothing.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Skip the confirmation.")] = False,
    approve_large_run: Annotated[
        bool, typer.Option("--approve-large-run", help="Let the revert past the change breaker.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="The plan as JSON.")] = False,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait",
            help="If a daemon holds the connector's lease, wait for it instead of refusing.",
        ),
    ] = False,
    config: ConfigOpt = DEFAULT_CONFIG,
) -> None:
    """Undo what syncd wrote in RUN: a plan first, then a run of its own (audited, revertible).

    Values changed since by anyone else are skipped and listed, never overwritten. The revert
    pulls into the mirror and writes to the CRM, so it takes the connector's lease, as
    ``sync --once`` does: while a daemon holds it, it refuses (or waits, with ``--wait``).
    """
    from syncd.lead_refs import lead_id_in
    from syncd.revert import RevertFilter

    if as_json and not (dry_run or yes):
        # stdout holds one JSON document; a script cannot answer the confirmation
        err.print(
            "syncd revert: --json needs --dry-run (the plan) or --yes (the plan and the run, "
            "in one document); nothing was read or written",
            markup=False,
            highlight=False,
        )
        raise typer.Exit(2)
    settings = _settings(config)
    setup_logging(settings.log, quiet=True)
    crm = _run_connector(settings, run_id)
    _refuse_on_the_demo(settings, run_id)
    lead_id = None if lead is None else lead_id_in(settings.connectors()[crm], lead)
    only = RevertFilter(rule_id=rule, lead_id=lead_id, since=_since(since))
    with _leases(settings, "revert", wait=wait, only=crm) as leases:
        _revert(settings, run_id, only, leases[crm], dry_run, yes, approve_large_run, as_json)


def _run_connector(settings: Settings, run_id: str) -> str:
    """The connector run ``run_id`` wrote to, or exit 2 saying why it cannot be reverted."""
    from syncd.revert import RevertError, find_run

    store = _open_store_or_exit(settings, writable=False)
    try:
        with _store_errors(settings):
            crm = str(find_run(store, run_id).crm)
    except RevertError as exc:
        err.print(f"syncd revert: {exc}", markup=False, highlight=False)
        raise typer.Exit(2) from None
    finally:
        store.close()
    if crm not in settings.connectors():
        err.print(
            f"syncd revert: run {run_id} wrote to connector {crm!r}, which is "
            "not configured (or not enabled) in this config",
            markup=False,
            highlight=False,
        )
        raise typer.Exit(2)
    return crm


def _refuse_on_the_demo(settings: Settings, run_id: str) -> None:
    """Exit 2 on the embedded demo: its emulators are seeded afresh at every start, so what
    ``run_id`` wrote is in no CRM any more, and the start would clear the demo's state
    (``embedded.fresh_state``): the audit of the run the admin meant to revert with it."""
    if not settings.embedded.enabled:
        return
    _error(
        f"syncd revert: run {run_id} wrote to the embedded demo's emulators, which are seeded "
        f"afresh at every start (embedded.enabled in {settings.source}), so what it wrote is in "
        "no CRM any more and cannot be reverted; nothing was written or cleared. "
        f"`syncd audit --run {run_id}` shows what it changed; revert works on real CRMs"
    )
    raise typer.Exit(2)


def _refuse_clearing_the_demo(settings: Settings, command: str, instead: str) -> None:
    """Exit 2 when ``command`` would start the embedded demo afresh: with
    ``embedded.fresh_state`` the start clears the demo's state, which a dry run or a command
    that only adds to the ledger must not do (``syncd.demo_state``)."""
    if not (settings.embedded.enabled and settings.embedded.fresh_state):
        return
    _error(
        f"syncd {command}: this would start new demo emulators and so clear the demo's "
        f"mirror, audit, runs and status history (embedded.fresh_state in {settings.source}); "
        f"nothing was read or cleared. {instead}"
    )
    raise typer.Exit(2)


def _filters_named(only: Any) -> str:
    """The revert's filters that name something (a lead, a rule) as the command line gave
    them, '' for none. (A ``--since`` window may rightly hold no change.)"""
    named = [("--lead", only.lead_id), ("--rule", only.rule_id)]
    return " ".join(f"{flag} {value}" for flag, value in named if value is not None)


def _revert(
    settings: Settings,
    run_id: str,
    only: Any,
    lease: Any,
    dry_run: bool,
    yes: bool,
    approve_large_run: bool,
    as_json: bool,
) -> None:
    """``syncd revert``'s plan and run, under the connector's ``lease``."""
    from syncd.lease import LeaseLost
    from syncd.pipeline import CycleReport
    from syncd.revert import RevertError, execute_revert, find_run, plan_revert

    application = _build(settings, connect=True, prepare=False)
    try:
        try:
            target = find_run(application.store, run_id)
        except RevertError as exc:  # pruned by retention since `_run_connector` saw it
            _error(f"syncd revert: {exc}; nothing was written")
            raise typer.Exit(2) from None
        pipeline = application.pipelines[target.crm]  # _run_connector: an enabled connector
        pipeline.lease = lease
        book = application.rules.book
        now = application.clock()
        try:
            # The mirror is brought up to date first, so edits made in the CRM since are seen.
            pipeline.pull_and_read_history(CycleReport(target.crm, "plan"), until=now)
        except LeaseLost as exc:
            err.print(f"syncd revert: {exc}; nothing was written", markup=False, highlight=False)
            raise typer.Exit(1) from None
        plan = plan_revert(application.store, pipeline, run_id, book, now, only)
        if not as_json:
            _print_revert_plan(plan, settings.breaker)
        named = _filters_named(only)
        if named and not plan.restores and not plan.skipped:
            # A typo in --lead or --rule must not pass as "nothing to do" (as in `retry`).
            err.print(
                f"syncd revert: no applied change of run {run_id} matches {named}; check the "
                "value (`syncd audit --run` lists the run's changes); nothing was written",
                markup=False,
                highlight=False,
            )
            if as_json:
                _print_json(plan.as_dict())
            raise typer.Exit(2)
        if dry_run or not plan.restores:
            if as_json:
                _print_json(plan.as_dict())
            else:
                out.print(
                    "dry run: nothing was written"
                    if dry_run
                    else "nothing to revert: every change was skipped"
                    if plan.skipped
                    else f"nothing to revert: run {run_id} wrote no change"
                    if not target.written and not _filters_named(only) and only.since is None
                    else f"no applied changes of run {run_id} are in the audit (the "
                    "revert window is the audit's retention)"
                )
            return
        if not yes and not _confirmed(f"Write these {len(plan.restores)} changes to {plan.crm}?"):
            out.print("nothing was written")
            return
        result = execute_revert(pipeline, plan, book, approve_large_run=approve_large_run)
        if not as_json:
            _print_cycle(application, result.report, summary=False)
    finally:
        application.close()
    ok = result.report.outcome == "ok" and not result.mismatches
    if as_json:
        _print_json({**plan.as_dict(), "revert": _revert_result(result)})
        raise typer.Exit(0 if ok else 1)
    colour = "green" if ok else "red"
    out.print(
        f"[bold {colour}]run {result.report.run_id} {result.report.outcome}: "
        f"{escape(result.report.message or '')}[/]",
        highlight=False,
    )
    for lead_id, name, expected, found in result.mismatches:
        out.print(
            f"  [red]differs[/] {lead_id} {name}: wrote {expected!r}, the CRM shows {found!r}",
            highlight=False,
        )
    out.print(f"undo this revert with: syncd revert {result.report.run_id}", highlight=False)
    raise typer.Exit(0 if ok else 1)


def _confirmed(question: str) -> bool:
    """The answer to ``question``; no answer (Ctrl-C, or no input: a script, a cron job) is
    one line saying what to do, exit 1, instead of click's bare "Aborted."."""
    try:
        return typer.confirm(question, default=False)
    except typer.Abort:
        if not json_mode():
            err.print()  # the prompt's line was left open
        _error(
            "syncd revert: no answer to the question (Ctrl-C or no input); nothing was "
            "written. Add --yes to write without asking, or --dry-run for the plan alone"
        )
        raise typer.Exit(1) from None


def _print_json(document: dict[str, Any]) -> None:
    out.print_json(json.dumps(document, default=str))


def _revert_result(result: Any) -> dict[str, Any]:
    """The revert run for ``--json``: what the text output's last lines say."""
    return {
        "run_id": result.report.run_id,
        "outcome": result.report.outcome,
        "message": result.report.message,
        "mismatches": [
            {"lead_id": lead_id, "field": name, "wrote": expected, "crm_shows": found}
            for lead_id, name, expected, found in result.mismatches
        ],
    }


def _since(text: str | None) -> datetime | None:
    """``--since``: an ISO 8601 time (UTC unless it says otherwise) or a duration ago."""
    if text is None:
        return None
    from syncd.settings import parse_duration

    try:
        when = datetime.now(UTC) - parse_duration(text)
    except (ValueError, OverflowError):
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            when = None
    if when is not None:
        when = when.replace(tzinfo=UTC) if when.tzinfo is None else when
    # Out of range, the time failed the audit query after the pull ("unexpected ... a bug").
    problem = "not an ISO time or a duration" if when is None else _time_in_range(when)
    if problem:
        err.print(
            f"syncd revert: --since {text!r}: {problem}; give an ISO time (2026-11-30T09:00) "
            "or a duration ago (2h, 3d)",
            markup=False,
            highlight=False,
        )
        raise typer.Exit(2) from None
    return when


def _print_revert_plan(plan: Any, breaker: Any) -> None:
    from syncd.revert import CANNOT_UNDO

    out.print(
        f"[bold]Revert of run {plan.run_id}[/] on {plan.crm}: {len(plan.restores)} "
        f"changes to write, {len(plan.skipped)} skipped",
        highlight=False,
    )
    table = Table("lead", "field", "current", "restored")
    for r in plan.restores:
        table.add_row(r.lead_id, r.label, escape(_value(r.current)), escape(_value(r.restored)))
    if plan.restores:
        out.print(table)
    removals = Counter(
        r.field for r in plan.restores if r.kind == "membership" and r.restored is False
    )
    for name, n in sorted(removals.items()):
        out.print(f"newsletter removals: {n} leads out of {name}", highlight=False)
    if plan.skipped:
        out.print(f"[yellow]skipped ({len(plan.skipped)}):[/]")
        for s in plan.skipped:
            out.print(f"  {s.lead_id} {s.field}: {escape(s.reason)}", highlight=False)
    share = plan.changing_leads / plan.live_leads if plan.live_leads else 0.0
    if plan.changing_leads >= breaker.min_changes and share > breaker.max_change_share:
        out.print(
            f"[yellow]breaker:[/] {plan.changing_leads} of {plan.live_leads} leads "
            f"({share:.0%}) is above breaker.max_change_share; add --approve-large-run "
            "to write it",
            highlight=False,
        )
    for rule_id, n in sorted(plan.rules_again.items()):
        out.print(
            f"[yellow]warning:[/] the current rules would change {n} of these leads "
            f"again on the next cycle (rule {rule_id}); fix or disable the rule first",
            highlight=False,
        )
    out.print(f"[dim]{CANNOT_UNDO}[/]", highlight=False)


def _value(value: Any) -> str:
    if value is True:
        return "member"
    if value is False:
        return "not a member"
    return "(empty)" if value is None else str(value)


@app.command()
def retry(
    crm: Annotated[str, typer.Option("--crm", help="The connector (instance name).")],
    code: Annotated[
        list[str] | None,
        typer.Option("--code", help="Only refusals with this error code (repeat for several)."),
    ] = None,
    lead: Annotated[
        list[str] | None, typer.Option("--lead", help="Only this lead (repeat for several).")
    ] = None,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Queue the request (without: a dry run).")
    ] = False,
    config: ConfigOpt = DEFAULT_CONFIG,
) -> None:
    """Plan writes the CRM refused for good again, once you fixed their cause.

    Without --yes it lists the leads it would bring back and writes nothing. With --yes it
    queues a request; the connector's leader (a running daemon, else the next
    ``sync --once``) applies it: each lead is planned again from the current rules, a
    person's edit still holds it, and the audit says who asked.
    """
    from syncd import retry_requests

    settings = _settings(config)
    setup_logging(settings.log, quiet=True)
    connectors = settings.connectors()
    if crm not in connectors:
        known = ", ".join(sorted(connectors)) or "none"
        _error(
            f"syncd retry: --crm {crm!r} is not a connector configured (and enabled) in "
            f"{config}; configured: {known}"
        )
        raise typer.Exit(2)
    # Not probed for writes: a dry run, or a request that matches nothing, writes nothing (a
    # store refusing the request's insert is reported as any store failure).
    store = _open_store_or_exit(settings, writable=False)
    try:
        with _store_errors(settings):
            lead_ids = _retry_leads(store, connectors, crm, lead) if lead else None
            refused = retry_requests.waiting(store, crm, None, lead_ids)
            # A code typed in another case (the CRMs' codes are upper-case) is the same code.
            spelled = {r.error_code.casefold(): r.error_code for r in refused}
            code = [spelled.get(c.strip().casefold(), c) for c in code] if code else None
            found = [r for r in refused if not code or r.error_code in code]
            if not found:
                out.print(f"{crm}: {_retry_scope(code, lead)}: nothing to retry", highlight=False)
                if refused:  # the --code matched none of them: say which codes there are
                    waiting = Counter(r.error_code for r in refused)
                    out.print(
                        "  refused writes wait with "
                        + ", ".join(f"--code {c} ({n})" for c, n in sorted(waiting.items())),
                        highlight=False,
                    )
                return
            _print_retry_plan(crm, found)
            if not yes:
                out.print("dry run: nothing was queued; add --yes to queue it", highlight=False)
                return
            request_id = retry_requests.queue(
                store,
                crm,
                codes=code,
                lead_ids=lead_ids,
                by=retry_requests.requester(),
                now=datetime.now(UTC),
            )
    finally:
        store.close()
    cycle = connectors[crm].interval
    out.print(
        f"queued retry request {request_id} for {crm}: a running daemon applies it within "
        f"lease.renew_every ({_duration(settings.lease.renewal)}) plus {crm}'s interval "
        f"({_duration(cycle)}); without one, the next `syncd sync --once` does. "
        "`syncd audit LEAD` shows it on each lead",
        highlight=False,
    )


def _retry_leads(
    store: Any, connectors: dict[str, ConnectorSettings], crm: str, refs: list[str]
) -> list[str]:
    """``--lead`` values (ids or emails, as ``audit`` takes them) as ``crm``'s lead ids; a value
    naming no lead of ``crm`` ends the command (exit 2): a typo must not pass as "nothing"."""
    from syncd.lead_refs import find_leads

    ids: list[str] = []
    for ref in refs:
        found = [r.lead_id for r in find_leads(store, connectors, ref) if r.crm == crm]
        if not found:
            _error(
                f"syncd retry: --lead {ref!r}: no {crm} lead in the mirror has this id or "
                "email; nothing was queued (`syncd status` lists the failed leads)"
            )
            raise typer.Exit(2)
        ids.extend(i for i in found if i not in ids)
    return ids


def _retry_scope(codes: list[str] | None, leads: list[str] | None) -> str:
    """What a retry looked for, when nothing matched."""
    scope = "no refused write waits for its lead to change"
    if codes:
        scope += " with error code " + " or ".join(codes)
    if leads:
        scope += " among leads " + ", ".join(leads)
    return scope


#: Leads a retry's dry run lists one by one; the rest are counted.
RETRY_LISTED = 20


def _print_retry_plan(crm: str, found: list[Any]) -> None:
    by_code: dict[str, list[Any]] = {}
    for item in found:
        by_code.setdefault(item.error_code, []).append(item)
    out.print(
        f"{crm}: {len(found)} {'lead' if len(found) == 1 else 'leads'} whose refused writes "
        "would be planned again:",
        highlight=False,
    )
    for error_code, items in sorted(by_code.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        messages = Counter(i.error_message or "" for i in items)
        message, _ = messages.most_common(1)[0]
        others = len(messages) - 1
        out.print(
            f"  {error_code} ×{len(items)}: {message}"
            + (f" (and {others} other messages)" if others else ""),
            highlight=False,
            markup=False,
        )
    for item in found[:RETRY_LISTED]:
        out.print(
            f"  {item.lead_id}  {item.error_code}  refused {item.error_at:%Y-%m-%d %H:%M:%S} UTC",
            highlight=False,
            markup=False,
        )
    if len(found) > RETRY_LISTED:
        out.print(f"  … and {len(found) - RETRY_LISTED} more", highlight=False, markup=False)


def _duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0:
        return f"{seconds // 60}m"
    return f"{seconds}s"


@rules_app.command("check")
def rules_check(
    files: Annotated[list[Path], typer.Argument(help="Rule files.")],
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="Check fields, set_field and newsletter names "
            "against this config (default: SYNCD_CONFIG, else "
            "config.example.yaml if present).",
        ),
    ] = None,
) -> None:
    """Validate rule files as the daemon would load them together; print every error with
    file:line:column, the warnings, and the rule-set version. Exit 0 or 2."""
    from rules import RuleLoadError, load_rulebook

    kwargs: dict[str, Any] = {}
    source = _check_config(config)
    settings = _settings(source) if source is not None else None
    if settings is not None:
        from syncd.app import rule_allowlists

        # The daemon's own allowlists, and its calendar: business time decides whether two
        # rules' conditions overlap (a loop the daemon refuses) on the config's working hours.
        kwargs = {**rule_allowlists(settings), "calendar": settings.calendar.calendar()}
        if config is None:
            err.print(
                f"checking against {source} (custom fields, settable fields, newsletter "
                "names); -c chooses another config",
                markup=False,
                highlight=False,
            )
    else:
        err.print(
            "no config (-c, SYNCD_CONFIG or config.example.yaml): custom fields, "
            "settable fields and newsletter names are not checked",
            markup=False,
            highlight=False,
        )
    try:
        book = load_rulebook(list(files), **kwargs)
    except RuleLoadError as exc:
        for issue in exc.issues:
            err.print(str(issue), markup=False, highlight=False)
        raise typer.Exit(2) from None
    from syncd.rules_lint import empty_when_warnings

    warnings = [str(w) for w in book.warnings]
    warnings += [w for path in files for w in empty_when_warnings(path)]
    if settings is not None:
        from syncd.app import unknown_mapped_statuses

        warnings += unknown_mapped_statuses(settings, book)
    for warning in warnings:
        err.print(warning, markup=False, highlight=False)
    for ruleset in book.sets:
        out.print(f"{ruleset.path}: ok ({len(ruleset.rules)} rules)", markup=False, highlight=False)
    # The book's version: the hash plan, audit, the daemon's log and syncd_rules_info show.
    out.print(f"rules version {book.version}", highlight=False)


def _check_config(given: Path | None) -> Path | None:
    """The config ``rules check`` checks names against: -c, SYNCD_CONFIG, the example."""
    if given is not None:
        return given
    env = os.environ.get("SYNCD_CONFIG")
    if env:
        return Path(env)
    return DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None


@rules_app.command("diff")
def rules_diff(
    old: Annotated[Path, typer.Argument(help="The rule file(s) in use now.")],
    new: Annotated[Path, typer.Argument(help="The edited rule file.")],
    config: ConfigOpt = DEFAULT_CONFIG,
    leads: Annotated[bool, typer.Option("--leads", help="One line per lead.")] = False,
    at: AtOpt = None,
) -> None:
    """Which mirrored leads two rule versions decide differently: counts per from → to and per
    rule. Reads only the mirror; nothing is written."""
    from rules import RuleLoadError
    from syncd.app import _book_loader
    from syncd.rules_diff import diff_rule_books

    settings = _settings(config)
    setup_logging(settings.log, quiet=True)
    # OLD one of the config's rule files: the book as the daemon evaluates it (every file, in
    # order), against the same book with NEW in OLD's place. Alone, OLD's draft "decided" leads
    # another file already decides the same way: changes the daemon would never make.
    live = [settings.path(p) for p in settings.rules.files]
    at_place = [i for i, p in enumerate(live) if p.resolve() == old.resolve()]
    versions = (
        [live, [new if i in at_place else p for i, p in enumerate(live)]]
        if at_place
        else [[old], [new]]
    )
    books = []
    for path, files in zip((old, new), versions, strict=True):
        try:
            books.append(_book_loader(settings)(files))
        except RuleLoadError as exc:
            _report_problems(f"syncd rules diff: {path} does not load", exc.issues)
            raise typer.Exit(2) from None
    application = _build(settings, connect=False)
    try:
        result = diff_rule_books(
            application,
            books[0],
            books[1],
            _parse_at(at) if at is not None else application.clock(),
        )
    finally:
        application.close()
    out.print(
        f"rules {result.old_version} → {result.new_version} at "
        f"{result.now:%Y-%m-%d %H:%M} UTC: {result.changed} of "
        f"{sum(result.compared.values())} leads change decision",
        highlight=False,
    )
    for (crm, before, after), n in sorted(result.moves.items()):
        out.print(f"  {crm}: {before} → {after}  ×{n}", markup=False, highlight=False)
    for (crm, rule), n in sorted(result.rules_gained.items()):
        out.print(f"  {crm}: rule {rule} now decides {n} more", markup=False, highlight=False)
    for (crm, rule), n in sorted(result.rules_lost.items()):
        out.print(f"  {crm}: rule {rule} no longer decides {n}", markup=False, highlight=False)
    if leads:
        for d in result.leads:
            out.print(
                f"  {d.crm} {d.lead_id}: {d.before} (rule {d.old_rule}) → {d.after} "
                f"(rule {d.new_rule})",
                markup=False,
                highlight=False,
            )


def _drafts_stand_in(book: RuleBook, live: list[Path]) -> RuleBook:
    """The draft book, each draft set placed at the live file declaring the same set ``name``
    (the fixtures name the live file they are for)."""
    from dataclasses import replace

    from rules.engine import RuleBook as Book
    from syncd.rules_lint import set_name

    by_name = {set_name(path): path for path in live}
    sets = []
    for rs in book.sets:
        target = by_name.get(rs.name)
        if target is not None and target.resolve() != rs.path.resolve():
            err.print(
                f"{rs.path} stands in for {target} (rule set '{rs.name}')",
                markup=False,
                highlight=False,
            )
            sets.append(replace(rs, path=target))
        else:
            sets.append(rs)
    return Book(sets)


@rules_app.command("test")
def rules_test(
    directory: Annotated[
        Path | None,
        typer.Argument(help="Fixture directory (default: rules.fixtures from the config)."),
    ] = None,
    config: ConfigOpt = DEFAULT_CONFIG,
    rules_files: RulesOpt = None,
) -> None:
    """Run rule fixtures (a lead, a time, the expected outcome) and report like pytest."""
    from rules import RuleLoadError, run_fixtures

    settings = _settings(config)
    from syncd.app import _book_loader
    from syncd.enrichment import Enricher, EnrichmentSettings

    directory = directory or (
        settings.path(settings.rules.fixtures) if settings.rules.fixtures else None
    )
    if directory is None or not directory.is_dir():
        err.print(f"no fixture directory {directory}")
        raise typer.Exit(2)
    # `.yml` too: a fixture saved under that name was skipped, and a run of no fixtures
    # passed ("0 passed, 0 failed", exit 0), a check that checked nothing.
    fixture_files = sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])
    if not fixture_files:
        err.print(
            f"no fixture files (*.yaml, *.yml) in {directory}: nothing to test",
            markup=False,
            highlight=False,
        )
        raise typer.Exit(2)
    enricher = Enricher(EnrichmentSettings.model_validate(settings.enrichment))

    def prepare(lead: dict[str, Any]) -> dict[str, Any]:
        derived = enricher.values(lead)
        return {**{k: v for k, v in derived.items() if v is not None}, **lead}

    try:
        live = [settings.path(p) for p in settings.rules.files]
        book = _book_loader(settings)(list(rules_files) if rules_files else live)
        if rules_files:
            book = _drafts_stand_in(book, live)
        report = run_fixtures(fixture_files, book, prepare=prepare)
    except RuleLoadError as exc:
        for issue in exc.issues:
            err.print(str(issue), markup=False, highlight=False)
        raise typer.Exit(2) from None
    for failure in report.failures:
        err.print(f"[red]FAILED[/] {failure}", highlight=False)
    out.print(f"{report.passed} passed, {len(report.failures)} failed")
    raise typer.Exit(1 if report.failures else 0)


def _schema_engine(config: Path) -> tuple[Settings, Any]:
    from sqlalchemy import create_engine

    from syncd.store_open import state_url

    settings = _settings(config)
    setup_logging(settings.log, quiet=True)
    with _store_errors(settings):
        return settings, create_engine(state_url(settings))


@contextmanager
def _store_errors(settings: Settings) -> Iterator[None]:
    """A state store that cannot be reached, opened or read ends a `db` command with the
    line start-up gives for it (password hidden) and exit 2, not as an unexpected error."""
    from sqlalchemy.exc import SQLAlchemyError

    from syncd.store_open import store_problem

    try:
        yield
    except (SQLAlchemyError, ImportError, ValueError, OSError) as exc:
        _error(str(store_problem(settings, exc)))
        raise typer.Exit(2) from None


@db_app.command("current")
def db_current(config: ConfigOpt = DEFAULT_CONFIG) -> None:
    """The state store's schema revision, and the one this syncd needs."""
    from syncd.schema import SchemaError, schema_status

    settings, engine = _schema_engine(config)
    try:
        with _store_errors(settings):
            status = schema_status(engine)
    except SchemaError as exc:
        err.print(f"[bold red]state store:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None
    finally:
        engine.dispose()
    current = (
        "empty" if status.empty else "0.1 (before migrations)" if status.legacy else status.current
    )
    out.print(
        f"current: {current}\nneeded:  {status.head}"
        + ("" if status.up_to_date else "\nrun `syncd db upgrade` (after a backup)"),
        highlight=False,
    )


@db_app.command("upgrade")
def db_upgrade(config: ConfigOpt = DEFAULT_CONFIG) -> None:
    """Upgrade the state store's schema in place to this syncd's revision (back it up first)."""
    from syncd.schema import SchemaError, upgrade

    settings, engine = _schema_engine(config)
    try:
        with _store_errors(settings):
            before, after = upgrade(engine)
    except SchemaError as exc:
        err.print(f"[bold red]state store:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None
    finally:
        engine.dispose()
    if before.up_to_date:
        out.print(f"already at {after.current}; nothing to do", highlight=False)
    else:
        was = "empty" if before.empty else ("0.1" if before.legacy else before.current)
        out.print(f"upgraded the state store from {was} to {after.current}", highlight=False)


@db_app.command("prune")
def db_prune(
    config: ConfigOpt = DEFAULT_CONFIG,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be deleted; delete nothing.")
    ] = False,
) -> None:
    """Delete the audit, run, finished outbox and applied retry rows retention lets go.

    The daemon does this by itself between cycles; this shows (--dry-run) or does it now.
    """
    from syncd.retention import prune
    from syncd.state import StateStore, StateStoreError
    from syncd.store_open import state_url

    settings = _settings(config)
    setup_logging(settings.log, quiet=True)
    try:
        with _store_errors(settings):
            store = StateStore(state_url(settings), auto_upgrade=settings.state.auto_upgrade)
    except StateStoreError as exc:
        err.print(f"[bold red]state store:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None
    try:
        with _store_errors(settings):
            results = prune(
                store.engine, settings.retention, datetime.now(UTC), dry_run=dry_run, max_seconds=0
            )
    finally:
        store.close()
    verb = "would delete" if dry_run else "deleted"
    width = max(len(item.table) for item in results)
    for item in results:
        out.print(
            f"{item.table:<{width}} {verb} {item.rows:>9,} rows older than "
            f"{item.cutoff:%Y-%m-%d %H:%M} UTC",
            highlight=False,
        )


def _report_window(
    since: str | None, until: str | None, now: datetime
) -> tuple[datetime, datetime]:
    # An empty value (a script's unset variable) is refused, not read as "not given".
    end = _report_time("--until", until) if until is not None else now
    start = _report_time("--since", since) if since is not None else end - timedelta(days=90)
    if start >= end:
        # Without --until the end is the report's time (--at, else now): name that, not an
        # option the user did not give.
        shown = _day_or_time(end)
        ends = (
            f"--until ({shown})"
            if until is not None
            else f"the report's time ({shown}, --at or now: the period's end without --until)"
        )
        _error(
            f"syncd report: --since ({_day_or_time(start)}) must be before {ends}; give an "
            "earlier --since or a later --until"
        )
        raise typer.Exit(2)
    return start, end


def _day_or_time(when: datetime) -> str:
    """2026-09-01 for a midnight, else the time to the minute: two times of one day differ."""
    if when.hour == when.minute == when.second == when.microsecond == 0:
        return f"{when:%Y-%m-%d}"
    return f"{when:%Y-%m-%d %H:%M %Z}".strip()


def _report_time(option: str, text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        _error(f"syncd report: {option} {text!r} is not an ISO date or time (2026-09-01)")
        raise typer.Exit(2) from None
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    problem = _time_in_range(when)
    if problem:
        _error(f"syncd report: {option} {text!r}: {problem}; give a date such as 2026-09-01")
        raise typer.Exit(2)
    return when


@app.command()
def report(
    config: ConfigOpt = DEFAULT_CONFIG,
    since: Annotated[
        str | None, typer.Option("--since", help="Start (ISO date/time); default until - 90 d.")
    ] = None,
    until: Annotated[str | None, typer.Option("--until", help="End; default now.")] = None,
    cohort: Annotated[
        bool, typer.Option("--cohort", help="Leads entering the first stage in the period.")
    ] = False,
    by: Annotated[str | None, typer.Option("--by", help="Also by crm, owner or source.")] = None,
    at: Annotated[
        str | None, typer.Option("--at", help="The report's time (ISO); default now.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON on stdout.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV on stdout.")] = False,
    html_file: Annotated[
        Path | None, typer.Option("--html", help="Write a self-contained HTML page here.")
    ] = None,
) -> None:
    """The funnel: stage counts and conversion, acceptance rate, SAL follow-up SLA, time in
    stage, stale leads (definitions are printed with it)."""
    from syncd.report import GroupBy, ReportOptions
    from syncd.report_parallel import compute_from_store
    from syncd.report_render import csv_text, html_page, json_text, print_table
    from syncd.state import StateStoreError
    from syncd.store_open import reading_store, state_url

    if by not in (None, "crm", "owner", "source"):
        _error(f"syncd report: --by {by!r} is not one of crm, owner, source")
        raise typer.Exit(2)
    if as_json and as_csv:  # both print to stdout: one of them was silently dropped
        _error("syncd report: --json and --csv both print to stdout; give one of them")
        raise typer.Exit(2)
    group: GroupBy | None = by  # type: ignore[assignment]
    settings = _settings(config)
    setup_logging(settings.log, quiet=True)
    now = _report_time("--at", at) if at is not None else datetime.now(UTC)
    start, end = _report_window(since, until, now)
    rs = settings.report
    options = ReportOptions(
        since=start,
        until=end,
        now=now,
        stages=tuple(rs.stages),
        rejected=tuple(rs.rejected),
        acceptance=rs.acceptance,
        acceptance_target=rs.acceptance_target,
        accept_within_hours=rs.accept_within_business_hours,
        sla_hours=rs.sla_business_hours,
        stale_after=rs.stale_after,
        cohort=cohort,
        calendar=settings.calendar.calendar(),
    )
    maps = {
        name: {crm_value: status for status, crm_value in cs.status_values.items()}
        for name, cs in settings.connectors().items()
    }
    try:
        with _store_errors(settings):
            # The report only reads: an account that may not write the file may run it.
            store = reading_store(state_url(settings), auto_upgrade=settings.state.auto_upgrade)
    except StateStoreError as exc:
        err.print(f"[bold red]state store:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None
    try:
        with _store_errors(settings):
            reports = compute_from_store(store.engine, maps, options, group)
    finally:
        store.close()
    meta = {
        "scope": "cohort" if cohort else "period",
        "since": start.isoformat(timespec="seconds"),
        "until": end.isoformat(timespec="seconds"),
        "as_of": now.isoformat(timespec="seconds"),
        "by": by or "-",
        "sla": f"{rs.sla_business_hours:g} business hours",
        "calendar": settings.calendar.timezone,
    }
    if html_file is not None:
        try:
            html_file.write_text(html_page(reports, meta), encoding="utf-8")
        except OSError as exc:
            _error(f"syncd report: cannot write {html_file}: {_one_line(exc)}")
            raise typer.Exit(2) from None
    if as_json:
        sys.stdout.write(json_text(reports, meta) + "\n")
    elif as_csv:
        sys.stdout.write(csv_text(reports))
    elif html_file is None:
        print_table(out, reports, meta)
    else:
        out.print(f"wrote {html_file}", highlight=False, markup=False)


@history_app.command("backfill")
def history_backfill(config: ConfigOpt = DEFAULT_CONFIG) -> None:
    """Add what the CRMs' own field history knows of every mirrored lead to the ledger.

    Entries from before syncd's own record of a lead begins are added once; running it again
    adds nothing new. Costs one query per 200 Salesforce leads, one read per 50 HubSpot
    contacts.
    """
    from connectors.errors import ConnectorError
    from syncd.history_backfill import backfill

    settings = _settings(config)
    setup_logging(settings.log, quiet=True)
    _refuse_clearing_the_demo(
        settings,
        "history backfill",
        "The demo's cycles read its emulators' status history as they pull: "
        "`syncd sync --once` (or `make run`) fills the ledger",
    )
    application = _build(settings)
    try:
        for name, pipeline in application.pipelines.items():
            try:
                result = backfill(application.store, pipeline.connector, name)
            except ConnectorError as exc:
                _error(
                    f"{name}: the CRM's status history could not be read: {_one_line(exc)}; "
                    "the ledger keeps what was added before"
                )
                raise typer.Exit(1) from None
            out.print(
                f"{name}: {result.added:,} transitions added from the history of "
                f"{result.leads:,} leads ({result.api_calls:,} API calls)",
                highlight=False,
            )
    finally:
        application.close()


@rules_app.command("schema")
def rules_schema() -> None:
    """Print the JSON Schema of rule files (for editors: yaml-language-server)."""
    from rules import ruleset_json_schema

    sys.stdout.write(json.dumps(ruleset_json_schema(), indent=2) + "\n")


if __name__ == "__main__":
    main()
