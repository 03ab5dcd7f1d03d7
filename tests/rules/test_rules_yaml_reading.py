"""Reading rule files: libyaml (fast) and ruamel.yaml's parser (fallback) give the same data and
positions, YAML 1.2 scalars keep their meaning, and YAML features a rule file cannot use are
located errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import rules.yamldoc
from rules import RuleLoadError, load_ruleset
from rules.yamldoc import YamlContentError, YamlDocument, read_yaml

RULES = Path(__file__).resolve().parents[2] / "rules"
BROKEN = Path(__file__).with_name("broken")
FILES = [RULES / "default.yaml", RULES / "tagging.example.yaml", *sorted(BROKEN.glob("*.yaml"))]

needs_libyaml = pytest.mark.skipif(
    not rules.yamldoc._HAVE_LIBYAML, reason="PyYAML without libyaml: only one parser to compare"
)


def _read(text: str, *, libyaml: bool, monkeypatch: pytest.MonkeyPatch) -> YamlDocument:
    with monkeypatch.context() as patch:
        if not libyaml:
            patch.setattr(rules.yamldoc, "_HAVE_LIBYAML", False)
        return read_yaml(text)


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    children = (
        data.items()
        if isinstance(data, dict)
        else enumerate(data)
        if isinstance(data, list)
        else ()
    )
    for key, value in children:
        yield from _paths(value, (*prefix, key))


def _value(data: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        data = data[step]
    return data


@needs_libyaml
@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_both_parsers_give_the_same_data_and_positions(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = path.read_text(encoding="utf-8")
    try:
        fast = _read(text, libyaml=True, monkeypatch=monkeypatch)
    except Exception as exc:  # noqa: BLE001 - then the fallback must fail the same way
        with pytest.raises(type(exc)):
            _read(text, libyaml=False, monkeypatch=monkeypatch)
        return
    slow = _read(text, libyaml=False, monkeypatch=monkeypatch)
    assert fast.data == slow.data
    assert fast.duplicates == slow.duplicates
    for where in _paths(fast.data):
        if _value(fast.data, where) is None:
            continue  # an empty value has no text of its own; the parsers place it differently
        for at in ("value", "key", "node"):
            assert fast.position(where, at) == slow.position(where, at), (where, at)


@pytest.mark.parametrize("path", sorted(BROKEN.glob("*.yaml")), ids=lambda p: p.stem)
def test_broken_files_report_the_same_issues_without_libyaml(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def issues() -> list[str]:
        with pytest.raises(RuleLoadError) as caught:
            load_ruleset(path, settable_fields=["lead_source"], newsletters=["newsletter"])
        return [str(i) for i in caught.value.issues]

    with_libyaml = issues()
    monkeypatch.setattr(rules.yamldoc, "_HAVE_LIBYAML", False)
    assert issues() == with_libyaml


SCALARS = {
    "NO": "NO",  # Norway, not false: YAML 1.2 has no yes/no/on/off booleans
    "yes": "yes",
    "010": 10,  # no octal without 0o
    "0o17": 15,
    "0x1F": 31,
    "1_000": 1000,
    "-3": -3,
    "+5": 5,
    ".5": 0.5,
    "1e3": 1000.0,
    "true": True,
    "'true'": "true",
    "2026-01-31": "2026-01-31",  # dates stay text; the loader checks them with a location
    "~": None,
    "!!str 12": "12",
    "!!int '5'": 5,
    "=": "=",
}


@pytest.mark.parametrize("libyaml", [True, False], ids=["libyaml", "ruamel"])
@pytest.mark.parametrize("written", sorted(SCALARS))
def test_yaml_1_2_scalars_keep_their_meaning_with_either_parser(
    written: str, libyaml: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = _read(f"value: {written}\n", libyaml=libyaml, monkeypatch=monkeypatch)
    assert doc.data == {"value": SCALARS[written]}
    assert type(doc.data["value"]) is type(SCALARS[written])  # type: ignore[index]


def test_yaml_1_1_directive_reads_yes_as_true() -> None:
    doc = read_yaml("%YAML 1.1\n---\nvalue: yes\noctal: 010\n")
    assert doc.data == {"value": True, "octal": 8}


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_merge_key_fills_in_what_the_mapping_does_not_write(tmp_path: Path) -> None:
    ruleset = load_ruleset(
        _write(
            tmp_path,
            (
                "version: 1\nname: m\nmode: all_match\nstatuses: {New: {}, Open: {}}\nrules:\n"
                "  - &base\n    id: first\n    when: {field: title, eq: CEO}\n"
                "    then: [{set_status: New}]\n"
                "  - <<: *base\n    id: second\n    then: [{set_status: Open}]\n"
            ),
        )
    )
    first, second = ruleset.rules
    assert (second.id, second.status, second.line) == ("second", "Open", 10)
    texts = [r.node.spec.text for r in (first, second) if r.node and r.node.spec]
    assert texts == ["title eq CEO", "title eq CEO"]  # `when` came from the merged rule


def test_anchor_used_inside_itself_is_an_error_at_the_alias(tmp_path: Path) -> None:
    with pytest.raises(RuleLoadError) as caught:
        load_ruleset(
            _write(
                tmp_path,
                "version: 1\nname: x\nrules:\n  - id: r\n"
                "    when: &w {all: [*w]}\n    then: [{stop: {}}]\n",
            )
        )
    (issue,) = caught.value.issues
    assert (issue.line, issue.column, issue.rule_id) == (5, 21, "r")
    assert issue.message.startswith("an anchor refers to itself")


def test_unsupported_tag_is_an_error_at_the_tag(tmp_path: Path) -> None:
    with pytest.raises(RuleLoadError) as caught:
        load_ruleset(
            _write(
                tmp_path,
                "version: 1\nname: x\nstatuses: !!set {New}\nrules:\n"
                "  - id: r\n    then: [{stop: {}}]\n",
            )
        )
    (issue,) = caught.value.issues
    assert (issue.line, issue.column) == (3, 11)
    assert "unsupported YAML tag 'tag:yaml.org,2002:set'" in issue.message


def test_second_document_is_an_error_where_it_starts(tmp_path: Path) -> None:
    with pytest.raises(RuleLoadError) as caught:
        load_ruleset(_write(tmp_path, "version: 1\nname: x\n---\nversion: 1\n"))
    (issue,) = caught.value.issues
    assert (issue.line, issue.column) == (3, 1)
    assert "a second YAML document starts here" in issue.message


def test_undefined_alias_names_the_missing_anchor() -> None:
    with pytest.raises(YamlContentError) as caught:
        read_yaml("a: 1\nb: *nowhere\n")
    assert caught.value.position == (2, 4)
    assert "found undefined alias 'nowhere'" in caught.value.message


def test_empty_value_is_reported_on_the_line_of_its_key(tmp_path: Path) -> None:
    with pytest.raises(RuleLoadError) as caught:
        load_ruleset(
            _write(tmp_path, "version: 1\nname:\nrules:\n  - id: r\n    then: [{stop: {}}]\n")
        )
    (issue,) = caught.value.issues
    assert issue.line == 2
    assert issue.message == "'name' must be text, not an empty value"
