"""Test doubles of the CRMs syncd talks to: HTTP emulators served on loopback.

This is a *testing* package, in the spirit of ``singer_sdk.testing`` or httpx's mock transport:
the connectors never import it. The embedded demo (``syncd run`` on ``config.example.yaml``),
the tests and the benchmarks do. Its extra dependencies (``trustme`` for the Salesforce
emulator's TLS certificate) come with the ``emulators`` extra: ``pip install 'syncd[emulators]'``.

* :mod:`connectors.testing.salesforce` -- the Salesforce REST API over HTTPS.
* :mod:`connectors.testing.hubspot` -- the HubSpot CRM v3 APIs over HTTP.
* :mod:`connectors.testing.kit` -- what both are built from: the threaded HTTP(S) server, one
  :class:`~connectors.testing.kit.EmulatorClock`, one :class:`~connectors.testing.kit.Journal`
  and one :class:`~connectors.testing.kit.FaultPlan` (fault kinds documented there).
* :mod:`connectors.testing.leads` -- the one generator of canonical leads every emulator seeds
  from, each in its own wire format.

Separate processes (soak tests)
-------------------------------
``python -m connectors.testing.salesforce`` and ``python -m connectors.testing.hubspot`` take::

    --host 127.0.0.1 --port P --leads N --seed S [--state-file PATH]
    [--fault-rate 0.3 --fault-kinds 429,503,401,lock,partial,drop-before,drop-after,slow,timeout
     --fault-seed N --slow-seconds 1 --timeout-seconds 35] [--simulated-clock]

and print one JSON line on stdout when ready: ``url`` and what a connector needs (Salesforce:
``token_url``, ``ca_pem_path``, ``client_id``, ``client_secret``, campaign ids; HubSpot:
``access_token``, OAuth client and refresh token, list ids). SIGTERM or SIGINT stops them; with
``--state-file`` the state document below is written there first. A fault kind the CRM cannot
produce on a route is never injected there (no ``lock`` on a query, ``partial`` only on HubSpot
batch updates, ``401`` on HubSpot only for OAuth tokens).

Admin API
---------
Served by every emulator under ``/__emulator__/`` (plain JSON; never faulted, never journaled,
never counted as API usage; an error answers 4xx with ``{"error": "..."}``):

``GET /__emulator__/info``
    the ready line again (URLs, credentials, ids).
``GET /__emulator__/journal?since=N``
    ``{"entries": [...], "last": M}``: the API requests with sequence number above ``N``, each
    ``{seq, at, method, path, query, status, request_id, applied, fault, write, records,
    record_ids, written, policy, soql}``. ``status`` 0 means the connection was dropped;
    ``applied`` says whether the request took effect (true for ``drop-after``); ``written``
    are the record ids it changed. Poll with ``since`` = the last ``last``.
``GET /__emulator__/state``
    ``{"crm", "now", "leads": [{id, status, last_modified_by, modified_by_integration,
    modified_at, deleted, fields}], "memberships": [...], "duplicate_memberships": [...]}``.
    ``deleted`` is Salesforce's ``IsDeleted``, HubSpot's archived. HubSpot leads also carry
    ``merged_into``: the id of the live record a merge made of them (they are then not live,
    yet not archived), else null.
    Salesforce memberships are CampaignMember rows (``campaign_id``, ``lead_id``,
    ``member_id``); HubSpot's are list members with ``add_requests``, the number of add calls
    that named the contact. ``duplicate_memberships`` lists ``"<campaign or list>/<lead>"``
    pairs added more than once.
``POST /__emulator__/edit``
    ``{"id": "...", "status": "...", "fields": {...}}``: a person edits the lead (Salesforce:
    ``LastModifiedById`` is a rep, not the integration user; HubSpot: history source
    ``CRM_UI``), stamped with the emulator clock. Answers the lead's new status and stamp.
``POST /__emulator__/merge`` (HubSpot)
    ``{"primary": "1001", "merge": "1002"}``: a person merges two contacts in the UI
    (docs/crm-api.md C12). Answers ``{"id": "..."}``, the new merged record, which has the
    primary's values, both histories and lists; both old ids route to it. An id that is not a
    live contact answers 400.
``GET|POST /__emulator__/faults``
    the fault plan; POST changes it: ``{"rate": 0.3, "kinds": ["429", "drop-after"],
    "seed": 1, "routes": {"batch/update": 0.5}, "slow_seconds": 1, "timeout_seconds": 35,
    "script": [{"kind": "drop-after", "count": 1, "path": "composite", "method": "PATCH"}],
    "clear": true}`` (every key optional; ``clear`` first forgets scripted faults and turns
    random ones off).
``GET|POST /__emulator__/clock``
    ``{"now", "frozen"}``; POST ``{"advance_seconds": 3600}`` moves the clock forward,
    ``{"freeze": true}`` makes it simulated (it then moves only when advanced), ``false``
    real again.
"""
