"""Where the national network's XCA test vectors live: `../shared/xca-vectors/` (data, MIT).

The folder sits beside the main checkout (`/work/main/../shared`); a git worktree lives
elsewhere, so every ancestor of the repository root is tried. ONERECORD_XCA_VECTORS overrides.
Absent vectors skip the tests, except with CI=true, where they fail (as the PostgreSQL tests do).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def _find() -> Path | None:
    override = os.environ.get("ONERECORD_XCA_VECTORS")
    if override:
        return Path(override)
    for ancestor in REPO_ROOT.parents:
        candidate = ancestor / "shared" / "xca-vectors"
        if (candidate / "README.md").is_file():
            return candidate
    return None


def vectors_dir() -> Path:
    """Return the vectors folder, or skip (fail with CI=true) when it is not there."""
    found = _find()
    if found is None or not found.is_dir():
        message = "../shared/xca-vectors is not present next to the repository"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but {message}")
        pytest.skip(message)
    return found


def vector(relative: str) -> bytes:
    """Return the bytes of one vector file, e.g. 'requests/iti38-iti40-request-kj.xml'."""
    return (vectors_dir() / relative).read_bytes()


def request_names() -> list[str]:
    """Every request file name (collected at import; empty when the vectors are absent)."""
    found = _find()
    if found is None:
        return []
    return sorted(p.name for p in (found / "requests").glob("*.xml"))
