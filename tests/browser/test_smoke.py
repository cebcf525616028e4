"""Smoke tests in chromium: the portal's login page renders and passes axe; the axe check bites."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from playwright.sync_api import Page

from tests.browser.artefacts import SCREENSHOTS_DIR, screenshot
from tests.browser.axe import AxeNotLoaded, assert_accessible, axe_violations

pytestmark = pytest.mark.shared_network  # the login page only reads (tests/conftest.py)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

BROKEN_PAGE = """<!doctype html>
<html lang="nb"><head><meta charset="utf-8"><title>Feil med vilje</title></head>
<body><main><h1>Skjema</h1>
<img src="bilde.png">
<input type="text" name="navn">
</main></body></html>
"""

SOUND_PAGE = """<!doctype html>
<html lang="nb"><head><meta charset="utf-8"><title>I orden</title></head>
<body><main><h1>Skjema</h1>
<img src="bilde.png" alt="Et bilde">
<label for="navn">Navn</label> <input type="text" id="navn" name="navn">
</main></body></html>
"""


class _StaticSite(SimpleHTTPRequestHandler):
    """Serve a folder quietly, with the portal's CSP on every response."""

    def end_headers(self) -> None:
        self.send_header("Content-Security-Policy", "default-src 'self'")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def static_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Serve two tiny pages, one with known accessibility faults, on 127.0.0.1."""
    folder = tmp_path_factory.mktemp("site")
    (folder / "broken.html").write_text(BROKEN_PAGE, encoding="utf-8")
    (folder / "sound.html").write_text(SOUND_PAGE, encoding="utf-8")
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_StaticSite, directory=str(folder))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.mark.slow
def test_login_page_renders_and_has_no_serious_accessibility_violations(
    portal_url: str, a11y_page: Page
) -> None:
    response = a11y_page.goto(f"{portal_url}/helsepersonell/logg-inn")
    assert response is not None and response.status == 200
    assert a11y_page.locator("html").get_attribute("lang") == "nb"
    assert a11y_page.locator("h1").count() == 1
    assert a11y_page.locator('form[action="/helsepersonell/logg-inn"] button').count() == 1
    shot = screenshot(a11y_page, "portal-login")
    assert shot == SCREENSHOTS_DIR / "portal-login.png"
    assert shot.read_bytes().startswith(PNG_SIGNATURE)
    assert_accessible(a11y_page, "login page")


def test_axe_finds_an_image_without_alt_and_an_input_without_label(
    static_site: str, a11y_page: Page
) -> None:
    a11y_page.goto(f"{static_site}/broken.html")
    found = {v["id"]: v for v in axe_violations(a11y_page)}
    assert {"image-alt", "label"} <= set(found), sorted(found)
    assert found["image-alt"]["nodes"][0]["target"] == ["img"]
    with pytest.raises(AssertionError) as failure:
        assert_accessible(a11y_page, "broken page")
    message = str(failure.value)
    assert "broken page" in message and "broken.html" in message
    assert "- image-alt [critical]:" in message and "-> img" in message
    assert "- label [critical]:" in message and "-> input" in message


def test_axe_passes_a_sound_page_and_filters_by_impact(static_site: str, a11y_page: Page) -> None:
    a11y_page.goto(f"{static_site}/sound.html")
    assert_accessible(a11y_page, "sound page")
    a11y_page.goto(f"{static_site}/broken.html")
    assert axe_violations(a11y_page, impacts=("minor",)) == []
    with pytest.raises(ValueError, match="unknown axe impact"):
        axe_violations(a11y_page, impacts=("severe",))


def test_page_keeps_the_csp_so_axe_says_how_to_inject(static_site: str, page: Page) -> None:
    page.goto(f"{static_site}/broken.html")
    with pytest.raises(AxeNotLoaded, match="bypass_csp=True"):
        axe_violations(page)


def test_screenshot_names_are_plain_file_names(page: Page) -> None:
    for bad in ("../escape", "a/b", "", ".hidden"):
        with pytest.raises(ValueError, match="no folders"):
            screenshot(page, bad)
