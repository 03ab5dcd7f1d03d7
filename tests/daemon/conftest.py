"""Fixtures the daemon tests share."""

from __future__ import annotations

from typing import Any

import pytest

from syncd import run_books
from syncd.state import RunRow, StateStore


@pytest.fixture
def starts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The runs whose cycle asked the store its start (``run_books.start``), in order: a cycle
    on kept answers (``syncd.idle_memo``) is not among them."""
    seen: list[str] = []
    original = run_books.start

    def spy(store: StateStore, run: RunRow, *args: Any, **kwargs: Any) -> Any:
        seen.append(run.run_id)
        return original(store, run, *args, **kwargs)

    monkeypatch.setattr(run_books, "start", spy)
    return seen
