"""Checks of the URLs a connector's settings name, made when the config loads.

A URL without its scheme (``acme.my.salesforce.com``) otherwise reaches the HTTP client, whose
error names neither the setting nor the mistake, and only at the first call that uses it.
"""

from __future__ import annotations

from urllib.parse import urlsplit

__all__ = ["web_url"]


def web_url(value: str, *, https_only: bool, example: str) -> str:
    """``value`` when it is an http(s) URL with a host (``https_only``: https only).

    Raises:
        ValueError: what is wrong and an ``example`` of a right value.
    """
    parts = urlsplit(value.strip())
    schemes = ("https",) if https_only else ("http", "https")
    if parts.scheme not in schemes or not parts.hostname:
        wanted = "an https://" if https_only else "an http:// or https://"
        raise ValueError(
            f"{value!r} is not {wanted} URL with a host; write the whole URL, e.g. {example}"
        )
    return value.strip()
