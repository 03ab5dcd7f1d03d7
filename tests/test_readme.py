"""README.md documents every setting, and its sample output has the shape the commands print."""

from __future__ import annotations

import re
import types
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from connectors import registry
from rules import load_ruleset
from syncd.settings import ConnectorSettings, Settings

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def _models(annotation: object) -> list[type[BaseModel]]:
    """The settings models an annotation holds (itself, or each member of a union)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, typing.Annotated):
        return [m for arg in typing.get_args(annotation) for m in _models(arg)]
    return []


def setting_paths(model: type[BaseModel], prefix: str = "") -> set[str]:
    """Every leaf setting of ``model`` as a dotted path (a union's members all walked)."""
    paths: set[str] = set()
    for name, field in model.model_fields.items():
        if field.exclude:
            continue
        nested = _models(field.annotation)
        if nested:
            for sub in nested:
                paths |= setting_paths(sub, f"{prefix}{name}.")
        else:
            paths.add(prefix + name)
    return paths


def daemon_setting_paths() -> set[str]:
    paths = {
        p
        for p in setting_paths(Settings)
        if not p.startswith(("salesforce.", "hubspot.")) and p != "instances"
    }
    # The legacy top-level salesforce:/hubspot: blocks are connector instances too.
    return paths | setting_paths(ConnectorSettings, "connectors.<name>.")


def documented(section: str) -> set[str]:
    """First-column settings of the first table after the ``section`` heading.

    A cell may name several: `outbox.max_attempts` / `retry_base` is outbox.retry_base too.
    """
    start = README.index(f"\n{section}\n")
    table = re.search(r"\n\| setting \|.*?\n((?:\|.*\n)+)", README[start:])
    assert table, f"no settings table under {section}"
    names: set[str] = set()
    for row in table[1].splitlines()[1:]:
        prefix = ""
        for token in re.findall(r"`([^`]+)`", row.split("|")[1]):
            if "." in token:
                prefix = token.rsplit(".", 1)[0] + "."
                names.add(token)
            else:
                names.add(prefix + token)
    return names


def test_readme_configuration_table_lists_every_daemon_setting() -> None:
    missing = daemon_setting_paths() - documented("## Configuration")
    assert not missing, f"settings missing from README's Configuration table: {sorted(missing)}"


@pytest.mark.parametrize(
    ("kind", "section"), [("salesforce", "### Salesforce"), ("hubspot", "### HubSpot")]
)
def test_readme_connector_tables_list_every_connector_setting(kind: str, section: str) -> None:
    missing = setting_paths(registry.get(kind).config_model) - documented(section)
    assert not missing, f"{kind} settings missing from README's {section} table: {sorted(missing)}"


def _example(marker: str) -> list[str]:
    block = re.search(rf"<!-- example: {marker} -->\n```[^\n]*\n(.*?)```", README, re.S)
    assert block, f"README has no example block {marker}"
    return block[1].splitlines()


def test_readme_sample_output_names_real_rules_and_real_summary_lines() -> None:
    rule_ids = {r.id for r in load_ruleset(REPO / "rules/default.yaml").rules}
    lines = _example("make-run")
    named = {m for line in lines for m in re.findall(r"\(rule ([\w-]+)\)", line)}
    assert named and named <= rule_ids
    summaries = [line for line in lines if "syncd.pipeline: cycle " in line]
    assert summaries and all(
        re.search(
            r"cycle [0-9a-f]{12} \S+: pulled \d+, changed \d+, "
            r"written \d+, failed \d+",
            s,
        )
        for s in summaries
    )
    status = _example("status")
    assert any(re.match(r"\S+: \d+ pending writes, \d+ failed, \d+ held", s) for s in status)


def test_readme_metrics_table_lists_every_series_syncd_exports() -> None:
    from syncd.metrics import Metrics

    names = {m.name for m in Metrics().registry.collect() if m.name.startswith("syncd_")}
    section = README[README.index("## Metrics") : README.index("## Retention")]
    missing = sorted(n for n in names if f"`{n}" not in section)
    assert not missing, f"series missing from README's Metrics table: {missing}"
