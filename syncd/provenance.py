"""Provenance written back: which rule changed a lead, why, when and in which run.

A rep sees a status change in the CRM; with a ``provenance:`` block in the connector instance's
settings syncd also writes the deciding rule's id, its ``explain`` sentence, the time and the run
id into CRM fields the admin created (and, per status, a stage date such as ``MQL_Date__c``).
They travel in the same record of the same batch as the status (``LeadChange.crm_fields``), so
they cost no API call.

At start-up :func:`check_provenance` asks the CRM whether each field exists and may be written,
naming every one that does not, and reads text fields' lengths: the reason is cut to fit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from connectors.base import Connector
from syncd.pipeline import Pipeline
from syncd.planner import Planner
from syncd.settings import ProvenanceSettings

__all__ = ["Provenance", "check_provenance"]

_REVERT_PREFIX = "revert:"  # syncd.revert.REVERT_PREFIX (imported there from here would cycle)


def check_provenance(
    connector: Connector, settings: ProvenanceSettings, where: str
) -> tuple[list[str], dict[str, int | None]]:
    """Problems with the configured fields (each named), and the text fields' lengths."""
    names = settings.field_names()
    if not names:
        return [], {}
    described = connector.describe_crm_fields(names)
    if described is None:
        return [
            f"{where}.provenance: connector type {connector.kind!r} cannot write fields by "
            "their CRM name; remove the provenance block"
        ], {}
    problems: list[str] = []
    lengths: dict[str, int | None] = {}
    for name in names:
        info = described.get(name)
        if info is None or not info.exists:
            problems.append(
                f"{where}.provenance: the lead field {name!r} does not exist in "
                f'{connector.name}; create it (see the README, "Provenance written '
                'back") or remove it from the provenance block'
            )
        elif not info.updateable:
            problems.append(
                f"{where}.provenance: the lead field {name!r} is not updateable by "
                f"syncd's user in {connector.name}; grant it edit access "
                "(field-level security / a property that is not read-only)"
            )
        else:
            lengths[name] = info.length
    return problems, lengths


@dataclass(frozen=True, slots=True)
class Provenance:
    """The provenance values of one connector instance's field writes."""

    settings: ProvenanceSettings
    lengths: Mapping[str, int | None]  # CRM field -> most characters (text fields)
    to_rule_status: Mapping[str, str]  # CRM status value -> rule status

    def for_groups(
        self, groups: Sequence[Sequence[Any]], pipeline: Pipeline
    ) -> list[dict[str, Any]]:
        """The CRM fields to write with each group of one lead's outbox rows (one batch)."""
        with pipeline.store.engine.connect() as conn:
            mirror = pipeline.store.leads_by_id(conn, pipeline.crm, [g[0].lead_id for g in groups])
        book = pipeline.rules()
        now = pipeline.clock()
        planner = Planner(crm=pipeline.crm, book=book, settings=pipeline.settings)

        def explain(row: Any, rule_id: str) -> str | None:
            """The deciding rule's ``explain`` line, as `syncd explain` prints it."""
            for trace in book.explain(planner.rule_input(row), now):
                if trace.rule_id == rule_id and trace.matched:
                    return f"rule {rule_id}: {trace.decided_by}"
            return None

        return [self._values(g, mirror.get(g[0].lead_id), explain, now) for g in groups]

    def _values(
        self, rows: Sequence[Any], lead: Any, explain: Any, now: datetime
    ) -> dict[str, Any]:
        s = self.settings
        first = rows[0]
        rule_id = first.rule_id or ""
        out: dict[str, Any] = {}
        if s.rule:
            out[s.rule] = self._fit(s.rule, rule_id)
        if s.reason:
            if rule_id.startswith(_REVERT_PREFIX):
                reason = f"revert of syncd run {rule_id[len(_REVERT_PREFIX) :]}"
            else:
                reason = (explain(lead, rule_id) if lead is not None else None) or f"rule {rule_id}"
            out[s.reason] = self._fit(s.reason, reason)
        if s.changed_at:
            out[s.changed_at] = now
        if s.run:
            out[s.run] = self._fit(s.run, first.run_id)
        if s.stage_dates and not rule_id.startswith(_REVERT_PREFIX):
            # A revert restores an earlier status; it did not reach that stage now.
            status = next((r.value for r in rows if r.field == "status"), None)
            stage = self.to_rule_status.get(status, status) if status is not None else None
            target = s.stage_dates.get(stage) if stage is not None else None
            if target:
                out[target] = now
        return out

    def _fit(self, name: str, text: str) -> str:
        """``text`` cut to the field's length, counted in UTF-16 units: Salesforce counts a
        character outside the Basic Multilingual Plane (an emoji) as two, in formulas and in
        Apex strings (help.salesforce.com, "Surrogate Pair Characters Are Treated as Two
        Characters", article 005166849), so a field's limit is not trusted to count it as one.
        A pair is never cut in half."""
        limit = self.lengths.get(name)
        if limit is None or _utf16_units(text) <= limit:
            return text
        room = limit - 1 if limit > 1 else limit  # keep one unit for the "…"
        units = 0
        for end, char in enumerate(text):
            units += 2 if ord(char) > 0xFFFF else 1
            if units > room:
                return text[:end] + ("…" if limit > 1 else "")
        return text


def _utf16_units(text: str) -> int:
    return len(text) + sum(1 for char in text if ord(char) > 0xFFFF)
