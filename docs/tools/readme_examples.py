"""Regenerate README.md's sample output from a real run of the embedded demo.

    python docs/tools/readme_examples.py           # rewrite the blocks in README.md
    python docs/tools/readme_examples.py --print   # show them, change nothing

Runs ``syncd run`` on a copy of ``config.example.yaml`` (state in a temporary directory, no
HTTP server, cycles every 10 s) until every connector finished two cycles, stops it with
SIGTERM, then runs ``syncd status`` on the same state. Each output replaces the fenced block
that follows its marker comment in README.md (``<!-- example: make-run -->``,
``<!-- example: status -->``). Cycle listings are cut to their first lines, marked ``⋮``.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
LISTED = 3  # audit lines kept per cycle
TIMEOUT = 120.0


def _config(tmp: Path) -> Path:
    text = (REPO / "config.example.yaml").read_text()
    replacements = {
        "sqlite:///var/syncd-state.db": f"sqlite:///{tmp / 'syncd-state.db'}",
        "files: [rules/default.yaml]": f"files: [{REPO / 'rules/default.yaml'}]",
        "fixtures: rules/fixtures/default": "fixtures: null",
        "  enabled: true\n  host: 127.0.0.1": "  enabled: false\n  host: 127.0.0.1",
        "interval: 20s": "interval: 10s",
    }
    for old, new in replacements.items():
        if old not in text:
            raise SystemExit(
                f"config.example.yaml no longer contains {old!r}; update {Path(__file__).name}"
            )
        text = text.replace(old, new)
    path = tmp / "syncd.yaml"
    path.write_text(text)
    return path


def _run_demo(config: Path) -> list[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "100"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "syncd.cli", "run", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=REPO,
    )
    stdout = proc.stdout
    assert stdout is not None
    lines: list[str] = []
    reader = threading.Thread(
        target=lambda: lines.extend(line.rstrip("\n") for line in iter(stdout.readline, "")),
        daemon=True,
    )
    reader.start()
    deadline = time.monotonic() + TIMEOUT
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            cycles = Counter(
                m[1]
                for line in list(lines)
                if (m := re.search(r"syncd\.pipeline: cycle \w+ (\S+): pulled", line))
            )
            if len(cycles) >= 2 and min(cycles.values()) >= 2:
                time.sleep(1.0)  # the cycles' listings follow their log lines
                break
            time.sleep(0.1)
        else:
            raise SystemExit(
                "the demo did not finish two cycles per connector:\n" + "\n".join(lines)
            )
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(timeout=5)
    return lines


def _cut_listings(lines: list[str]) -> list[str]:
    """Keep the first LISTED audit lines of each cycle, and its '… and N more' line; and the
    first LISTED of a run of first-sight holds (one log line a lead), then how many more."""
    out: list[str] = []
    listed = 0
    held = 0
    for line in lines:
        if "before syncd first saw it" in line:
            held += 1
            if held <= LISTED:
                out.append(line)
            continue
        if held > LISTED:
            out.append(f"   ⋮ ({held - LISTED} more leads a person set before syncd saw them)")
        held = 0
        if line.startswith("   ") and not line.startswith("   …"):
            listed += 1
            if listed == LISTED + 1:
                out.append("   ⋮")
            if listed > LISTED:
                continue
        else:
            listed = 0
        out.append(line)
    return out


def _status(config: Path) -> list[str]:
    env = {**os.environ, "COLUMNS": "100"}
    result = subprocess.run(
        [sys.executable, "-m", "syncd.cli", "status", "--config", str(config)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=60,
        check=True,
    )
    return _fold_held(_cut_listings(result.stdout.splitlines()))


def _fold_held(lines: list[str]) -> list[str]:
    """Keep the first LISTED 'held' lines of each connector (the demo holds dozens)."""
    out: list[str] = []
    held = 0
    for line in [*lines, ""]:
        if line.startswith("  held "):
            held += 1
            if held <= LISTED:
                out.append(line)
            continue
        if held > LISTED:
            out.append(f"  ⋮ ({held - LISTED} more held)")
        held = 0
        out.append(line)
    return out[:-1]


def _replace_block(readme: str, marker: str, lines: list[str]) -> str:
    pattern = re.compile(rf"(<!-- example: {re.escape(marker)} -->\n```[^\n]*\n)(.*?)(```)", re.S)
    if not pattern.search(readme):
        raise SystemExit(f"README.md has no block after <!-- example: {marker} -->")
    return pattern.sub(lambda m: m[1] + "\n".join(lines) + "\n" + m[3], readme, count=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--print", action="store_true", help="print, do not rewrite README.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = _config(Path(tmp))
        run = _cut_listings(_run_demo(config))
        status = _status(config)
    if args.print:
        sys.stdout.write("\n".join(["# make run", *run, "", "# syncd status", *status]) + "\n")
        return
    text = _replace_block(README.read_text(), "make-run", run)
    README.write_text(_replace_block(text, "status", status))
    sys.stdout.write(
        f"rewrote the make-run ({len(run)} lines) and status ({len(status)} lines) "
        "examples in README.md\n"
    )


if __name__ == "__main__":
    main()
