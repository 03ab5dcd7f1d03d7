"""syncd's benchmark suite: API calls against the minimum and a naive script, throughput under
HubSpot's rate limits, engine speed against rule-engine, memory and idle cost.

Run with ``make bench`` (``python -m bench``) or ``make bench-quick``; results go to
``docs/benchmarks.md``. See bench/README.md.
"""
