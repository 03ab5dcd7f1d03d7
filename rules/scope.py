"""Which connectors a rule can apply to, read from its condition alone (no I/O).

A rule book is shared by every connector instance; a rule scoped to one of them says so in its
condition with the mirror's ``crm`` (the connector type) and ``connector`` (the instance name)
fields. :func:`can_apply` reads that scope for callers that need to know what a rule may do on
one connector (the fields whose edits by a person hold a lead, ``syncd.holds``).
"""

from __future__ import annotations

from rules.conditions import Node
from rules.engine import CompiledRule

__all__ = ["can_apply"]

#: Comparisons whose truth for a lead's ``crm``/``connector`` depends on those values alone.
_SCOPE_OPS = frozenset({"eq", "ne", "in", "not_in"})
_SCOPE_FIELDS = frozenset({"crm", "connector"})


def can_apply(rule: CompiledRule, *, crm: str, connector: str) -> bool:
    """False only when a test of the rule's top-level condition (the whole condition, or a
    conjunct of a top-level ``all``, nested ``all`` included) on ``crm`` or ``connector`` is
    false for this connector type and instance name: then no lead of that connector matches
    the rule. Any other condition (``any``, ``not``, a test of another field) may hold, so the
    rule counts: the answer errs towards True, never towards False."""
    node = rule.node
    if node is None:
        return True
    probe = {"crm": crm, "connector": connector}
    return all(leaf.fn(probe, ()) for leaf in _scope_tests(node))


def _scope_tests(node: Node) -> list[Node]:
    """The leaves of ``node`` that must all hold for it to hold and read only the scope."""
    if node.kind == "all":
        return [leaf for child in node.children for leaf in _scope_tests(child)]
    spec = node.spec
    scope_test = spec is not None and spec.field in _SCOPE_FIELDS and spec.op in _SCOPE_OPS
    return [node] if node.kind == "leaf" and scope_test else []
