"""The daemon's start-up heap is frozen out of the collector's sight, start-up garbage is not."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_freezing_the_startup_heap_keeps_live_objects_and_frees_startup_cycles() -> None:
    # In a child process: freezing is process-wide and must not leak into the test session.
    code = textwrap.dedent(
        """
        import gc, weakref
        from syncd.heap import freeze_startup_heap

        class Node:
            pass

        kept = [Node() for _ in range(100)]
        garbage = Node()
        garbage.self = garbage  # a start-up reference cycle nobody holds any more
        gone = weakref.ref(garbage)
        del garbage
        frozen = freeze_startup_heap()
        assert gone() is None, "start-up garbage was frozen instead of collected"
        assert frozen >= len(kept)
        tracked = {id(o) for o in gc.get_objects()}
        assert not any(id(n) in tracked for n in kept)  # out of the collector's sight
        assert all(isinstance(n, Node) for n in kept)  # and alive
        print(frozen)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) > 0


def test_reference_cycles_made_after_startup_are_still_collected_without_an_explicit_collect() -> (
    None
):
    # The young generation's threshold is raised at start-up, not the collector switched off.
    code = textwrap.dedent(
        """
        import gc, weakref
        from syncd.heap import YOUNG_THRESHOLD, freeze_startup_heap

        class Node:
            pass

        freeze_startup_heap()
        assert gc.isenabled() and gc.get_threshold()[0] == YOUNG_THRESHOLD
        garbage = Node()
        garbage.self = garbage
        gone = weakref.ref(garbage)
        del garbage
        # A cycle's worth of short-lived containers, freed by reference counting.
        for _ in range(50):
            rows = [{"n": i} for i in range(YOUNG_THRESHOLD)]
            del rows
        for _ in range(3 * YOUNG_THRESHOLD):  # allocations that survive trigger collections
            Node().keep = [None]
        kept = [[] for _ in range(3 * YOUNG_THRESHOLD)]
        assert gone() is None, "a reference cycle made after start-up was never collected"
        print(len(kept))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )
    assert out.returncode == 0, out.stderr
