"""``log.level`` (README "Configuration": default ``INFO``) decides which records syncd writes,
set in the file or by ``SYNCD_LOG__LEVEL``. Each case runs in its own interpreter: logging is
configured once per process, as the daemon does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).parents[2]

_SCRIPT = """
import logging, sys
from pathlib import Path
from syncd.logs import setup_logging
from syncd.settings import load_settings
setup_logging(load_settings(Path(sys.argv[1])).log)
log = logging.getLogger("syncd.test")
log.debug("record at DEBUG")
log.info("record at INFO")
log.warning("record at WARNING")
log.error("record at ERROR")
"""


@pytest.mark.parametrize(
    ("in_file", "variable", "written"),
    [
        ("", None, ["INFO", "WARNING", "ERROR"]),
        ("log: {level: WARNING}\n", None, ["WARNING", "ERROR"]),
        ("log: {level: ERROR}\n", None, ["ERROR"]),
        ("log: {level: WARNING}\n", "DEBUG", ["DEBUG", "INFO", "WARNING", "ERROR"]),
    ],
    ids=["default_info", "warning_in_the_file", "error_in_the_file", "debug_by_the_variable"],
)
def test_syncd_writes_the_records_at_or_above_log_level_when_it_is_set(
    tmp_path: Path, in_file: str, variable: str | None, written: list[str]
) -> None:
    config = tmp_path / "syncd.yaml"
    config.write_text(in_file)
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("SYNCD_")}
    env["PYTHONPATH"] = str(REPO)
    if variable is not None:
        env["SYNCD_LOG__LEVEL"] = variable
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    shown = [
        level for level in ("DEBUG", "INFO", "WARNING", "ERROR") if f"at {level}" in proc.stderr
    ]
    assert shown == written, proc.stderr
