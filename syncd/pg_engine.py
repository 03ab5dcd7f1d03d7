"""Engine options for a state store on PostgreSQL, where every statement is a round trip.

* ``pool_use_lifo``: the pool hands out the connection used last. A cycle runs its statements
  one after another, so one connection serves them all, and its server process (warm in the
  CPU's caches, its prepared statements and plans at hand) answers every one; a FIFO pool
  rotates through all of them.
* ``prepare_threshold=1``: psycopg prepares a statement on the server the second time a
  connection runs it (the default waits for the fifth), so the statements a cycle repeats are
  parsed and planned once per connection, not once per run. A statement run once (a
  migration, a report) is not prepared.

No ``pool_pre_ping``: it costs a round trip on every checkout; a connection the server closed
fails its statement, which the cycle reports and retries at its next run.
"""

from __future__ import annotations

from typing import Any

__all__ = ["postgres_engine_options"]


def postgres_engine_options() -> dict[str, Any]:
    """``create_engine`` keyword arguments for a ``postgresql+psycopg`` URL."""
    return {"pool_use_lifo": True, "connect_args": {"prepare_threshold": 1}}
