"""Screenshots of the imaging viewer for docs/media.md "Viewer (the portals)".

Runs tests/browser/test_viewer.py (the demo network with its media archive and the adult's
synthetic studies) with ONERECORD_DOC_SCREENSHOTS=1, so that its pages are also saved
as docs/screenshots/viewer-*.png (CT with the lung window, the two photos side by side, the
video, the citizen's CT on a phone), then prints each file's size.

Usage: python bench/viewer_screenshots.py
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"


def main() -> int:
    env = {**os.environ, "ONERECORD_DOC_SCREENSHOTS": "1", "CI": "true"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
         "tests/browser/test_viewer.py"],
        cwd=ROOT, env=env, check=False,
    )  # fmt: skip
    for path in sorted(OUT.glob("viewer-*.png")):
        print(f"{path.relative_to(ROOT)}  {path.stat().st_size / 1024:.0f} kB")
    return done.returncode


if __name__ == "__main__":
    raise SystemExit(main())
