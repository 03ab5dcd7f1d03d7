"""The per-lead work of the compiled modules, as comparable text: enrichment values and reasons,
rule decisions and next-change times of realistic leads (``bench.realistic``) under the
benchmark's 20 rules; and funnel reports over a seeded ledger. ``python -m tests.native.parity
--sources N NOW`` (or ``--sources --report DB NOW``) computes the same with every compiled
module imported from its ``.py`` source instead."""

from __future__ import annotations

import json
import sys
from datetime import date, datetime, time, timedelta

from bench.pure_python import use_sources

_STATUSES = {"Open": "OPEN", "MQL": "MQL", "SAL": "SAL", "SQL": "OPEN_DEAL", "Nurture": "NURTURE"}


def outcomes(n: int, now: datetime) -> list[str]:
    """One line per lead: its enrichment, the rules' decision and when it could next change."""
    from bench.common import RULES20
    from bench.realistic import realistic_leads
    from rules import load_rulebook
    from syncd.enrichment import Enricher, EnrichmentSettings

    book = load_rulebook([RULES20], newsletters={"newsletter"})
    enricher = Enricher(EnrichmentSettings())
    lines = []
    for lead in realistic_leads(n, seed=5, now=now):
        lead.pop("_status_changed_at", None)
        enrichment = enricher.enrich(lead)
        values = enricher.values(lead)  # what a pull stores: the same values, no reasons
        rule_input = {**lead, **values}
        rule_input["status"] = lead["status"] if lead["status"] in _STATUSES else None
        rule_input["status_changed_at"] = lead.get("created_at")
        d = book.evaluate(rule_input, now)
        decision = (
            d.rule_id,
            d.status,
            d.newsletters,
            sorted(d.field_sets.items()),
            d.archived,
            d.matched_rules,
            [repr(c) for c in d.conflicts],
            repr(d.blocked),
            d.chain,
        )
        later = book.next_change(rule_input, now)
        lines.append(
            repr((sorted(values.items()), sorted(enrichment.reasons.items())))
            + ("" if values == enrichment.values else " | values differ from enrich's")
            + f" | {decision!r} | {later.isoformat() if later else None}"
        )
    return lines


_REPORT_STATUSES = {
    "NEW": "New",
    "MQL": "MQL",
    "SAL": "SAL",
    "SQL": "SQL",
    "CONVERTED": "Converted",
}


def reports(db: str, now: datetime) -> list[str]:
    """The funnel report over the ledger in the SQLite file ``db``, as JSON: by period and by
    cohort, in one pass and in parts (worker processes, whose sums come back pickled), grouped
    by owner, on a calendar with a holiday and its own zone and hours."""
    from rules.calendar import Calendar
    from syncd.report import ReportOptions
    from syncd.report_parallel import compute_from_store
    from syncd.report_render import json_text
    from syncd.state import StateStore

    calendar = Calendar(
        timezone="America/New_York",
        start=time(8, 30),
        end=time(17, 30),
        holidays=frozenset({date(2026, 11, 26), date(2026, 12, 25)}),
    )
    store = StateStore(f"sqlite:///{db}")
    maps = {"hubspot": {"UNQUALIFIED": "Unqualified", "NURTURE": "Nurture", **_REPORT_STATUSES}}
    texts = []
    try:
        for cohort in (False, True):
            options = ReportOptions(
                since=now - timedelta(days=120),
                until=now,
                now=now,
                cohort=cohort,
                calendar=calendar,
                accept_within_hours=8.0,
                acceptance="within_sla_over_mqls" if cohort else "accepted_over_decided",
            )
            for workers in (1, 2):
                found = compute_from_store(store.engine, maps, options, "owner", workers=workers)
                texts.append(json_text(found, {}))
    finally:
        store.close()
    return texts


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[0] == "--sources":
        use_sources()
        args = args[1:]
    if args[0] == "--report":
        sys.stdout.write(json.dumps(reports(args[1], datetime.fromisoformat(args[2]))))
    else:
        sys.stdout.write(json.dumps(outcomes(int(args[0]), datetime.fromisoformat(args[1]))))
