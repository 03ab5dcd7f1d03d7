"""Test doubles of the CRMs syncd talks to: HTTP emulators served on loopback.

This is a *testing* package, in the spirit of ``singer_sdk.testing`` or httpx's mock transport:
the connectors never import it. The embedded demo (``syncd run`` on ``config.example.yaml``),
the tests and the benchmarks do. Its extra dependencies (``trustme`` for the Salesforce
emulator's TLS certificate) come with the ``emulators`` extra: ``pip install 'syncd[emulators]'``.

* :mod:`connectors.testing.salesforce` -- the Salesforce REST API over HTTPS.
* :mod:`connectors.testing.hubspot` -- the HubSpot CRM v3 APIs over HTTP.
"""
