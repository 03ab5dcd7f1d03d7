"""Every broken config file in tests/config/broken/ is refused with its place and exit 2.

Each file says in its first lines what is wrong (``# broken:``), a phrase the error must
contain (``# expect:``) and, for problems only found by opening the state store, the command
that finds them (``# check: status``; the others use ``rules check -c``, which loads the
config and nothing else). No file may produce a traceback.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from syncd.cli import app as cli

BROKEN = Path(__file__).with_name("broken")
RULES = Path(__file__).parents[2] / "rules" / "default.yaml"
FILES = sorted(BROKEN.glob("*.yaml"))


def _header(path: Path) -> dict[str, str]:
    # NULs dropped so the UTF-16 file's comments read too.
    text = path.read_bytes().replace(b"\x00", b"").decode("utf-8", "replace")
    return dict(re.findall(r"^\W*# (broken|expect|check): (.*)$", text, re.MULTILINE))


def test_the_corpus_covers_at_least_thirty_shapes_each_saying_what_is_wrong() -> None:
    assert len(FILES) >= 30
    for path in FILES:
        header = _header(path)
        assert header.get("broken") and header.get("expect"), path.name


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_broken_config_is_refused_at_its_place_with_exit_2_and_no_traceback(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SYNCD_BROKEN_CORPUS_UNSET", raising=False)
    header = _header(path)
    args = (
        ["status", "-c", str(path)]
        if header.get("check") == "status"
        else ["rules", "check", "-c", str(path), str(RULES)]
    )
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    output = result.output
    assert result.exit_code == 2, output
    assert "Traceback" not in output
    assert re.search(rf"^{re.escape(str(path))}:\d+:\d+: ", output, re.MULTILINE), output
    assert header["expect"] in output, output
