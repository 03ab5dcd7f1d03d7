"""§4's engine on realistic values, run on syncd's pure-Python sources in a process of its own:
``python -m bench.engine_pure MIRROR_DB N NOW RUNS`` prints the leads/s of each run as JSON.

The parent (:mod:`bench.engine_speed`) runs the compiled modules (``make native``); this child
imports the same modules from their ``.py`` files (:func:`bench.pure_python.use_sources`) and
times the same passes over the same SQLite mirror, so the two figures differ by the build alone.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path

from bench.pure_python import use_sources


def _rates(db: Path, n: int, now: datetime, runs: int) -> list[float]:
    from bench import engine_speed
    from bench.common import RULES20, SF_STATUS_VALUES
    from bench.realistic import realistic_leads
    from rules import load_rulebook
    from syncd.settings import ConnectorSettings
    from syncd.state import StateStore

    book = load_rulebook([RULES20], newsletters={"newsletter"})
    settings = ConnectorSettings(type="salesforce", status_values=SF_STATUS_VALUES)
    typed = [fields for fields, _ in engine_speed.typed_leads(realistic_leads(n, seed=11, now=now))]
    data = engine_speed.Data("realistic", typed, StateStore(f"sqlite:///{db}"), db)
    out = []
    with engine_speed.daemon_like_heap():  # as in the parent's runs
        for _ in range(runs):
            one, _changing = engine_speed.one_run(data, book, settings, now)
            out.append(one.leads / one.total)
    data.store.close()
    return out


if __name__ == "__main__":
    use_sources()
    db, n, now, runs = sys.argv[1:5]
    rates = _rates(Path(db), int(n), datetime.fromisoformat(now), int(runs))
    sys.stdout.write(json.dumps(rates))
