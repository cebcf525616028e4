"""Accessibility checks with axe-core (WCAG 2.0/2.1 A and AA, plus axe best practice).

axe-core comes from npm (`package.json`, installed into `node_modules` by
`scripts/install-browser`) and is injected into the page under test as a script tag. The
portal sends `Content-Security-Policy: default-src 'self'`, which blocks that inline script, so
pages to check are opened in a browser context with `bypass_csp=True` (the `a11y_page`
fixture): the CSP protects users from injected scripts; here the harness is the injector.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page

__all__ = [
    "AXE_SCRIPT",
    "IMPACTS",
    "RULESETS",
    "AxeNotLoaded",
    "assert_accessible",
    "axe_violations",
    "describe_violations",
]

AXE_SCRIPT = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
RULESETS = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice")
IMPACTS = ("minor", "moderate", "serious", "critical")
SHOWN_TARGETS = 3

_RUN = """(tags) => axe.run(document, {
    runOnly: {type: "tag", values: tags},
    resultTypes: ["violations"],
})"""


class AxeNotLoaded(RuntimeError):
    """axe-core could not be put into the page (not installed, or blocked by the page's CSP)."""


def axe_violations(
    page: Page, *, impacts: Iterable[str] = ("serious", "critical")
) -> list[dict[str, Any]]:
    """Run axe-core on the page and return its violations of the given impacts."""
    wanted = set(impacts)
    unknown = wanted - set(IMPACTS)
    if unknown:
        raise ValueError(f"unknown axe impact(s) {sorted(unknown)}; choose from {IMPACTS}")
    if not AXE_SCRIPT.is_file():
        raise AxeNotLoaded(f"{AXE_SCRIPT} is missing: run scripts/install-browser")
    if not page.evaluate("() => typeof window.axe === 'object'"):
        try:
            page.add_script_tag(path=AXE_SCRIPT)
        except PlaywrightError as exc:
            raise AxeNotLoaded(
                "axe-core could not be injected into the page (open it in a context with "
                f"bypass_csp=True, e.g. the a11y_page fixture): {exc.message}"
            ) from exc
    result: dict[str, Any] = page.evaluate(_RUN, list(RULESETS))
    return [v for v in result["violations"] if v.get("impact") in wanted]


def describe_violations(violations: list[dict[str, Any]]) -> str:
    """Render violations one per line: rule id, impact, help and the first few node targets."""
    lines = []
    for v in violations:
        nodes = v.get("nodes", [])
        targets = [_target(node.get("target", [])) for node in nodes[:SHOWN_TARGETS]]
        more = f" (+{len(nodes) - SHOWN_TARGETS} more)" if len(nodes) > SHOWN_TARGETS else ""
        lines.append(
            f"- {v['id']} [{v.get('impact')}]: {v.get('help', '')} -> {', '.join(targets)}{more}"
        )
    return "\n".join(lines)


def assert_accessible(page: Page, name: str) -> None:
    """Fail, listing each violation, when axe finds serious or critical problems on the page."""
    violations = axe_violations(page)
    if violations:
        raise AssertionError(
            f"{name} ({page.url}): {len(violations)} serious/critical accessibility "
            f"violation(s):\n{describe_violations(violations)}"
        )


def _target(target: list[Any]) -> str:
    # A node inside an iframe or shadow root is a list of selectors, outermost first.
    return " >> ".join(s if isinstance(s, str) else " >>> ".join(map(str, s)) for s in target)
