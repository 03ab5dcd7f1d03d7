"""The bounded chaos soak (about two minutes), part of `make test`.

`make soak` runs the long one (`python -m tests.soak`) and writes docs/reliability.md.
Each invariant is its own test so a failure names the invariant and the offending leads.
"""

from __future__ import annotations

import pytest

from tests.pgdb import empty_database
from tests.soak.invariants import INVARIANTS, summarize
from tests.soak.scenario import SoakParams, SoakResult, run_soak

pytestmark = pytest.mark.soak


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def soak(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> SoakResult:
    """The bounded soak with the chaos world's state store on each backend: on PostgreSQL a
    pull stores its pages on a store thread (syncd.pull_overlap) and two daemons share no
    file lock, only the lease row."""
    state_url = None
    if request.param == "postgres":
        state_url = empty_database(request.getfixturevalue("postgres_url"), "soak")
    return run_soak(tmp_path_factory.mktemp("soak"), SoakParams(state_url=state_url))


def test_the_soak_injected_faults_and_kills(soak: SoakResult) -> None:
    assert soak.kills + soak.terms >= SoakParams().kills
    assert soak.cycling_signals > 0, "every signal landed in start-up: no cycle was cut short"
    assert soak.dual_rounds == SoakParams().dual_rounds
    assert sum(soak.faults.values()) > 0, "no fault was injected: the soak proved nothing"
    assert soak.rep_edits > 0
    assert all(n > 0 for n in soak.status_writes.values()), "the soak wrote nothing"


def test_the_soak_wrote_through_faulted_composite_requests(soak: SoakResult) -> None:
    assert soak.composite["requests"] > 0, "no Composite request was sent"
    assert soak.composite["faulted"] > 0, "no Composite request was faulted"


def test_the_soak_sent_composite_writes_in_a_row_where_calls_go_ahead(soak: SoakResult) -> None:
    assert soak.composite["in_a_row"] > 0, "no cycle's writes took two Composite calls"


@pytest.mark.parametrize("invariant", list(INVARIANTS))
def test_invariant_holds_after_chaos(soak: SoakResult, invariant: str) -> None:
    violations = soak.violations[invariant]
    assert not violations, summarize({invariant: violations})
