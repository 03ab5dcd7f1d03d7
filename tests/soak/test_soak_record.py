"""What docs/reliability.md says about the run it records: the code, the machine, the store."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.soak.__main__ import main, render
from tests.soak.scenario import SoakParams, SoakResult


@pytest.mark.parametrize(
    ("state_url", "store"),
    [(None, "SQLite"), ("postgresql+psycopg://syncd:s3cret-pw@127.0.0.1:5432/soak", "PostgreSQL")],
)
def test_the_soak_record_names_its_commit_machine_and_state_store_and_no_password(
    state_url: str | None, store: str
) -> None:
    result = SoakResult(
        params=SoakParams(state_url=state_url),
        violations={"no change sent twice": []},
        faults=Counter({"salesforce 429": 3}),
    )
    text = render(
        result, "python -m tests.soak", code="abc1234", host="AMD EPYC, 2 cores, CPython 3.11.7"
    )
    lines = text.splitlines()
    assert "- code: commit abc1234, on AMD EPYC, 2 cores, CPython 3.11.7" in lines
    assert f"- state store: {store}" in lines
    assert "s3cret-pw" not in text  # the state URL and its password are never recorded
    assert "| no change sent twice | 0 |" in lines


def test_a_soak_run_outside_a_git_checkout_says_its_commit_was_not_recorded() -> None:
    result = SoakResult(params=SoakParams(), violations={})
    text = render(result, "python -m tests.soak", code="", host="x86_64, 2 cores, CPython 3.11.7")
    assert "- code: commit not recorded (not a git checkout), on x86_64" in text


def test_the_recorded_command_leaves_out_machine_paths_and_the_state_url() -> None:
    from tests.soak.__main__ import _recorded

    given = [
        "--rounds",
        "5",
        "--keep",
        "/tmp/worlds",
        "--out=/tmp/r.md",
        "--state-url",
        "postgresql+psycopg://syncd:s3cret-pw@127.0.0.1/soak",
        "--leads=200",
    ]
    assert _recorded(given) == ["--rounds", "5", "--leads=200"]


def test_the_soak_refuses_a_state_url_beside_its_own_postgresql_server(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as refused:
        main(["--postgres", "--state-url", "postgresql+psycopg://syncd@127.0.0.1/soak"])
    assert refused.value.code == 2
    assert "--postgres starts its own server" in capsys.readouterr().err
