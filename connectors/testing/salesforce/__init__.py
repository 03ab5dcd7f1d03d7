"""A loopback HTTPS emulator of the Salesforce REST API surface syncd uses.

Follows ``/work/shared/reference/crm-api-facts.md`` sections A1-A11 and B1-B5: OAuth token
grants (client credentials, JWT bearer), ``query``/``queryAll`` with paging, Lead describe,
sObject Collections update/insert, ``Sforce-Limit-Info``, Salesforce's error shapes, plus fault
injection, a request journal and a controllable clock.
"""

from __future__ import annotations

from .clock import EmulatorClock
from .config import DEFAULT_LEAD_STATUSES, EmulatorConfig, LeadStatusDef
from .faults import Faults
from .journal import Journal, JournalEntry
from .server import SalesforceEmulator

__all__ = ["DEFAULT_LEAD_STATUSES", "EmulatorClock", "EmulatorConfig", "Faults", "Journal",
           "JournalEntry", "LeadStatusDef", "SalesforceEmulator", "generate_jwt_keypair",
           "synthetic_leads"]


def generate_jwt_keypair() -> tuple[bytes, bytes]:
    """A fresh RSA key pair (private PEM, public PEM) for the JWT bearer flow."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public


def synthetic_leads(count: int, *, seed: int = 0):  # type: ignore[no-untyped-def]
    """Yield ``count`` plausible lead records (API field names), deterministic per ``seed``."""
    import random

    rng = random.Random(seed)
    first = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Ken", "Margaret", "Linus", "Radia"]
    last = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Thompson", "Hamilton"]
    titles = ["CEO", "VP Marketing", "Head of Sales", "Software Engineer", "IT Manager",
              "Director of Operations", "Marketing Coordinator", "CFO", "Student"]
    industries = ["Technology", "Finance", "Healthcare", "Retail", "Manufacturing", None]
    domains = ["acme.com", "globex.io", "initech.com", "gmail.com", "umbrella.co"]
    for i in range(count):
        fn, ln = rng.choice(first), rng.choice(last)
        yield {
            "FirstName": fn, "LastName": ln,
            "Email": f"{fn.lower()}.{ln.lower()}{i}@{rng.choice(domains)}",
            "Title": rng.choice(titles), "Company": f"Company {i % 5000}",
            "Industry": rng.choice(industries), "Country": rng.choice(["US", "DE", "FR", "GB"]),
            "NumberOfEmployees": rng.choice([5, 50, 250, 1000, 10000]),
            "AnnualRevenue": float(rng.choice([1e5, 1e6, 1e7, 1e8])),
            "LeadSource": rng.choice(["Web", "Webinar", "Trade Show", "Referral"]),
            "Budget__c": rng.choice([None, "Yes"]), "Need__c": rng.choice([None, "Yes"]),
        }
