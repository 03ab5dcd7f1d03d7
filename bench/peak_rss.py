"""Run one command and record its peak RSS: ``python -m bench.peak_rss OUT.json -- CMD ...``.

This wrapper has exactly one child, so ``getrusage(RUSAGE_CHILDREN).ru_maxrss`` is that child's
peak resident set size (KiB on Linux), measured by the kernel rather than sampled. The benchmark
runs the emulator elsewhere, so the emulator's memory is never counted.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: python -m bench.peak_rss OUT.json -- CMD [ARGS...]", file=sys.stderr)
        return 2
    out, cmd = argv[0], argv[2:]
    started = time.perf_counter()
    rc = subprocess.call(cmd)
    wall = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(out, "w", encoding="utf-8") as f:
        json.dump(
            {
                "returncode": rc,
                "maxrss_kib": usage.ru_maxrss,
                "wall_s": wall,
                "cpu_s": usage.ru_utime + usage.ru_stime,
            },
            f,
        )
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
