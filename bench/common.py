"""Shared pieces: the status vocabularies, the rule files, timing and profile helpers."""

from __future__ import annotations

import cProfile
import io
import json
import pstats
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = [
    "BENCH_DIR",
    "HS_STATUS_VALUES",
    "RULES20",
    "SF_STATUS_VALUES",
    "Stopwatch",
    "emulator_process",
    "profile_top",
    "salesforce_connector",
]

BENCH_DIR = Path(__file__).resolve().parent
RULES20 = BENCH_DIR / "rules20.yaml"

#: Rule status -> CRM value, as an admin would configure them (config.example.yaml).
SF_STATUS_VALUES = {
    "New": "Open - Not Contacted",
    "Open": "Working - Contacted",
    "Converted": "Closed - Converted",
}
HS_STATUS_VALUES = {
    "New": "NEW",
    "Open": "OPEN",
    "MQL": "MQL",
    "SAL": "SAL",
    "SQL": "OPEN_DEAL",
    "Nurture": "NURTURE",
    "Unqualified": "UNQUALIFIED",
    "Archived": "ARCHIVED",
    "Converted": "CONVERTED",
}


@contextmanager
def emulator_process(module: str, *args: str) -> Iterator[dict[str, Any]]:
    """Run an emulator's standalone CLI (``python -m module args``) for the block.

    Yields the one JSON line it prints (base URL, credentials); SIGTERM ends it afterwards.
    """
    proc = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{module} exited before serving")
        yield json.loads(line)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Stopwatch:
    """Wall and CPU seconds of a ``with`` block."""

    def __enter__(self) -> Stopwatch:
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._wall
        self.cpu = time.process_time() - self._cpu


def profile_top(fn: Callable[[], Any], *, limit: int = 8) -> list[str]:
    """Run ``fn`` under cProfile; the top functions by own time, as Markdown list items."""
    prof = cProfile.Profile()
    prof.enable()
    try:
        fn()
    finally:
        prof.disable()
    stats = pstats.Stats(prof, stream=io.StringIO())
    total = stats.total_tt or 1e-9  # type: ignore[attr-defined]
    rows = []
    for (filename, line, name), (_cc, ncalls, tottime, cumtime, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append((tottime, cumtime, ncalls, _where(filename, line), name))
    rows.sort(reverse=True)
    return [
        f"- `{name}` ({where}): {tot:.2f} s own ({tot / total:.0%}), {cum:.2f} s cumulative, "
        f"{calls:,} calls"
        for tot, cum, calls, where, name in rows[:limit]
    ]


def _where(filename: str, line: int) -> str:
    if filename == "~":
        return "built-in"
    root = str(Path(__file__).resolve().parents[1]) + "/"  # this checkout, wherever it is
    if filename.startswith(root):
        return f"{filename[len(root) :]}:{line}"
    for marker in ("site-packages/", "lib/python3"):
        if marker in filename:
            filename = filename.split(marker, 1)[1]
            break
    return f"{filename}:{line}"


def salesforce_connector(emu: Any, campaign: str) -> dict[str, Any]:
    """A Salesforce connector's settings for the bench's emulator ``emu``, its client secret
    read from ``BENCH_SF_CLIENT_SECRET`` (pass ``emu.client_secret`` there), its newsletter the
    Campaign ``campaign``."""
    return {
        "instance_url": emu.base_url,
        "token_url": emu.token_url,
        "auth": {
            "type": "client_credentials",
            "client_id": emu.client_id,
            "client_secret": {"env": "BENCH_SF_CLIENT_SECRET"},
        },
        "ca_bundle": emu.ca_pem_path,
        "newsletters": {"newsletter": campaign},
    }
