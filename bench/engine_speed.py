"""§4 Engine speed: enrich + evaluate 20 rules + plan, in memory, one core; and rule-engine.

The timed loop is the daemon's per-lead work with the network and the database taken away:
``Enricher.enrich`` on the pulled fields (what ``Pipeline._store_page`` does), then
``Planner.verdict`` on a mirror-row-like object (what ``Pipeline.plan`` does), which builds the
rule input (``rule_lead``) and calls ``RuleBook.evaluate``. The same rule decisions are then
timed alone on prepared lead mappings for syncd and for the rule-engine twin, side by side.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bench.common import RULES20, SF_STATUS_VALUES, Stopwatch, profile_top
from bench.report import Figure, SectionNotes

__all__ = ["run"]


@dataclass(slots=True)
class MirrorRow:
    """The columns of a ``lead`` mirror row that ``Planner.verdict`` reads."""

    lead_id: str
    fields: dict[str, Any]
    enrichment: dict[str, Any]
    status: str | None
    status_changed_at: datetime | None
    newsletters: list[str]
    modified_at: datetime | None = None
    rep_edit_at: datetime | None = None
    rep_edit_status: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    error_at: datetime | None = None
    converted: bool = False


def _jsonable(value: Any) -> Any:
    # As Pipeline._mirror_row stores values: datetimes become ISO strings in the JSON column.
    return value.astimezone(UTC).isoformat() if isinstance(value, datetime) else value


def run(n: int, *, twin_n: int) -> tuple[list[Figure], SectionNotes]:
    """Time ``n`` leads through syncd's path and ``twin_n`` of them through rule-engine."""
    from bench.rule_engine_twin import compile_twin, first_match
    from connectors.testing.leads import generate_scale_leads
    from rules import load_rulebook
    from syncd.enrichment import Enricher, EnrichmentSettings
    from syncd.pipeline import Planner, rule_lead
    from syncd.settings import ConnectorSettings

    notes = SectionNotes(4, "Engine speed (enrich + 20 rules + plan, no network)")
    now = datetime.now(UTC)
    book = load_rulebook([RULES20], newsletters={"newsletter"})
    # As iter_verdicts builds it for a cycle: bound to the cycle's time.
    planner = Planner(
        crm="salesforce",
        book=book,
        settings=ConnectorSettings(type="salesforce", status_values=SF_STATUS_VALUES),
        now=now,
    )
    enricher = Enricher(EnrichmentSettings())

    # Prepared outside the clock: what the connector hands over (typed values, CRM status) and
    # the same lead as the mirror stores it (JSON values).
    prepared = []
    for i, lead in enumerate(generate_scale_leads(n, seed=11, now=now)):
        changed = lead.pop("_status_changed_at", None)
        status = SF_STATUS_VALUES.get(lead["status"], lead["status"])
        typed = {**lead, "status": status}
        prepared.append(
            (f"00Q{i:012d}", typed, {k: _jsonable(v) for k, v in typed.items()}, status, changed)
        )

    def full_path() -> list[Any]:
        out = []
        for lead_id, typed, stored, status, changed in prepared:
            enrichment = enricher.enrich(typed)
            row = MirrorRow(lead_id, stored, enrichment.values, status, changed, [], now)
            out.append((row, planner.verdict(row, now)))
        return out

    with Stopwatch() as full:
        verdicts = full_path()
    changing = sum(1 for _, v in verdicts if v.changes)
    rows = [row for row, _ in verdicts]
    leads = [rule_lead(row, "salesforce", planner.to_rule_status) for row in rows]

    with Stopwatch() as ours:
        decisions = [book.evaluate(lead, now) for lead in leads]
    twin = compile_twin()
    sample = leads[:twin_n]
    with Stopwatch() as theirs:
        twin_ids = [first_match(twin, lead) for lead in sample]
    # The twin runs on the first twin_n leads only: zip stops there. It knows only the first
    # matching rule; a chained decision starts with it.
    agree = sum(
        1
        for d, t in zip(decisions, twin_ids, strict=False)
        if (d.chain[0] if d.chain else d.rule_id) == t
    )

    full_rate = n / full.cpu if full.cpu else 0.0
    eval_rate = n / ours.cpu if ours.cpu else 0.0
    twin_rate = len(sample) / theirs.cpu if theirs.cpu else 0.0
    figures = [
        Figure(
            4,
            "engine_leads_per_s",
            f"enrich + 20 rules + plan, {n:,} leads, one core",
            full_rate,
            "leads/s",
            ">= 50,000 leads/s",
            full_rate >= 50_000,
            f"{n:,} leads in {full.cpu:.2f} s CPU ({full.wall:.2f} s wall); "
            f"{changing:,} would change",
        ),
        Figure(
            4,
            "engine_eval_leads_per_s",
            "syncd RuleBook.evaluate alone",
            eval_rate,
            "leads/s",
            note=f"{n:,} prepared rule inputs in {ours.cpu:.2f} s CPU",
        ),
        Figure(
            4,
            "rule_engine_leads_per_s",
            "rule-engine twin, same rules and leads",
            twin_rate,
            "leads/s",
            note=f"first {len(sample):,} of the same inputs in {theirs.cpu:.2f} s "
            f"CPU; same first-matching rule on {agree:,} of {len(sample):,}",
        ),
        Figure(
            4,
            "engine_vs_rule_engine",
            "syncd evaluate vs rule-engine (speed ratio)",
            eval_rate / twin_rate if twin_rate else None,
            "x",
            ">= 3 x",
            (eval_rate / twin_rate >= 3) if twin_rate else None,
            "evaluation alone on both sides; the full path (with enrichment and planning) "
            f"is {full_rate / twin_rate:.1f} x rule-engine's evaluation alone"
            if twin_rate
            else "",
        ),
        Figure(
            4,
            "twin_agreement",
            "leads where both engines pick the same rule",
            100.0 * agree / len(sample) if sample else None,
            "%",
            "100 %",
            agree == len(sample),
            "checks the twin really is the same rule set",
        ),
    ]
    notes.lines += [
        f"Leads: `connectors.testing.leads.generate_scale_leads({n:,}, seed=11)` (realistic mix of "
        "scenarios and repeating titles/domains, as real orgs have). Rules: "
        "`bench/rules20.yaml`; twin: `bench/rule_engine_twin.py`. CPU time of this single "
        "Python thread (`time.process_time`), so the rate is per core. The enricher's per-value "
        "caches start cold, as in a daemon's first cycle.",
        "",
        f"rule-engine is timed on the first {len(sample):,} leads only: at its speed the whole "
        "set would dominate the run. Rates are per lead, so the ratio is unaffected.",
    ]
    if full_rate < 50_000:
        notes.lines += [
            "",
            "Target missed. Where the time goes (cProfile of 20,000 leads through the full path):",
            "",
        ]
        subset = prepared[:20_000]

        def profiled() -> None:
            for lead_id, typed, stored, status, changed in subset:
                enrichment = enricher.enrich(typed)
                planner.verdict(
                    MirrorRow(lead_id, stored, enrichment.values, status, changed, [], now), now
                )

        notes.lines += profile_top(profiled)
    return figures, notes
