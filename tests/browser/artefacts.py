"""Artefacts of the browser tests: full-page screenshots under test-artefacts/ (git-ignored)."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Page

__all__ = ["ARTEFACTS_DIR", "SCREENSHOTS_DIR", "screenshot"]

ARTEFACTS_DIR = Path(__file__).resolve().parents[2] / "test-artefacts"
SCREENSHOTS_DIR = ARTEFACTS_DIR / "screenshots"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def screenshot(page: Page, name: str) -> Path:
    """Save a full-page PNG as test-artefacts/screenshots/<name>.png and return its path."""
    if not _NAME.fullmatch(name) or ".." in name:
        raise ValueError(
            f"screenshot name {name!r}: use letters, digits, '.', '_' or '-' (no folders)"
        )
    SCREENSHOTS_DIR.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS_DIR / f"{name}.png"
    page.screenshot(path=path, full_page=True)
    return path
