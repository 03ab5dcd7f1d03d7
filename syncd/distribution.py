"""Percentiles of many values in bounded memory (the report's time in stage, first touch).

Up to ``exact_max`` values are kept as they are, and percentiles are exact (nearest rank). Past
that, the values are counted by ``resolution`` (a minute, for durations in days): memory is
then bounded by the number of distinct minutes (a year is 525,600), not by the number of values,
so a report over millions of transitions stays flat; a percentile is then off by at most half a
resolution step.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

__all__ = ["Distribution"]

EXACT_MAX = 100_000


class Distribution:
    __slots__ = ("_counts", "_exact_max", "_n", "_resolution", "_top", "_values")

    def __init__(
        self, resolution: float, values: Iterable[float] = (), *, exact_max: int = EXACT_MAX
    ) -> None:
        self._resolution = resolution
        self._exact_max = exact_max
        self._values: list[float] | None = []
        self._counts: dict[int, int] = {}
        self._n = 0
        self._top: float | None = None
        for v in values:
            self.add(v)

    def add(self, value: float) -> None:
        self._n += 1
        values = self._values
        if values is not None:  # the common case, kept short: the report adds millions
            values.append(value)
            if self._n > self._exact_max:
                self._top = max(values)
                for v in values:
                    self._count(v)
                self._values = None
            return
        if self._top is None or value > self._top:
            self._top = value
        self._count(value)

    def merge(self, other: Distribution) -> None:
        """Add ``other``'s values, as if each had been added here (a report computed in parts:
        the result, exact or counted, is the one a single pass over all the values gives)."""
        if other._n == 0:
            return
        theirs = other._values
        fits = self._n + other._n <= self._exact_max
        if self._values is not None and theirs is not None and fits:
            self._values.extend(theirs)
            self._n += other._n
            return
        if self._values is not None:  # past the cap now: count what was kept
            self._top = max(self._values) if self._values else None
            for v in self._values:
                self._count(v)
            self._values = None
        self._n += other._n
        if theirs is not None:
            for v in theirs:
                self._count(v)
        else:
            for key, count in other._counts.items():
                self._counts[key] = self._counts.get(key, 0) + count
        top = other.max
        if top is not None and (self._top is None or top > self._top):
            self._top = top

    def _count(self, value: float) -> None:
        key = round(value / self._resolution)
        self._counts[key] = self._counts.get(key, 0) + 1

    def __len__(self) -> int:
        return self._n

    @property
    def exact(self) -> bool:
        return self._values is not None

    @property
    def max(self) -> float | None:
        if self._values is not None:
            return max(self._values) if self._values else None
        return self._top

    def percentile(self, q: float) -> float | None:
        """Nearest rank (``q`` in 0..100): the smallest value with at least q % of the values
        at or below it; None for no values."""
        if self._n == 0:
            return None
        rank = max(1, math.ceil(q / 100 * self._n))
        if self._values is not None:
            return sorted(self._values)[rank - 1]
        seen = 0
        for key in sorted(self._counts):
            seen += self._counts[key]
            if seen >= rank:
                return key * self._resolution
        return self._top

    def percentiles(self, qs: Iterable[float]) -> list[float | None]:
        """Several percentiles with one sort."""
        if self._values is not None:
            ordered = sorted(self._values)
            n = len(ordered)
            return [ordered[max(1, math.ceil(q / 100 * n)) - 1] if n else None for q in qs]
        return [self.percentile(q) for q in qs]
