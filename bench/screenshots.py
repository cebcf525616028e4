"""Screenshots of every page of both portals at 1280 × 800 and 390 × 844, for docs/portals.md.

Starts the demo network as the tests do, walks the pages (bench/portal_walk.py) once per size
in Debian's chromium, and writes a full-page PNG of each to
docs/portals/screenshots/<page>-<desktop|phone>.png, then prints each file's size and the total.
The data are the demo's synthetic cast, so the pictures repeat from run to run except for dates.

Usage: scripts/screenshots [--out DIR] [--only PAGE ...]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.portal_walk import PAGES, SIZES, chromium, demo_network, walk  # noqa: E402
from tests.browser.journeys import Cast  # noqa: E402

OUT = ROOT / "docs" / "portals" / "screenshots"


def take(out: Path, only: set[str]) -> list[Path]:
    """Walk both sizes and save the wanted pages; return the files written."""
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with demo_network() as network, chromium() as browser:
        cast = Cast.of(network.manifest)
        for size in SIZES:
            for stop in walk(browser, cast, size):
                if only and stop.name not in only:
                    continue
                path = out / f"{stop.name}-{size}.png"
                stop.page.screenshot(path=path, full_page=True, animations="disabled")
                written.append(path)
                print(
                    f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}", flush=True
                )
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=OUT, help=f"folder for the PNGs ({OUT})")
    parser.add_argument(
        "--only", nargs="*", default=[], choices=PAGES, metavar="PAGE", help="only these pages"
    )
    args = parser.parse_args(argv)
    written = take(args.out, set(args.only))
    total = sum(p.stat().st_size for p in written)
    print(f"{len(written)} screenshots, {total / 1024:.0f} kB in all")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
