"""A lifecycle stage field: its own vocabulary, a forward order, and declared backward moves.

HubSpot's ``lifecyclestage`` only moves forward through the API; a backward value is not
applied unless the property is cleared first, in a separate request (docs/crm-api.md#c9).
syncd therefore judges every planned stage change against the configured order:

* forward (or into a stage outside the order, or from an empty stage): written once;
* backward along a transition the config declares (``lifecycle.backward``): the connector
  clears the field in its own request, then sets it (:attr:`LeadChange.clear_first`), and the
  audit shows both;
* backward along any other transition: *blocked*, with the reason, as a guard blocks a status
  (shown by ``syncd plan`` and ``syncd explain``), never written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["HUBSPOT_STAGE_ORDER", "LifecyclePolicy", "LifecycleSettings"]

#: HubSpot's default lifecycle stages, in their forward order.
HUBSPOT_STAGE_ORDER: tuple[str, ...] = (
    "subscriber",
    "lead",
    "marketingqualifiedlead",
    "salesqualifiedlead",
    "opportunity",
    "customer",
    "evangelist",
    "other",
)


class LifecycleSettings(BaseModel):
    """``connectors.<name>.lifecycle``: how rules set the CRM's lifecycle stage field."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    field: str = Field(
        "lifecycle_stage",
        description="The canonical field holding the stage (mapped in the connector's fields).",
    )
    values: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Rule value -> the CRM's stage value, e.g. {MQL: marketingqualifiedlead}; values not "
            "listed are written as given."
        ),
    )
    order: list[str] = Field(
        default_factory=lambda: list(HUBSPOT_STAGE_ORDER),
        description=(
            "CRM stage values in forward order (HubSpot's default order unless given; [] for a "
            "field without one)."
        ),
    )
    backward: list[tuple[str, str]] = Field(
        default_factory=list,
        description=(
            "Backward moves rules may make, as [from, to] CRM values: cleared first, then set."
        ),
    )

    @model_validator(mode="after")
    def _backward_in_order(self) -> LifecycleSettings:
        for pair in self.backward:
            unknown = [v for v in pair if v not in self.order]
            if unknown:
                raise ValueError(
                    f"lifecycle.backward {list(pair)}: {unknown} not in lifecycle.order"
                )
            if self.order.index(pair[0]) <= self.order.index(pair[1]):
                raise ValueError(
                    f"lifecycle.backward {list(pair)} is not a backward move in lifecycle.order"
                )
        return self


@dataclass(frozen=True, slots=True)
class Move:
    """What a planned stage change is: blocked (with why), or written (clearing first?)."""

    blocked: str | None = None
    clear_first: bool = False


class LifecyclePolicy:
    """Judges stage changes for one connector instance (see the module docstring)."""

    def __init__(self, settings: LifecycleSettings) -> None:
        self.field = settings.field
        self._to_crm = dict(settings.values)
        self._to_rule = {v: k for k, v in settings.values.items()}
        self._rank = {v: i for i, v in enumerate(settings.order)}
        self._backward = {tuple(p) for p in settings.backward}

    def to_crm(self, value: Any) -> Any:
        return self._to_crm.get(value, value) if isinstance(value, str) else value

    def to_rule(self, value: Any) -> Any:
        return self._to_rule.get(value, value) if isinstance(value, str) else value

    def is_backward(self, before: Any, after: Any) -> bool:
        rank_before, rank_after = self._rank.get(before), self._rank.get(after)
        return rank_before is not None and rank_after is not None and rank_after < rank_before

    def judge(self, before: Any, after: Any) -> Move:
        """Whether the move ``before`` -> ``after`` (CRM values) may be written, and how."""
        if not self.is_backward(before, after):
            return Move()
        if (before, after) in self._backward:
            return Move(clear_first=True)
        return Move(
            blocked=(
                f"{self.field} would move backward from '{before}' to '{after}', which the CRM "
                "does not apply; declare it in lifecycle.backward to clear and set it"
            )
        )


def policy_of(settings: Any) -> LifecyclePolicy | None:
    """The lifecycle policy of a connector instance's settings, if it configures one."""
    lifecycle = getattr(settings, "lifecycle", None)
    return LifecyclePolicy(lifecycle) if isinstance(lifecycle, LifecycleSettings) else None


def clear_first_fields(
    policy: LifecyclePolicy | None,
    rows: Mapping[str, tuple[Any, Any]],
    *,
    restoring: bool = False,
) -> frozenset[str]:
    """Of ``{field: (before, value)}``, the fields to clear before setting. ``restoring``: the
    write puts back a stage a person set that syncd's write overwrote (``syncd.races``); that
    is always a move backward from syncd's value, and the person's stage is put back whether
    or not ``lifecycle.backward`` declares the move, so it is cleared first."""
    if policy is None or policy.field not in rows:
        return frozenset()
    before, value = rows[policy.field]
    if restoring and policy.is_backward(before, value):
        return frozenset({policy.field})
    return frozenset({policy.field}) if policy.judge(before, value).clear_first else frozenset()
