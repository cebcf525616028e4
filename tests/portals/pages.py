"""Helpers for reading the portal's pages in tests."""

from __future__ import annotations

import re

import httpx

__all__ = ["csrf_token", "set_cookie_header"]


def csrf_token(page: httpx.Response) -> str:
    """Return the CSRF token of the first form on a page."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match, page.text[:2000]
    return match.group(1)


def set_cookie_header(response: httpx.Response) -> str:
    """Return the one Set-Cookie header of a response."""
    values = response.headers.get_list("set-cookie")
    assert len(values) == 1, values
    return values[0]
