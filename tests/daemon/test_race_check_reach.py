"""The race check looks at people's edits from shortly before the cycle's read, however many
Composite calls the cycle's writes take: a start that moved back with every call took in the
edits the pull had already read, a query-more call per 2,000 of them."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from syncd.races import CHECK_REACH
from tests.daemon.harness import running_app, sf_lead, write_config
from tests.daemon.test_ledger import STALE_RULES

BATCH = 10  # salesforce.batch_size: 11 status collections take 3 Composite calls
_SINCE = re.compile(r"CreatedDate >= (\S+)")


def test_the_race_check_of_a_cycle_of_several_composite_calls_reaches_back_only_once(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path, rules=STALE_RULES, crms=("salesforce",))
    config.write_text(
        config.read_text().replace("lag_seconds: 0", f"lag_seconds: 0\n    batch_size: {BATCH}")
    )
    with running_app(config) as app:
        emu: Any = app.embedded.salesforce
        emu.add_leads(
            sf_lead(f"L{i}", f"l{i}@acme{i}.com", title="CTO", activity_days=200)
            for i in range(11 * BATCH)
        )
        start = len(emu.journal.entries())
        report = app.pipelines["salesforce"].run_cycle()
        journal = emu.journal.entries()[start:]
        started = app.store.last_runs(1, crm="salesforce")[0].started_at
    assert report.outcome == "ok", report.message
    composite = [e for e in journal if e.path.endswith("/composite") and e.is_write]
    assert len(composite) == 3
    checks = [
        s.soql for e in composite for s in e.subrequests if "FROM LeadHistory" in (s.soql or "")
    ]
    assert len(checks) == 1, checks
    found = _SINCE.search(checks[0] or "")
    assert found is not None, checks[0]
    since = datetime.fromisoformat(found.group(1))
    if started.tzinfo is None:
        started = started.replace(tzinfo=UTC)
    # One reach before the read (the run starts just before it), not one per write call.
    assert started.replace(microsecond=0) - CHECK_REACH - since <= CHECK_REACH / 30
