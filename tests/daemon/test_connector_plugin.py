"""A connector type the daemon has never heard of runs a cycle, with no change under syncd/.

The in-memory CRM below implements ``connectors.base.Connector`` and is registered from this
module; the registry's entry-point path is exercised with a real distribution on ``sys.path``.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict

from connectors import registry
from connectors.base import (
    Connector,
    ConnectorStats,
    Cursor,
    LeadChange,
    Outcome,
    Page,
    Preflight,
    RecordResult,
    RemoteLead,
)
from connectors.registry import ConnectorRegistry, ConnectorSpec, ConnectorTypeError
from syncd.app import App
from syncd.settings import load_settings
from syncd.yamlfile import YamlFileError

NOW = datetime.now(UTC).replace(microsecond=0)


class MemoryConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    statuses: list[str] = ["New", "Nurture", "Archived"]
    newsletters: dict[str, str] = {}


@dataclass
class _Lead:
    fields: dict[str, object]
    modified_at: datetime


class MemoryConnector(Connector):
    """A CRM held in a dict: leads by id, newsletter members by list id."""

    kind = "memory"
    max_batch_size = 2
    max_membership_batch = 2

    def __init__(self, config: MemoryConfig) -> None:
        self.config = config
        self.stats = ConnectorStats()
        self.leads: dict[str, _Lead] = {}
        self.members: dict[str, set[str]] = {}

    def check(self, *, statuses: set[str], fields: set[str], newsletters: set[str]) -> Preflight:
        self.stats.calls += 1
        problems = [f"no newsletter {n!r}" for n in newsletters - set(self.config.newsletters)]
        return Preflight(
            statuses=set(self.config.statuses), writable_fields={"status"}, problems=problems
        )

    def iter_pages(self, since: Cursor | None, *, until: datetime) -> Iterator[Page]:
        self.stats.calls += 1
        found = sorted(
            (
                RemoteLead(id_, lead.modified_at, dict(lead.fields))
                for id_, lead in self.leads.items()
                if lead.modified_at <= until
            ),
            key=lambda remote: remote.cursor,
        )
        found = [lead for lead in found if since is None or lead.cursor > since]
        yield Page(found, found[-1].cursor if found else since)

    def write_batch(self, changes: Sequence[LeadChange]) -> list[RecordResult]:
        self.stats.calls += 1
        for change in changes:
            self.leads[change.lead_id].fields.update(change.fields)
        return [RecordResult(c.lead_id, Outcome.OK) for c in changes]

    def add_to_newsletter(self, newsletter: str, lead_ids: Sequence[str]) -> list[RecordResult]:
        self.stats.calls += 1
        self.members.setdefault(self.config.newsletters[newsletter], set()).update(lead_ids)
        return [RecordResult(i, Outcome.OK) for i in lead_ids]

    def remove_from_newsletter(
        self, newsletter: str, lead_ids: Sequence[str]
    ) -> list[RecordResult]:
        self.stats.calls += 1
        self.members.setdefault(self.config.newsletters[newsletter], set()).difference_update(
            lead_ids
        )
        return [RecordResult(i, Outcome.OK) for i in lead_ids]

    def read_leads(self, lead_ids: Sequence[str]) -> list[RemoteLead]:
        self.stats.calls += 1
        return [
            RemoteLead(i, self.leads[i].modified_at, dict(self.leads[i].fields))
            for i in lead_ids
            if i in self.leads
        ]


MEMORY = ConnectorSpec(
    kind="memory", title="In-memory CRM", config_model=MemoryConfig, build=MemoryConnector
)

RULES = """\
version: 1
name: memory
mode: first_match
statuses: {New: {}, Nurture: {}, Archived: {}}
rules:
  - id: memory-only
    when:
      all:
        - {field: crm, eq: memory}
        - {field: last_activity_at, older_than: 90d}
    then:
      - set_status: Nurture
      - add_to_newsletter: newsletter
"""


@pytest.fixture
def memory_type() -> Iterator[ConnectorSpec[MemoryConfig]]:
    registry.register(MEMORY)
    try:
        yield MEMORY
    finally:
        registry.unregister("memory")


def test_a_connector_type_registered_from_a_test_module_runs_a_cycle(
    tmp_path: Path, memory_type: ConnectorSpec[MemoryConfig]
) -> None:
    (tmp_path / "rules.yaml").write_text(RULES)
    config = tmp_path / "syncd.yaml"
    config.write_text(f"""\
state: {{url: "sqlite:///{tmp_path / "state.db"}"}}
rules: {{files: [rules.yaml], fixtures: null}}
breaker: {{max_change_share: 1.0, min_changes: 1}}
server: {{enabled: false}}
connectors:
  memory/books:
    type: memory
    status_values: {{Nurture: nurturing}}
    connector: {{statuses: [new, nurturing], newsletters: {{newsletter: list-7}}}}
""")
    app = App.build(load_settings(config))
    try:
        crm = app.connectors["memory/books"]
        assert isinstance(crm, MemoryConnector) and crm.name == "memory/books"
        crm.leads["m1"] = _Lead(
            {
                "email": "old@acme.com",
                "status": "new",
                "last_activity_at": NOW - timedelta(days=200),
            },
            NOW - timedelta(days=1),
        )
        crm.leads["m2"] = _Lead(
            {"email": "new@acme.com", "status": "new", "last_activity_at": NOW - timedelta(days=2)},
            NOW - timedelta(days=1),
        )
        report = app.pipelines["memory/books"].run_cycle()
        assert (report.outcome, report.pulled, report.written) == ("ok", 2, 2)
        assert crm.leads["m1"].fields["status"] == "nurturing"
        assert crm.leads["m2"].fields["status"] == "new"
        assert crm.members == {"list-7": {"m1"}}
        assert app.store.cursor("memory/books")[1] == "m2"
    finally:
        app.close()


def test_an_instance_of_an_unregistered_type_is_refused_with_the_known_types(
    tmp_path: Path,
) -> None:
    config = tmp_path / "syncd.yaml"
    config.write_text("connectors:\n  memory/books: {type: memory}\n")
    with pytest.raises(YamlFileError) as caught:
        load_settings(config)
    assert [str(p) for p in caught.value.problems] == [
        (
            f"{config}:2:18: connectors.memory/books.type: unknown connector type "
            "'memory'; known types: hubspot, salesforce"
        )
    ]


def _plugin_distribution(root: Path, *, name: str, kind: str) -> None:
    """A real installed distribution: a module with a spec and a dist-info with entry points."""
    (root / f"{name}.py").write_text(
        textwrap.dedent(f"""\
        from tests.daemon.test_connector_plugin import MemoryConfig, MemoryConnector
        from connectors.registry import ConnectorSpec

        class Connector(MemoryConnector):
            kind = "{kind}"

        SPEC = ConnectorSpec(kind="{kind}", title="Plugin", config_model=MemoryConfig,
                             build=Connector)
        """)
    )
    info = root / f"{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        f"[syncd.connectors]\n{kind} = {name}:SPEC\nsalesforce = {name}:SPEC\n"
    )


def test_an_installed_distribution_adds_a_type_through_its_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _plugin_distribution(tmp_path, name="syncd_pipedrive", kind="pipedrive")
    monkeypatch.syspath_prepend(str(tmp_path))
    found = ConnectorRegistry()
    assert found.kinds() == ["hubspot", "pipedrive", "salesforce"]
    spec = found.get("pipedrive")
    connector = spec.create(MemoryConfig(), "pipedrive/eu")
    assert (connector.kind, connector.name) == ("pipedrive", "pipedrive/eu")
    # The same distribution also claims "salesforce": a plugin never replaces a built-in type.
    assert found.get("salesforce").title == "Salesforce"


def test_a_spec_that_fails_to_import_says_which_and_why(tmp_path: Path) -> None:
    broken = ConnectorRegistry(
        {"salesforce": "connectors.salesforce.spec:SPEC", "zoho": "syncd_zoho_not_installed:SPEC"}
    )
    with pytest.raises(
        ConnectorTypeError,
        match=r"connector type 'zoho' cannot be imported "
        r"from syncd_zoho_not_installed:SPEC: No module named "
        r"'syncd_zoho_not_installed'; is its package installed\?",
    ):
        broken.get("zoho")
    with pytest.raises(
        ConnectorTypeError,
        # syncd's own entry points (its pyproject declares the built-in types) add hubspot
        match=r"unknown connector type 'salesforse'; "
        r"known types: (hubspot, )?salesforce, zoho \(did you mean 'salesforce'\?\)",
    ):
        broken.get("salesforse")


def test_a_built_connector_carries_its_instance_name_and_keeps_its_type() -> None:
    connector = MEMORY.create(MemoryConfig(), "memory/eu")
    assert (connector.kind, connector.name, type(connector).kind) == (
        "memory",
        "memory/eu",
        "memory",
    )
    assert MemoryConnector(MemoryConfig()).name == "memory"  # unnamed: the type


def test_registering_a_type_twice_needs_replace() -> None:
    fresh = ConnectorRegistry({})
    fresh.register(MEMORY)
    with pytest.raises(ConnectorTypeError, match="already registered"):
        fresh.register(MEMORY)
    fresh.register(MEMORY, replace=True)
    assert fresh.get("memory") is MEMORY


def test_listing_connector_types_imports_no_connector_and_production_no_emulator() -> None:
    probe = textwrap.dedent("""\
        import sys
        from connectors import registry
        assert registry.kinds()[:2] == ["hubspot", "salesforce"], registry.kinds()
        loaded = [m for m in sys.modules if m.startswith(("connectors.salesforce",
                                                          "connectors.hubspot", "hubspot",
                                                          "simple_salesforce"))]
        assert not loaded, loaded
        registry.get("salesforce"), registry.get("hubspot")
        testing = [m for m in sys.modules if m.startswith("connectors.testing")]
        assert not testing, testing
        """)
    subprocess.run([sys.executable, "-c", probe], check=True)
