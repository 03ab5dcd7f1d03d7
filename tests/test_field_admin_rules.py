"""A RevOps admin editing rule YAML on a bad day: what syncd tells them, and what it refuses.

Each test pins down one behaviour found by feeding syncd the files an admin writes by mistake.
"""

from __future__ import annotations

import logging
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from rules import RuleLoadError
from syncd.app import _book_loader
from syncd.cli import app as cli
from syncd.pipeline import CycleReport
from syncd.revert import RevertFilter, plan_revert
from syncd.settings import load_settings
from tests.daemon.harness import running_app, sf_lead, write_config

runner = CliRunner()

_HEAD = """\
version: 1
name: field
mode: first_match
statuses: {New: {}, Nurture: {}, Archived: {}}
rules:
"""


def _config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "syncd.yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            state: {{url: "sqlite:///{tmp_path / "state.db"}"}}
            rules: {{files: [rules.yaml], fixtures: null}}
            server: {{enabled: false}}
            embedded: {{enabled: true, leads: 0, rep_activity: false, fresh_state: false}}
            salesforce: {{enabled: true}}
            """
        )
        + textwrap.dedent(extra)
    )
    return path


def _rules(tmp_path: Path, body: str, name: str = "rules.yaml") -> Path:
    path = tmp_path / name
    path.write_text(_HEAD + textwrap.dedent(body))
    return path


def test_rules_check_judges_business_time_on_the_configs_calendar_as_the_daemon_does(
    tmp_path: Path,
) -> None:
    # On a calendar of one working hour a week, "within 1 business hour" reaches back days,
    # so it overlaps "older than 2d": the two rules flip a lead every cycle and the daemon
    # refuses the file. `rules check -c` must refuse it too, not say "ok" on a default calendar.
    config = _config(tmp_path, 'calendar: {workdays: [mon], hours: ["09:00", "10:00"]}\n')
    rules = _rules(
        tmp_path,
        """\
          - id: fresh-to-nurture
            when: {all: [{field: status, eq: New}, {field: created_at, within: {business_hours: 1}}]}
            then: [{set_status: Nurture}]
          - id: old-back-to-new
            when: {all: [{field: status, eq: Nurture}, {field: created_at, older_than: 2d}]}
            then: [{set_status: New}]
        """,
    )
    with pytest.raises(RuleLoadError, match="undo each other"):
        _book_loader(load_settings(config))([rules])

    checked = runner.invoke(cli, ["rules", "check", "-c", str(config), str(rules)])

    assert checked.exit_code == 2, checked.output
    assert "rules 'fresh-to-nurture' and 'old-back-to-new' undo each other" in checked.output
    assert "ok (2 rules)" not in checked.output


def _check_lines(tmp_path: Path, body: str) -> list[str]:
    rules = _rules(tmp_path, body)
    checked = runner.invoke(cli, ["rules", "check", "-c", str(_config(tmp_path)), str(rules)])
    assert checked.exit_code == 2, checked.output
    return [line for line in checked.output.splitlines() if line.startswith(str(rules))]


def test_a_bad_business_duration_or_field_reference_gets_its_own_error_only(
    tmp_path: Path,
) -> None:
    # One mistake, one message at its place: the mapping was meant as a business duration or
    # a field reference, so "'within' must be text, not a mapping" (the text member of the
    # union) is noise, and a misspelt `business_days` is not an "unknown operator". A value
    # that is no mapping still hears of both forms it may take.
    lines = _check_lines(
        tmp_path,
        """\
          - id: zero-days
            when: {field: created_at, older_than: {business_days: 0}}
            then: [{set_status: Nurture}]
          - id: misspelt-days
            when: {field: created_at, within: {business_dayz: 2}}
            then: [{set_status: Nurture}]
          - id: misspelt-ref
            when: {field: created_at, lt: {fieldd: status_changed_at}}
            then: [{set_status: Nurture}]
          - id: number-duration
            when: {field: created_at, older_than: 5}
            then: [{set_status: Nurture}]
        """,
    )
    rules = str(tmp_path / "rules.yaml")
    assert lines == [
        f"{rules}:7:41: rule 'zero-days': business_days must be more than 0 and at most 100000 "
        "(got 0)",
        f"{rules}:10:38: rule 'misspelt-days': unknown key 'business_dayz' in a business "
        "duration (did you mean 'business_days'?)",
        f"{rules}:13:34: rule 'misspelt-ref': unknown key 'fieldd' in a field reference "
        "(did you mean 'field'?)",
        f"{rules}:16:41: rule 'number-duration': 'older_than' must be text or a mapping, "
        "not a number",
    ]


def test_a_number_where_text_is_expected_is_not_echoed_as_the_text_to_quote(
    tmp_path: Path,
) -> None:
    # A postal-code prefix written `010` is the number 10 to YAML; telling the admin to
    # quote "10" would make the rule compare with the wrong text and never match "010".
    (line,) = _check_lines(
        tmp_path,
        """\
          - id: berlin-prefix
            when: {field: company, eq: 010}
            then: [{set_status: Nurture}]
        """,
    )
    assert "'company' is a text field" in line
    assert "read the unquoted value as 10" in line
    assert "leading zeros included" in line
    assert '"10"' not in line


_FIXTURE = """\
ruleset: ../rules.yaml
now: 2026-03-02T09:00:00Z
cases:
  - name: a new lead is nurtured
    lead: {status: New}
    expect: {status: Nurture, rule: nurture-everything}
"""


def test_rules_test_runs_fixtures_saved_as_yml_and_fails_when_there_are_none(
    tmp_path: Path,
) -> None:
    config = _config(tmp_path)
    _rules(
        tmp_path,
        """\
          - id: nurture-everything
            when: {field: status, eq: New}
            then: [{set_status: Nurture}]
        """,
    )
    fixtures = tmp_path / "fixtures"
    fixtures.mkdir()

    nothing = runner.invoke(cli, ["rules", "test", str(fixtures), "-c", str(config)])
    assert nothing.exit_code == 2, nothing.output
    assert "no fixture files" in nothing.output
    assert "0 passed" not in nothing.output

    (fixtures / "nurture.yml").write_text(_FIXTURE.replace("Nurture,", "New,"))
    ran = runner.invoke(cli, ["rules", "test", str(fixtures), "-c", str(config)])
    assert ran.exit_code == 1, ran.output
    assert "nurture.yml:4: FAIL a new lead is nurtured" in ran.output
    assert "0 passed, 1 failed" in ran.output


def _check_hubspot_status_values(tmp_path: Path, status_values: str) -> tuple[Path, Any]:
    """``rules check -c`` of a nurture-new rule on a config whose HubSpot instance maps
    ``status_values`` (a YAML flow mapping): the config and the result."""
    config = _config(
        tmp_path,
        f"""\
        hubspot:
          enabled: true
          status_values: {status_values}
        """,
    )
    rules = _rules(
        tmp_path,
        """\
          - id: nurture-new
            when: {field: status, eq: New}
            then: [{set_status: Nurture}]
        """,
    )
    return config, runner.invoke(cli, ["rules", "check", "-c", str(config), str(rules)])


def test_two_statuses_written_as_one_crm_value_are_a_config_error_naming_both(
    tmp_path: Path,
) -> None:
    # HubSpot's NEW would read back as one of them only: rules on the other would never
    # match a HubSpot lead, with nothing said (Salesforce, mapped apart, would move them).
    config, checked = _check_hubspot_status_values(
        tmp_path, "{New: NEW, Open: NEW, Nurture: NURTURE}"
    )
    assert checked.exit_code == 2, checked.output
    assert (
        f"{config}:8:3: hubspot.status_values: 'New' and 'Open' are both written as 'NEW'"
        in checked.output
    )


def test_rules_a_crm_refused_apply_once_the_admin_adds_the_status_in_the_crm(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The refusal says "add the value in hubspot": doing just that, with the file unchanged,
    # must let the daemon take the new rules at its next check of them (not only after an
    # edit or a restart), and the repeated refusal before it is logged once.
    opening = textwrap.dedent(
        """\
        version: 1
        name: field
        mode: first_match
        statuses: {New: {}, Open: {}, Recycled: {}}
        rules:
          - id: open-new
            when: {field: status, eq: New}
            then: [{set_status: Open}]
        """
    )
    recycling = opening + textwrap.indent(
        "- id: recycle\n  when: {field: title, eq: Recycler}\n  then: [{set_status: Recycled}]\n",
        "  ",
    )
    config = write_config(tmp_path, rules=opening, crms=("hubspot",))
    config.write_text(
        config.read_text()
        .replace("allow_add_status_options: true", "allow_add_status_options: false")
        .replace("Converted: CONVERTED}", "Converted: CONVERTED, Recycled: RECYCLED}")
    )
    with running_app(config) as app:
        good = app.rules.book.version
        (tmp_path / "rules.yaml").write_text(recycling)
        with caplog.at_level(logging.ERROR, logger="syncd"):
            assert app.rules.current().version == good
            assert app.rules.current().version == good  # within the pause: not checked again
            app.rules.recheck_refused_after = 0.0
            assert app.rules.current().version == good  # checked again: still refused
        assert "rule 'recycle' sets status 'Recycled'" in (app.rules.error or "")
        assert len([r for r in caplog.records if "do not load" in r.getMessage()]) == 1

        hubspot = app.embedded.hubspot
        hubspot.properties.set_options(
            "hs_lead_status", [{"value": "RECYCLED"}], merge=True, stamp="2026-01-01T00:00:00Z"
        )  # what the admin does in HubSpot's property settings
        assert "RECYCLED" in hubspot.status_options()

        assert app.rules.current().version != good
        assert any(r.id == "recycle" for rs in app.rules.book.sets for r in rs.rules)
        assert app.rules.error is None


@pytest.mark.parametrize(
    "args",
    [
        ["plan", "--at", "0001-01-01T00:00Z"],
        ["plan", "--at", "9999-12-31T23:00-12:00"],
        ["report", "--at", "0001-03-31"],
        ["report", "--until", "0001-02-01"],
    ],
)
def test_a_time_outside_the_calendar_is_refused_by_name_not_an_unexpected_overflow(
    tmp_path: Path, args: list[str]
) -> None:
    # Rules look back from --at, and a report 90 days before its end: from year 1 that was
    # "syncd: unexpected OverflowError ... (a bug ...)", exit 1.
    config = _config(tmp_path)
    _rules(
        tmp_path,
        """\
          - id: nurture-stale
            when: {field: created_at, older_than: 180d}
            then: [{set_status: Nurture}]
        """,
    )
    result = runner.invoke(cli, [*args, "-c", str(config)])
    assert result.exit_code == 2, result.output
    assert f"{args[1]} '{args[2]}'" in result.output
    assert "not between 1970 and 9000" in result.output
    assert "unexpected" not in result.output


def test_a_regex_that_repeats_a_repeat_is_refused_at_load_and_its_possessive_form_works(
    tmp_path: Path,
) -> None:
    # `([a-z0-9]+\.?)+` backtracks exponentially: against a 26-letter local part it took 9 s
    # per lead, doubling per letter, inside the daemon's cycle. A CRM lead with a long
    # address is all it takes, so the file is refused where the pattern is written.
    refused = _check_lines(
        tmp_path,
        """\
          - id: acme-addresses
            when: {field: email, matches: '^([a-z0-9]+\\.?)+@acme\\.com$'}
            then: [{set_status: Nurture}]
        """,
    )
    assert len(refused) == 1
    assert ":7:33: rule 'acme-addresses': regular expression" in refused[0]
    assert "repeats a part that itself repeats" in refused[0]

    rules = _rules(
        tmp_path,
        """\
          - id: acme-addresses
            when: {field: email, matches: '^([a-z0-9]++\\.?)+@acme\\.com$'}
            then: [{set_status: Nurture}]
        """,
    )
    book = _book_loader(load_settings(_config(tmp_path)))([rules])
    now = datetime(2026, 3, 2, 9, tzinfo=UTC)
    started = time.monotonic()
    long_miss = book.evaluate({"status": "New", "email": "a" * 40 + "@acme.co"}, now)
    assert time.monotonic() - started < 5  # the refused form: about 2**40 steps
    assert long_miss.status is None
    assert book.evaluate({"status": "New", "email": "ann.lee@acme.com"}, now).status == "Nurture"


def test_a_misspelt_status_values_key_is_warned_about_with_the_status_it_meant(
    tmp_path: Path,
) -> None:
    # `Nurtur: NURTURE` maps nothing: Nurture goes to HubSpot as 'Nurture' (and, with
    # allow_add_status_options, becomes a second option next to NURTURE).
    config, checked = _check_hubspot_status_values(
        tmp_path, "{New: NEW, Nurtur: NURTURE, Converted: CONVERTED}"
    )
    assert checked.exit_code == 0, checked.output
    assert (
        f"{config}:8:29: warning: hubspot.status_values maps 'Nurtur', which no rule set "
        "declares; did you mean 'Nurture'? Unmapped, 'Nurture' is written to hubspot as "
        "'Nurture'" in checked.output
    )


def test_a_rule_file_listed_twice_is_one_error_saying_so_not_a_clash_per_rule(
    tmp_path: Path,
) -> None:
    rules = _rules(
        tmp_path,
        """\
          - id: nurture-new
            when: {field: status, eq: New}
            then: [{set_status: Nurture}]
          - id: archive-nurtured
            when: {field: status, eq: Nurture}
            then: [{archive: {}}]
        """,
    )
    same = tmp_path / "." / "rules.yaml"
    checked = runner.invoke(
        cli, ["rules", "check", "-c", str(_config(tmp_path)), str(rules), str(same)]
    )
    assert checked.exit_code == 2, checked.output
    assert checked.output.splitlines() == [
        f"{same}:1:1: this file is given twice (rule files 1 and 2 of 2); list each rule file once"
    ]


_CHAIN_RULES = """\
version: 1
name: chain
mode: first_match
statuses: {New: {}, Open: {}, MQL: {}, Nurture: {}, Converted: {converted: true}}
rules:
  - id: new-to-mql
    when: {field: status, eq: New}
    then: [{set_status: MQL}]
  - id: mql-to-nurture
    when: {field: status, eq: MQL}
    then: [{set_status: Nurture}]
"""


def test_revert_by_rule_takes_the_changes_of_chains_the_rule_is_on(tmp_path: Path) -> None:
    # A New lead goes New -> MQL -> Nurture in one write, audited as rule
    # "new-to-mql -> mql-to-nurture". `revert --rule new-to-mql` said "0 changes to write",
    # and `--rule mql-to-nurture` left it out: the chained leads stayed moved.
    with running_app(write_config(tmp_path, rules=_CHAIN_RULES, crms=("salesforce",))) as app:
        sf = app.embedded.salesforce
        chained = sf.add_leads([sf_lead("C", "c@acme.com", title="Analyst")])[0]
        direct = sf.add_leads([sf_lead("D", "d@acme.com", title="Analyst", status="MQL")])[0]
        run_id = app.pipelines["salesforce"].run_cycle().run_id
        pipeline, book, now = app.pipelines["salesforce"], app.rules.current(), app.clock()

        def restored(rule: str) -> set[tuple[str, str, str]]:
            plan = plan_revert(app.store, pipeline, run_id, book, now, RevertFilter(rule_id=rule))
            return {(r.lead_id, r.rule_id or "", r.restored) for r in plan.restores}

        chain = ("new-to-mql -> mql-to-nurture", "Open - Not Contacted")
        assert restored("new-to-mql") == {(chained, *chain)}
        assert restored("mql-to-nurture") == {(chained, *chain), (direct, "mql-to-nurture", "MQL")}
        assert restored("mql") == set()  # a rule id, not a part of one


def test_rules_diff_of_one_file_of_a_book_compares_the_whole_book_as_the_daemon_runs_it(
    tmp_path: Path,
) -> None:
    # Files [a.yaml, b.yaml]; b already nurtures New leads. A draft of a.yaml that nurtures
    # them too changes which rule decides, not what is written: diffed alone, a.yaml's draft
    # showed "no change → status Nurture", changes the daemon would never make.
    head = "version: 1\nmode: first_match\nstatuses: {New: {}, Nurture: {}, Archived: {}}\n"
    rare = "  - id: a-rare\n    when: {field: title, eq: zzz}\n    then: [{archive: {}}]\n"
    nurture = "    when: {field: status, eq: New}\n    then: [{set_status: Nurture}]\n"
    a = f"{head}name: a\nrules:\n{rare}"
    (tmp_path / "b.yaml").write_text(f"{head}name: b\nrules:\n  - id: b-nurture\n{nurture}")
    draft = tmp_path / "a-draft.yaml"
    draft.write_text(f"{a}  - id: a-nurture\n{nurture}")
    config = write_config(tmp_path, rules=a, crms=("salesforce",))
    config.write_text(
        config.read_text().replace("files: [rules.yaml]", "files: [rules.yaml, b.yaml]")
    )
    with running_app(config) as app:
        lead = app.embedded.salesforce.add_leads([sf_lead("N", "n@acme.com", title="Analyst")])[0]
        pipeline = app.pipelines["salesforce"]
        pipeline.pull(CycleReport("salesforce", "plan"), until=app.clock())

    diffed = runner.invoke(
        cli,
        ["rules", "diff", str(tmp_path / "rules.yaml"), str(draft), "-c", str(config), "--leads"],
    )
    assert diffed.exit_code == 0, diffed.output
    assert "1 of 1 leads change decision" in diffed.output
    assert (
        f"salesforce {lead}: status Nurture (rule b-nurture) → status Nurture (rule a-nurture)"
        in diffed.output
    )
    assert "no change" not in diffed.output


def test_rules_diff_does_not_count_a_lead_held_under_both_versions_as_changing(
    tmp_path: Path,
) -> None:
    old = _HEAD + "  - id: nurture-old\n    then: [{set_status: Nurture}]\n"
    draft = tmp_path / "draft.yaml"
    draft.write_text(old.replace("nurture-old", "nurture-renamed"))
    config = write_config(tmp_path, rules=old, crms=("salesforce",))
    with running_app(config) as app:
        sf = app.embedded.salesforce
        lead = sf.add_leads([sf_lead("H", "h@acme.com", title="Analyst")])[0]
        pipeline = app.pipelines["salesforce"]
        pipeline.run_cycle()  # syncd nurtures it ...
        sf.update_lead(lead, {"Status": "Working - Contacted"})  # ... and a rep takes it back
        pipeline.pull(CycleReport("salesforce", "plan"), until=app.clock())

    diffed = runner.invoke(
        cli, ["rules", "diff", str(tmp_path / "rules.yaml"), str(draft), "-c", str(config)]
    )
    assert diffed.exit_code == 0, diffed.output
    assert "0 of 1 leads change decision" in diffed.output, diffed.output
    assert "held → held" not in diffed.output


def test_report_with_both_json_and_csv_is_refused_not_one_silently_dropped(
    tmp_path: Path,
) -> None:
    result = runner.invoke(cli, ["report", "--json", "--csv", "-c", str(_config(tmp_path))])
    assert result.exit_code == 2, result.output
    assert "--json and --csv both print to stdout; give one of them" in result.output
    assert "{" not in result.output  # nothing was printed as either


def test_a_broken_rule_edit_put_right_again_is_logged_as_loading_again_not_a_new_version(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = write_config(tmp_path, crms=("hubspot",))
    rules = tmp_path / "rules.yaml"
    good = rules.read_text()
    with running_app(config) as app:
        version = app.rules.book.version
        rules.write_text(good + "  - id: [broken\n")
        with caplog.at_level(logging.INFO, logger="syncd"):
            assert app.rules.current().version == version and app.rules.error
            rules.write_text(good)
            assert app.rules.current().version == version and app.rules.error is None
    messages = [r.getMessage() for r in caplog.records]
    assert f"rule files load again: still version {version}" in messages
    assert not [m for m in messages if m.startswith("rules reloaded")]
