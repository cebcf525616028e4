"""The DICOM peers the media tests use: DCMTK and dicom3tools, installed by scripts/install-dicom.

DCMTK's tools are looked up in /usr/bin first and checked to be DCMTK's: pynetdicom installs
commands of the same names (echoscu, storescu, findscu, …) into the virtual environment.
A missing tool skips the test on a developer's machine and fails it when CI=true.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pydicom
import pytest

__all__ = ["require_dcmtk", "require_tool", "storescu_batches"]

# storescu proposes one family of transfer syntaxes per run (-x… options): JPEG baseline and
# the uncompressed ones with -xy, H.264 High Profile with -xn. -R proposes only the SOP classes
# of the files given (its default list lacks Video Photographic Image Storage).
_PROPOSE = {"1.2.840.10008.1.2.4.102": "-xn"}


def _missing(message: str) -> None:
    message += "; scripts/install-dicom installs dcmtk and dicom3tools"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {message}", pytrace=False)
    pytest.skip(message)


def require_tool(name: str) -> str:
    """Return the path of a command line tool, or skip (fail with CI=true) without it."""
    path = shutil.which(name)
    if path is None:
        _missing(f"{name} is missing")
    assert path is not None
    return path


def require_dcmtk(name: str) -> str:
    """Return the path of DCMTK's `name` (not pynetdicom's namesake), or skip / fail."""
    candidates = [Path("/usr/bin") / name, *(Path(p) / name for p in os.get_exec_path())]
    for candidate in candidates:
        if not os.access(candidate, os.X_OK):
            continue
        run = subprocess.run(
            [str(candidate), "--version"], capture_output=True, text=True, check=False
        )
        if "dcmtk" in (run.stdout + run.stderr).lower():
            return str(candidate)
    _missing(f"DCMTK's {name} is missing")
    raise AssertionError("unreachable")


def storescu_batches(paths: Sequence[Path]) -> list[tuple[list[str], list[Path]]]:
    """The files grouped by the storescu option that proposes their transfer syntax."""
    groups: dict[str, list[Path]] = {}
    for path in paths:
        syntax = str(pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID)
        groups.setdefault(_PROPOSE.get(syntax, "-xy"), []).append(path)
    return [(["-R", option], files) for option, files in groups.items()]
