"""The per-lead work of the compiled modules, as comparable text: enrichment values and reasons,
rule decisions and next-change times of realistic leads (``bench.realistic``) under the
benchmark's 20 rules. ``python -m tests.native.parity --sources N NOW`` computes the same with
every compiled module imported from its ``.py`` source instead."""

from __future__ import annotations

import json
import sys
from datetime import datetime

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
        rule_input = {**lead, **enrichment.values}
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
            repr((sorted(enrichment.values.items()), sorted(enrichment.reasons.items())))
            + f" | {decision!r} | {later.isoformat() if later else None}"
        )
    return lines


if __name__ == "__main__":
    if sys.argv[1] == "--sources":
        use_sources()
    sys.stdout.write(json.dumps(outcomes(int(sys.argv[2]), datetime.fromisoformat(sys.argv[3]))))
