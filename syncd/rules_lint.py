"""Checks ``syncd rules check`` adds to loading: things that load but are likely mistakes.

An empty ``when:`` (written, but with nothing under it) loads as "always matches", exactly as
an omitted one: almost always an edit left half-done, and in a first_match set it shadows
every rule after it. The loader accepts it, so the check warns.
"""

from __future__ import annotations

from pathlib import Path

from rules.yamldoc import read_yaml

__all__ = ["empty_when_warnings", "set_name"]


def empty_when_warnings(path: Path) -> list[str]:
    """``file:line:col: warning: rule 'id': ...`` for each rule whose ``when`` is empty.

    A file that does not parse gives no warnings here: loading reports it.
    """
    try:
        doc = read_yaml(path.read_text(encoding="utf-8"))
    except Exception:  # noqa: BLE001 - the loader reports unreadable files, with places
        return []
    rules = doc.data.get("rules") if isinstance(doc.data, dict) else None
    if not isinstance(rules, list):
        return []
    warnings = []
    for index, rule in enumerate(rules):
        if not isinstance(rule, dict) or "when" not in rule:
            continue
        if rule["when"] in (None, {}, []):
            line, col = doc.position(("rules", index, "when"), at="key")
            warnings.append(
                f"{path}:{line}:{col}: warning: rule '{rule.get('id')}': `when` is "
                "empty, so the rule matches every lead; add the conditions, or "
                "remove `when:` if the rule is meant to always apply"
            )
    return warnings


def set_name(path: Path) -> str | None:
    """The ``name`` a rule file declares, read without loading it (None if unreadable)."""
    try:
        doc = read_yaml(path.read_text(encoding="utf-8"))
    except Exception:  # noqa: BLE001 - a file that does not parse has no name to match
        return None
    name = doc.data.get("name") if isinstance(doc.data, dict) else None
    return name if isinstance(name, str) else None
