"""The two screen sizes the issue-11 browser tests use, and the check that a page fits a phone."""

from __future__ import annotations

from playwright.sync_api import Page, ViewportSize

__all__ = ["SIZES", "fits_the_viewport"]

SIZES: dict[str, ViewportSize] = {
    "desktop": {"width": 1280, "height": 800},
    "phone": {"width": 390, "height": 844},
}


def fits_the_viewport(page: Page) -> None:
    """Fail when the page is wider than the window (it would scroll sideways on a phone)."""
    width = page.evaluate("() => document.documentElement.scrollWidth")
    viewport = page.evaluate("() => window.innerWidth")
    assert width <= viewport, f"{page.url}: {width} px wide in a {viewport} px viewport"
