"""Small CLI surfaces: --version, audit by email."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

from tests.daemon.test_cli import _one_audited_lead, invoke, synced  # noqa: F401 - fixture


def test_version_prints_the_package_python_and_platform() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "syncd.cli", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    line = result.stdout.strip()
    assert line.startswith("syncd ") and f"Python {platform.python_version()}" in line
    assert platform.system() in line


def test_audit_accepts_an_email_as_explain_does(synced: Path) -> None:  # noqa: F811
    from syncd.state import StateStore

    lead_id, rule_id, _ = _one_audited_lead(synced)
    url = synced.read_text().split("url: ", 1)[1].split()[0]
    store = StateStore(url)
    email = next(r for r in store.find_leads(lead_id)).fields["email"]
    store.close()
    by_email = invoke("audit", email.upper(), "--config", str(synced))
    assert by_email.exit_code == 0, by_email.output
    assert lead_id in by_email.output and rule_id in by_email.output
    unknown = invoke("audit", "nobody@nowhere.invalid", "--config", str(synced))
    assert unknown.exit_code == 1 and "no audit rows" in unknown.output
