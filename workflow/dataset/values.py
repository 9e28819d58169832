"""Checks for single values read from untrusted JSON: servers' answers and users' files.

Each returns the value in the one form the caller can use, or None, never raising: the caller
decides whether a missing value is a rejection (with a reason) or simply absent.
"""
from __future__ import annotations

from urllib.parse import urlsplit

MAX_ID = 200  # characters of a project or asset id
MAX_TEXT = 2000  # characters of attribution text (artist, title) kept in a manifest
MAX_URL = 8192


def ident(value) -> str | None:
    """A project or asset id as text: a non-empty string or a non-negative integer."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value >= 0:
        return str(value)
    if isinstance(value, str) and value.strip() and len(value) <= MAX_ID:
        return value
    return None


def text(value) -> str | None:
    """Attribution text: strings (truncated) and numbers; anything else is dropped."""
    if isinstance(value, str):
        return value[:MAX_TEXT]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return None


def web_url(value) -> str | None:
    """An absolute http(s) URL with a host, else None."""
    if not isinstance(value, str) or len(value) > MAX_URL:
        return None
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return None
    return value if parts.scheme in ("http", "https") and parts.hostname else None
