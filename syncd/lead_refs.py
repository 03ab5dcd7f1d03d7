"""The leads a user names on the command line: by id (a Salesforce Id in either of its forms)
or by email.

The mirror keeps a Salesforce lead under the 18-character Id the API returns; people copy the
15-character one from the UI's URL or a report, or type the 18 in another case. All name the same
lead.
"""

from __future__ import annotations

from collections.abc import Mapping

from connectors.salesforce.ids import canonical
from syncd.records import LeadRecord
from syncd.settings import ConnectorSettings
from syncd.state import StateStore

__all__ = ["find_leads", "lead_id_in"]


def find_leads(
    store: StateStore, connectors: Mapping[str, ConnectorSettings], ref: str
) -> list[LeadRecord]:
    """Leads whose id or email is ``ref`` (``StateStore.find_leads``), else the lead of each
    Salesforce connector in ``connectors`` whose Id ``ref`` is in another form: the
    15-character one, or the 18-character one in another case."""
    found = store.find_leads(ref)
    if found:
        return found
    ref = ref.strip()
    sf_id = canonical(ref)
    return [
        lead
        for crm, cs in connectors.items()
        if cs.type == "salesforce" and sf_id != ref
        for lead in [store.lead(crm, sf_id)]
        if lead is not None
    ]


def lead_id_in(connector: ConnectorSettings, ref: str) -> str:
    """The id the mirror keeps for lead id ``ref`` of ``connector``: a Salesforce Id's
    18-character form as the API returns it, any other id as it is."""
    return canonical(ref.strip()) if connector.type == "salesforce" else ref
