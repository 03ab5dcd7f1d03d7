"""A worker process of the funnel report: ``python -m syncd.report_worker``.

Reads one pickled :class:`syncd.report_parallel.Job` on stdin and writes the pickled
:class:`syncd.report.Partial` of its lead range on stdout. Started only by
:func:`syncd.report_parallel.compute_from_store`, which reads the result.
"""

from __future__ import annotations

import pickle
import sys

from syncd.report_parallel import Job, run_job


def main() -> int:
    job = pickle.load(sys.stdin.buffer)  # from the parent report process, over a pipe
    if not isinstance(job, Job):
        sys.stderr.write("syncd.report_worker: stdin is not a report job\n")
        return 2
    sys.stdout.buffer.write(pickle.dumps(run_job(job), protocol=pickle.HIGHEST_PROTOCOL))
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
