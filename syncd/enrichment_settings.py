"""Settings of the enricher (:class:`syncd.enrichment.Enricher`): the ICP and extra free-mail
domains, validated when the config loads.

Kept apart from the enricher so that its per-lead code can be compiled (mypyc compiles plain
classes, not pydantic models; see ``setup.py``).
"""

from __future__ import annotations

import pydantic

from syncd.enrichment_vocab import ROLES, country_code

__all__ = ["EnrichmentSettings", "IcpSettings", "IcpWeights"]


class IcpWeights(pydantic.BaseModel, extra="forbid"):
    """Points each ICP criterion adds to ``icp_score``; they add up to at most 100."""

    industry: int = pydantic.Field(
        default=25, ge=0, le=100, description="Industry is in icp.industries."
    )
    country: int = pydantic.Field(
        default=15, ge=0, le=100, description="Country is in icp.countries."
    )
    company_size: int = pydantic.Field(
        default=20,
        ge=0,
        le=100,
        description="Employee count is within min_employees..max_employees.",
    )
    role: int = pydantic.Field(
        default=10, ge=0, le=100, description="Role (from the title) is in icp.roles."
    )
    decision_maker: int = pydantic.Field(
        default=20, ge=0, le=100, description="Seniority is c_level, vp or director."
    )
    business_email: int = pydantic.Field(
        default=10,
        ge=0,
        le=100,
        description="Email domain is known and not a consumer mail provider.",
    )

    @pydantic.model_validator(mode="after")
    def _total_at_most_100(self) -> IcpWeights:
        total = sum(self.model_dump().values())
        if total > 100:
            raise ValueError(
                f"ICP weights add up to {total}; lower them to a total of at most 100 so that "
                "icp_score stays within 0..100"
            )
        return self


class IcpSettings(pydantic.BaseModel, extra="forbid"):
    """The ideal customer profile leads are scored against (defaults: a mid-market B2B SaaS)."""

    industries: list[str] = pydantic.Field(
        default_factory=lambda: [
            "Software",
            "Computer Software",
            "Technology",
            "Information Technology",
            "Information Technology and Services",
            "Internet",
            "SaaS",
            "Financial Services",
            "Marketing and Advertising",
            "Telecommunications",
            "Consulting",
        ],
        description="Industries that fit, matched case-insensitively with punctuation and '&' vs "
        "'and' ignored, so 'COMPUTER_SOFTWARE' matches 'Computer Software'.",
    )
    countries: list[str] = pydantic.Field(
        default_factory=lambda: [
            "US",
            "CA",
            "GB",
            "IE",
            "DE",
            "AT",
            "CH",
            "NL",
            "FR",
            "SE",
            "DK",
            "NO",
            "FI",
            "AU",
            "NZ",
        ],
        description="Countries served, as ISO 3166-1 alpha-2 codes or common names; lead values "
        "such as 'USA' or 'United States' are recognised as 'US'.",
    )
    min_employees: int = pydantic.Field(
        default=50, ge=0, description="Smallest company that fits (inclusive)."
    )
    max_employees: int | None = pydantic.Field(
        default=5000,
        ge=0,
        description="Largest company that fits (inclusive); null for no upper bound.",
    )
    roles: list[str] = pydantic.Field(
        default_factory=lambda: ["marketing", "sales", "operations", "it"],
        description=f"Functions that buy; any of {', '.join(ROLES)}.",
    )
    weights: IcpWeights = pydantic.Field(
        default_factory=IcpWeights, description="Points per criterion."
    )
    strong_at: int = pydantic.Field(
        default=70, ge=0, le=100, description="icp_score at or above which icp_fit is 'strong'."
    )
    medium_at: int = pydantic.Field(
        default=40, ge=0, le=100, description="icp_score at or above which icp_fit is 'medium'."
    )

    @pydantic.field_validator("countries")
    @classmethod
    def _known_countries(cls, countries: list[str]) -> list[str]:
        for country in countries:
            if country_code(country) is None:
                raise ValueError(
                    f"unknown country {country!r}; use an ISO 3166-1 alpha-2 code such as 'US'"
                )
        return countries

    @pydantic.field_validator("roles")
    @classmethod
    def _known_roles(cls, roles: list[str]) -> list[str]:
        for role in roles:
            if role not in ROLES:
                raise ValueError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
        return roles

    @pydantic.model_validator(mode="after")
    def _ordered_bounds(self) -> IcpSettings:
        if self.max_employees is not None and self.max_employees < self.min_employees:
            raise ValueError(
                f"max_employees ({self.max_employees}) is below min_employees "
                f"({self.min_employees}); raise it or set it to null"
            )
        if self.medium_at > self.strong_at:
            raise ValueError(
                f"medium_at ({self.medium_at}) is above strong_at "
                f"({self.strong_at}); lower medium_at"
            )
        return self


class EnrichmentSettings(pydantic.BaseModel, extra="forbid"):
    """Settings of :class:`Enricher`."""

    icp: IcpSettings = pydantic.Field(
        default_factory=IcpSettings, description="Ideal customer profile for icp_score."
    )
    extra_free_mail_domains: list[str] = pydantic.Field(
        default_factory=list,
        description="Consumer mail domains to add to the built-in list (subdomains match too), "
        "e.g. a regional provider.",
    )
