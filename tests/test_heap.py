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
