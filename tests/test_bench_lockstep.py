"""bench/lockstep.py: §8's two store sequences set up one after the other, then take turns."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from bench.lockstep import Lockstep, run_in_lockstep


def _sequence(
    name: str, log: list[str], turns: int, *, fail_at: int | None = None
) -> Callable[[Lockstep], str]:
    def job(step: Lockstep) -> str:
        with step.setting_up(name):
            log.append(f"{name}:setup")
            step.ready(name)
        for i in range(turns):
            with step.turn(name):
                if i == fail_at:
                    raise RuntimeError(f"{name} failed at turn {i}")
                log.append(f"{name}:{i}")
        return name

    return job


def test_sequences_set_up_in_order_then_take_their_measured_turns_alternately() -> None:
    log: list[str] = []
    done = run_in_lockstep(
        {"postgresql": _sequence("postgresql", log, 3), "sqlite": _sequence("sqlite", log, 3)}
    )
    assert done == {"postgresql": "postgresql", "sqlite": "sqlite"}
    assert log == [
        "postgresql:setup",
        "sqlite:setup",
        "postgresql:0",
        "sqlite:0",
        "postgresql:1",
        "sqlite:1",
        "postgresql:2",
        "sqlite:2",
    ]


def test_a_sequence_that_fails_gives_up_its_turns_and_its_error_is_raised() -> None:
    log: list[str] = []
    finished = threading.Event()

    def other(step: Lockstep) -> str:
        result = _sequence("sqlite", log, 4)(step)
        finished.set()
        return result

    with pytest.raises(RuntimeError, match="postgresql failed at turn 1"):
        run_in_lockstep({"postgresql": _sequence("postgresql", log, 4, fail_at=1), "sqlite": other})
    assert finished.is_set()  # not left waiting for the failed sequence's turns
    assert [e for e in log if e.startswith("sqlite:") and e != "sqlite:setup"] == [
        f"sqlite:{i}" for i in range(4)
    ]


def test_a_sequence_that_fails_while_setting_up_lets_the_other_run_alone() -> None:
    log: list[str] = []

    def broken(step: Lockstep) -> str:
        with step.setting_up("sqlite"):
            raise RuntimeError("seeding failed")

    with pytest.raises(RuntimeError, match="seeding failed"):
        run_in_lockstep({"sqlite": broken, "postgresql": _sequence("postgresql", log, 2)})
    assert log == ["postgresql:setup", "postgresql:0", "postgresql:1"]
