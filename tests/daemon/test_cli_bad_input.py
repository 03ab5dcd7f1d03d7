"""The admin's commands given what a tired admin types: ids of the wrong run or CRM, options
that meet, a Ctrl-C. Each says what is wrong and what to do, in one line, and changes nothing."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from syncd.cli import app as cli
from syncd.state import StateStore
from tests.daemon.test_admin_workflow import _demo_config

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def synced(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embedded demo's config, its store holding one synced cycle of both CRMs."""
    config = _demo_config(tmp_path_factory.mktemp("cli-bad-input"))
    result = invoke("sync", "--once", "--config", str(config))
    assert result.exit_code == 0, result.output
    return config


def _store(config: Path) -> StateStore:
    return StateStore(config.read_text().split("url: ", 1)[1].split()[0])


def _last_run(config: Path, crm: str) -> str:
    store = _store(config)
    try:
        return str(store.last_runs(1, crm=crm)[0].run_id)
    finally:
        store.close()


def _audit_of_run(config: Path, run_id: str) -> list[tuple[str, str, str]]:
    store = _store(config)
    try:
        return [(a.lead_id, a.field, a.outcome) for a in store.audit_of_run(run_id)]
    finally:
        store.close()


def test_revert_is_refused_and_the_demo_s_state_kept_when_the_run_wrote_to_the_embedded_demo(
    synced: Path,
) -> None:
    run_id = _last_run(synced, "salesforce")
    audited = _audit_of_run(synced, run_id)
    assert audited, "the demo's first cycle writes"
    for dry in (["--dry-run"], ["--yes"]):
        result = invoke("revert", run_id, *dry, "--config", str(synced))
        assert result.exit_code == 2, result.output
        assert f"syncd revert: run {run_id} wrote to the embedded demo's emulators" in result.output
        assert "nothing was written or cleared" in result.output
        assert f"syncd audit --run {run_id}" in result.output
        assert "unexpected" not in result.output and "Traceback" not in result.output
    # the demo's start clears its state: a refused revert must not have started it
    assert _audit_of_run(synced, run_id) == audited
    status = invoke("status", "--config", str(synced))
    assert f"run {run_id}" in status.output


def test_audit_shows_only_that_lead_s_changes_when_given_a_lead_and_its_run(
    synced: Path,
) -> None:
    run_id = _last_run(synced, "salesforce")
    leads = sorted({lead for lead, _field, _outcome in _audit_of_run(synced, run_id)})
    assert len(leads) > 1
    result = invoke("audit", leads[0], "--run", run_id, "--config", str(synced))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines and all(f"  {leads[0]}  " in line and f"run {run_id}" in line for line in lines)
    assert leads[1] not in result.output


def test_audit_names_the_lead_and_the_run_when_the_lead_has_no_change_in_that_run(
    synced: Path,
) -> None:
    sf_run = _last_run(synced, "salesforce")
    hs_lead = next(lead for lead, _f, _o in _audit_of_run(synced, _last_run(synced, "hubspot")))
    result = runner.invoke(cli, ["audit", hs_lead, "--run", sf_run, "--config", str(synced)])
    assert result.exit_code == 1, result.output
    assert result.output.strip() == f"no audit rows for lead {hs_lead} in run {sf_run}"


def test_an_interrupted_command_says_it_was_stopped_and_exits_130_when_ctrl_c_is_pressed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import syncd.cli

    def pressed_ctrl_c(*_args: object, **_kwargs: object) -> None:
        raise KeyboardInterrupt

    config = _demo_config(tmp_path)
    monkeypatch.setattr(syncd.cli, "_build", pressed_ctrl_c)  # after the leases are taken
    monkeypatch.setattr(sys, "argv", ["syncd", "sync", "--once", "--config", str(config)])
    with pytest.raises(SystemExit) as stopped:
        syncd.cli.main()
    assert stopped.value.code == 130
    shown = capsys.readouterr()
    assert "syncd: stopped by Ctrl-C (SIGINT) before the command finished" in shown.err
    assert "syncd status" in shown.err and "Traceback" not in shown.err + shown.out


def test_revert_json_with_yes_prints_one_json_document_holding_the_plan_and_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.daemon.test_revert import _synced_by_cli

    with _synced_by_cli(tmp_path, monkeypatch) as synced:
        result = synced.revert("--json", "--yes")
        assert result.exit_code == 0, result.output
        document = json.loads(result.stdout)  # what `| python -m json.tool` reads
        assert document["run_id"] == synced.run_id
        assert {(r["lead_id"], r["field"]) for r in document["restores"]} == {
            (lead, field) for lead in synced.ids for field in ("status", "newsletter:newsletter")
        }
        done = document["revert"]
        assert done["outcome"] == "ok" and done["mismatches"] == []
        assert done["run_id"] != synced.run_id
        assert f"revert of run {synced.run_id}: 4 written" in done["message"]
        assert [synced.emu.lead(i)["Status"] for i in synced.ids] == ["Open - Not Contacted"] * 2


def test_revert_json_is_refused_before_any_crm_call_when_neither_dry_run_nor_yes_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.daemon.test_revert import _synced_by_cli

    with _synced_by_cli(tmp_path, monkeypatch) as synced:
        calls = len(synced.emu.journal.entries())
        result = synced.revert("--json")
        assert result.exit_code == 2, result.output
        assert result.stdout == ""
        assert "--json needs --dry-run (the plan) or --yes" in result.stderr
        assert len(synced.emu.journal.entries()) == calls  # not even a read


@pytest.mark.parametrize(
    ("command", "named"),
    [
        (["plan", "--pull"], "plan --pull"),
        (["plan", "--pull", "--json"], "plan --pull"),
        (["history", "backfill"], "history backfill"),
    ],
)
def test_a_command_that_would_start_the_demo_afresh_is_refused_and_clears_nothing(
    synced: Path, command: list[str], named: str
) -> None:
    run_id = _last_run(synced, "hubspot")
    audited = _audit_of_run(synced, run_id)
    result = runner.invoke(cli, [*command, "--config", str(synced)])
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert f"syncd {named}: this would start new demo emulators" in result.stderr
    assert "nothing was read or cleared" in result.stderr
    assert _audit_of_run(synced, run_id) == audited
    assert _last_run(synced, "hubspot") == run_id


@pytest.mark.parametrize("since", ["0001-01-01T00:00+01:00", "9999-12-31T23:00-12:00"])
def test_revert_since_outside_the_calendar_is_refused_by_name_before_any_crm_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, since: str
) -> None:
    from tests.daemon.test_revert import _synced_by_cli

    with _synced_by_cli(tmp_path, monkeypatch) as synced:
        calls = len(synced.emu.journal.entries())
        result = synced.revert("--since", since, "--dry-run")
        assert result.exit_code == 2, result.output
        assert f"syncd revert: --since '{since}': it is not between 1970 and 9000" in result.stderr
        assert len(synced.emu.journal.entries()) == calls


def test_revert_says_nothing_was_written_and_how_to_skip_the_question_when_no_answer_comes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.daemon.test_revert import _synced_by_cli

    with _synced_by_cli(tmp_path, monkeypatch) as synced:
        writes = len(synced.emu.journal.writes())
        result = synced.revert()  # no --yes, and stdin ends: a cron job, a pipe
        assert result.exit_code == 1, result.output
        assert "Write these 4 changes to salesforce? [y/N]" in result.stdout
        assert result.stderr.strip() == (
            "syncd revert: no answer to the question (Ctrl-C or no input); nothing was "
            "written. Add --yes to write without asking, or --dry-run for the plan alone"
        )
        assert len(synced.emu.journal.writes()) == writes


@pytest.mark.parametrize(
    ("window", "said"),
    [
        (
            ["--since", "2026-12-01T12:00Z", "--until", "2026-12-01T06:00Z"],
            "--since (2026-12-01 12:00 UTC) must be before --until (2026-12-01 06:00 UTC)",
        ),
        (
            ["--since", "2026-09-01", "--at", "2026-08-01"],
            "--since (2026-09-01) must be before the report's time (2026-08-01, --at or now",
        ),
    ],
)
def test_report_names_the_times_and_the_end_the_user_gave_when_since_is_not_before_it(
    synced: Path, window: list[str], said: str
) -> None:
    result = runner.invoke(cli, ["report", *window, "--config", str(synced)])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"syncd report: {said}")
    assert "give an earlier --since or a later --until" in result.stderr


def test_retry_takes_a_code_in_any_case_and_names_the_codes_waiting_when_none_matches(
    tmp_path: Path,
) -> None:
    from tests.daemon.harness import running_app, write_config
    from tests.daemon.test_retry import SPLIT_RULES, VALIDATION, _retry, _three_refusals

    config = write_config(tmp_path, crms=("salesforce",), rules=SPLIT_RULES)
    with running_app(config) as app:
        a, b, c = _three_refusals(app)

        lower = _retry(config, "--crm", "salesforce", "--code", VALIDATION.lower())
        assert lower.exit_code == 0, lower.output
        assert "2 leads whose refused writes would be planned again" in lower.output
        assert a in lower.output and b in lower.output and c not in lower.output

        typo = _retry(config, "--crm", "salesforce", "--code", "FIELD_VALIDATION")
        assert typo.exit_code == 0, typo.output
        assert typo.stdout.splitlines() == [
            "salesforce: no refused write waits for its lead to change with error code "
            "FIELD_VALIDATION: nothing to retry",
            f"  refused writes wait with --code ENTITY_IS_DELETED (1), --code {VALIDATION} (2)",
        ]


def test_a_demo_start_the_crm_check_stops_keeps_the_last_demo_s_state(synced: Path) -> None:
    from tests.daemon.test_admin_workflow import REPO

    # A status the rules set that the Salesforce org lacks: the CRM check refuses the start.
    rules = (REPO / "rules/default.yaml").read_text()
    rules = rules.replace("statuses:\n", "statuses:\n  Recycled: {}\n", 1)
    rules = rules.replace(
        "rules:\n",
        "rules:\n  - id: recycle\n    when: {field: title, eq: Recycler}\n"
        "    then: [{set_status: Recycled}]\n",
        1,
    )
    draft = synced.parent / "recycle.yaml"
    draft.write_text(rules)
    config = synced.parent / "recycle-config.yaml"
    config.write_text(synced.read_text().replace(str(REPO / "rules/default.yaml"), str(draft)))
    run_id = _last_run(synced, "salesforce")
    audited = _audit_of_run(synced, run_id)

    result = runner.invoke(cli, ["sync", "--once", "--config", str(config)])
    assert result.exit_code == 2, result.output
    assert "rule 'recycle' sets status 'Recycled'" in result.output
    assert "nothing was written to any CRM" in result.output
    assert "cleared the mirror" not in result.output
    assert _last_run(synced, "salesforce") == run_id
    assert _audit_of_run(synced, run_id) == audited


@pytest.mark.parametrize(
    ("command", "said"),
    [
        (["plan", "--at", ""], "--at '': not an ISO time; give an ISO time"),
        (["report", "--since", ""], "syncd report: --since '' is not an ISO date or time"),
        (["report", "--until", ""], "syncd report: --until '' is not an ISO date or time"),
        (["report", "--at", ""], "syncd report: --at '' is not an ISO date or time"),
    ],
)
def test_an_empty_time_is_refused_not_read_as_the_default_when_a_script_s_variable_is_unset(
    synced: Path, command: list[str], said: str
) -> None:
    result = runner.invoke(cli, [*command, "--config", str(synced)])
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr.startswith(said)


@pytest.mark.parametrize(
    ("command", "doing"),
    [(["status"], "show"), (["plan"], "plan"), (["explain", "1001"], "explain")],
)
def test_a_read_command_names_the_config_when_no_connector_is_enabled_in_it(
    synced: Path, command: list[str], doing: str
) -> None:
    # A templating step that dropped the connectors: an empty status must not look like "all
    # is well", nor an empty mirror like "no such lead".
    config = synced.parent / "no-connectors.yaml"
    config.write_text(synced.read_text().replace("    enabled: true\n", "    enabled: false\n"))
    result = runner.invoke(cli, [*command, "--config", str(config)])
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert re.match(
        rf"{re.escape(str(config))}:\d+:\d+: no connector instance is enabled, so there is "
        rf"nothing to {doing}; configure one under connectors:",
        result.stderr,
    ), result.stderr


def test_revert_of_a_run_that_wrote_nothing_says_so_not_that_its_audit_was_pruned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.daemon.test_revert import _runs, _synced_by_cli

    with _synced_by_cli(tmp_path, monkeypatch) as synced:
        assert runner.invoke(cli, ["sync", "--once", "-c", synced.config]).exit_code == 0
        (idle,) = [r.run_id for r in _runs(tmp_path) if r.run_id != synced.run_id]
        result = runner.invoke(cli, ["revert", idle, "--yes", "-c", synced.config])
        assert result.exit_code == 0, result.output
        assert result.stdout.rstrip().endswith(f"nothing to revert: run {idle} wrote no change")
        assert "retention" not in result.output
