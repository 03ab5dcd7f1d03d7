"""The soak's secret judge: it finds a credential or a Salesforce access token wherever syncd
showed it, and passes what shows neither."""

from __future__ import annotations

from tests.soak.invariants import Observed, no_secret_shown


def _shown(**texts: str) -> Observed:
    return Observed(
        state={},
        journal={},
        outbox=[],
        audit=[],
        shown=texts,
        secrets={"the HubSpot access token": "pat-na1-0123456789abcdef"},
    )


def test_the_secret_judge_names_the_source_showing_a_given_credential() -> None:
    world = _shown(**{"daemon-3": "WARNING retry: Bearer pat-na1-0123456789abcdef refused"})
    assert no_secret_shown(world, world) == ["the HubSpot access token shown in daemon-3"]


def test_the_secret_judge_finds_a_salesforce_access_token_it_was_not_given() -> None:
    session = "00D5g0000000001!AQ8AQ" + "x" * 50
    world = _shown(**{"the audit table": f'[{{"error": "INVALID_SESSION_ID {session}"}}]'})
    assert no_secret_shown(world, world) == ["a Salesforce access token shown in the audit table"]


def test_the_secret_judge_passes_output_that_names_settings_but_shows_no_secret() -> None:
    world = _shown(
        **{
            "daemon-1": "credentials refused: salesforce.connector.auth.client_secret; "
            "lead 00Q5g00000000TDEAY: status changed"
        }
    )
    assert no_secret_shown(world, world) == []
