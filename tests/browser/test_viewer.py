"""The imaging viewer in chromium (issue 14), against real STS, sources, hub, archive and portal.

The worker's shared demo network (`shared_network`, docs/testing.md) with Helse Nord's media
archive, which the demo loads with the adult's studies (tests/browser/imaging.py): a CT, a
radiograph, an ultrasound cine, two photographs of a lesion and a wound clip, their manifests
published to the region's source as the archive publishes them. A health worker and the
citizen open the studies from the document list; the pixels come through the portal's proxy
and the hub's DICOMweb route with the user's own token. axe-core on every page; phone width
too. The study the citizen blocks is unblocked in a `finally`.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from playwright.sync_api import Browser, Page, expect

from onerecord.portals.i18n import Translator
from tests.browser.artefacts import screenshot
from tests.browser.axe import assert_accessible
from tests.browser.blocks import lift_document_block
from tests.browser.conftest import LOCALE
from tests.browser.imaging import DemoImaging, demo_imaging
from tests.browser.sizes import SIZES, fits_the_viewport
from tests.browser.test_accessibility import log_in
from tests.browser.test_portals import hcp_open_patient
from tests.network.conftest import Network

pytestmark = [pytest.mark.slow, pytest.mark.shared_network]

NB = Translator("nb")
DOCS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture(scope="module")
def patient(network: Network) -> str:
    return str(network.manifest["patients"]["adult"])


@pytest.fixture(scope="module")
def imaging(network: Network, patient: str) -> DemoImaging:
    return demo_imaging(network, patient)


def _page(browser: Browser, size: str = "desktop", *, javascript: bool = True) -> Page:
    context = browser.new_context(
        locale=LOCALE, viewport=SIZES[size], bypass_csp=True, java_script_enabled=javascript
    )
    return context.new_page()


def _shot(page: Page, name: str) -> None:
    """A screenshot for the tests' artefacts; also into docs/screenshots/ when asked
    (`ONERECORD_DOC_SCREENSHOTS=1`, as bench/viewer_screenshots.py runs this module)."""
    screenshot(page, name)
    if os.environ.get("ONERECORD_DOC_SCREENSHOTS") == "1":
        page.screenshot(path=DOCS / f"{name}.png", full_page=True, animations="disabled")


def _loaded(page: Page, selector: str) -> None:
    """Every image under `selector` has arrived and decoded (naturalWidth > 0).

    Polled from here: wait_for_function's polling does not run in a page without JavaScript.
    """
    check = "is => is.length > 0 && is.every(i => i.complete && i.naturalWidth > 0)"
    deadline = time.monotonic() + 30
    while not page.locator(selector).evaluate_all(check):
        assert time.monotonic() < deadline, f"{selector} did not load on {page.url}"
        time.sleep(0.1)


def _open(page: Page, portal_url: str, area: str, title: str, nth: int = 0) -> None:
    page.goto(f"{portal_url}/{area}/{'oversikt' if area == 'helsepersonell' else 'dokumenter'}")
    page.goto(f"{page.url.split('?')[0]}?antall=200")
    link = page.get_by_role("main").get_by_role("link", name=title, exact=True).nth(nth)
    link.click()
    expect(page).to_have_url(re.compile(rf"/{area}/dokument/"))


def _hcp(browser: Browser, portal_url: str, network: Network, patient: str, size: str) -> Page:
    page = _page(browser, size)
    hcp_open_patient(page, portal_url, network, patient, shots=False)
    return page


def test_health_worker_scrolls_a_ct_changes_the_window_and_zooms(
    browser: Browser, portal_url: str, network: Network, patient: str, imaging: DemoImaging
) -> None:
    page = _hcp(browser, portal_url, network, patient, "desktop")
    try:
        _open(page, portal_url, "helsepersonell", imaging.ct.title)
        expect(page.get_by_role("heading", level=1)).to_contain_text("CT abdomen")
        header = page.locator("dl.study-header")
        expect(header).to_contain_text("CT")
        expect(header).to_contain_text("Abdomen")
        expect(header).to_contain_text(str(network.manifest["regions"][imaging.region]["name"]))
        _loaded(page, ".series-strip img")
        image = page.locator("img.viewer-image")
        _loaded(page, "img.viewer-image")
        first = image.evaluate("i => i.src")
        assert first is not None and "/bilder/studies/" in first and first.endswith("/rendered")
        first_bytes = page.request.get(first).body()
        # Another slice: the arrow key on the image pane, then the wheel.
        pane = page.get_by_role("group", name=NB("imaging.pane.label"))
        pane.focus()
        page.keyboard.press("ArrowDown")
        expect(page.locator(".viewer .position")).to_have_text(
            NB("imaging.position", index=2, count=len(imaging.ct.instances))
        )
        second = image.evaluate("i => i.src")
        assert second is not None and second != first
        _loaded(page, "img.viewer-image")
        answer = page.request.get(second)
        assert answer.status == 200 and answer.headers["content-type"] == "image/png"
        assert answer.body() != first_bytes
        pane.hover()
        page.mouse.wheel(0, 120)
        expect(page.locator(".viewer .position")).to_have_text(
            NB("imaging.position", index=3, count=len(imaging.ct.instances))
        )
        expect(page).to_have_url(re.compile(r"bilde=3"))
        # The slider.
        page.get_by_label(NB("imaging.slider")).fill("5")
        expect(page.locator(".viewer .position")).to_have_text(
            NB("imaging.position", index=5, count=len(imaging.ct.instances))
        )
        # A window preset: the rendered request carries window= (PS3.18 §8.3.5.1.3).
        with page.expect_response(lambda r: "/rendered?window=" in r.url) as got:
            page.get_by_role("link", name=NB("imaging.window.lunge")).click()
        assert got.value.status == 200
        assert "window=-600%2C1500%2Clinear" in got.value.url
        expect(page.get_by_role("link", name=NB("imaging.window.lunge"))).to_have_attribute(
            "aria-current", "true"
        )
        _loaded(page, "img.viewer-image")
        # Zoom with the buttons and the keys.
        page.get_by_role("button", name=NB("imaging.zoom.in")).click()
        expect(page.locator(".zoom-level")).to_have_text(NB("imaging.zoom.level", percent=150))
        pane.focus()
        page.keyboard.press("+")
        expect(page.locator(".zoom-level")).to_have_text(NB("imaging.zoom.level", percent=200))
        page.keyboard.press("0")
        expect(page.locator(".zoom-level")).to_have_text(NB("imaging.zoom.level", percent=100))
        _shot(page, "viewer-ct-desktop")
        assert_accessible(page, "viewer-ct")
    finally:
        page.context.close()


def test_a_slice_through_portal_hub_and_archive_is_quick(
    browser: Browser, portal_url: str, network: Network, patient: str, imaging: DemoImaging
) -> None:
    """Each slice of the CT through the proxy, the hub and the archive (rendered PNG), timed
    as the browser's request context asks it: the median is bounded loosely."""
    page = _hcp(browser, portal_url, network, patient, "desktop")
    try:
        _open(page, portal_url, "helsepersonell", imaging.ct.title)
        _loaded(page, "img.viewer-image")
        base = page.locator("[data-viewer]").evaluate("v => v.dataset.seriesUrl")
        # The first six slices of the demo's CT (20 slices of 512 × 512), three times each.
        uids = page.locator("[data-viewer]").evaluate("v => v.dataset.instances").split()[:6]
        origin = portal_url.rstrip("/")
        timings = []
        for round_ in range(3):
            for uid in uids:
                window = "?window=40%2C400%2Clinear" if round_ else ""
                started = time.perf_counter()
                answer = page.request.get(f"{origin}{base}/instances/{uid}/rendered{window}")
                timings.append(time.perf_counter() - started)
                assert answer.status == 200 and answer.body()[:4] == b"\x89PNG"
        timings.sort()
        median = timings[len(timings) // 2]
        # Measured on the 2-core CI machine with 128 × 128 slices: median 19 ms, max 52 ms over
        # 18; the demo's are 512 × 512, and the bound stays loose.
        assert median < 1.0, f"median {median * 1000:.0f} ms, max {timings[-1] * 1000:.0f} ms"
    finally:
        page.context.close()


def test_every_control_is_reached_by_keyboard_with_a_visible_focus(
    browser: Browser, portal_url: str, network: Network, patient: str, imaging: DemoImaging
) -> None:
    page = _hcp(browser, portal_url, network, patient, "desktop")
    try:
        _open(page, portal_url, "helsepersonell", imaging.ct.title)
        _loaded(page, "img.viewer-image")
        wanted = {
            "pane": ".image-pane",
            "lung": "a[data-preset=lunge]",
            "zoom": "button[data-zoom=in]",
            "slider": "input[type=range]",
            "series": ".series-strip a",
        }
        reached: set[str] = set()
        for _ in range(80):
            page.keyboard.press("Tab")
            for name, selector in wanted.items():
                if page.evaluate(f"() => document.activeElement.matches({selector!r})"):
                    reached.add(name)
                    outline = page.evaluate(
                        "() => getComputedStyle(document.activeElement).outlineStyle"
                    )
                    assert outline != "none", name
            if reached == set(wanted):
                break
        assert reached == set(wanted)
    finally:
        page.context.close()


def test_an_ultrasound_cine_scrolls_through_its_frames(
    browser: Browser, portal_url: str, network: Network, patient: str, imaging: DemoImaging
) -> None:
    page = _hcp(browser, portal_url, network, patient, "desktop")
    try:
        _open(page, portal_url, "helsepersonell", imaging.cine.title)
        _loaded(page, "img.viewer-image")
        position = page.locator(".viewer .position")
        expect(position).to_have_text(NB("imaging.position", index=1, count=12))
        image = page.locator("img.viewer-image")
        assert image.evaluate("i => i.src").endswith("/frames/1/rendered")
        page.get_by_role("group", name=NB("imaging.pane.label")).focus()
        page.keyboard.press("End")
        expect(position).to_have_text(NB("imaging.position", index=12, count=12))
        assert image.evaluate("i => i.src").endswith("/frames/12/rendered")
        _loaded(page, "img.viewer-image")
    finally:
        page.context.close()


def test_health_worker_compares_two_photos_of_the_same_lesion(
    browser: Browser, portal_url: str, network: Network, patient: str, imaging: DemoImaging
) -> None:
    page = _hcp(browser, portal_url, network, patient, "desktop")
    try:
        _open(page, portal_url, "helsepersonell", imaging.photos[0].title)
        _loaded(page, "img.viewer-image")
        compare = page.get_by_role("region", name=NB("imaging.compare.heading"))
        compare.get_by_role("link").first.click()
        expect(page.get_by_role("heading", level=1)).to_have_text(NB("imaging.compare.title"))
        figures = page.locator(".photo-pair figure")
        expect(figures).to_have_count(2)
        _loaded(page, ".photo-pair img")
        srcs = page.locator(".photo-pair img").evaluate_all("is => is.map(i => i.src)")
        studies = {re.search(r"/studies/([0-9.]+)/", s).group(1) for s in srcs}  # type: ignore[union-attr]
        assert len(studies) == 2
        # Older first: the captions' dates ascend.
        boxes = [figures.nth(i).bounding_box() for i in range(2)]
        assert boxes[0] and boxes[1] and boxes[0]["x"] < boxes[1]["x"]
        _shot(page, "viewer-photos-desktop")
        assert_accessible(page, "viewer-photos")
    finally:
        page.context.close()


def test_video_plays_through_the_proxy_with_ranges(
    browser: Browser, portal_url: str, network: Network, patient: str, imaging: DemoImaging
) -> None:
    page = _hcp(browser, portal_url, network, patient, "desktop")
    try:
        _open(page, portal_url, "helsepersonell", imaging.clip.title)
        video = page.locator("video.viewer-video")
        expect(video).to_have_attribute("controls", "")
        src = video.evaluate("v => v.src")
        assert src is not None and src.endswith("/rendered")
        whole = page.request.get(src)
        part = page.request.get(src, headers={"range": "bytes=0-99"})
        assert (whole.status, part.status) == (200, 206), (whole.status, part.status)
        assert whole.headers["content-type"] == "video/mp4"
        assert part.headers["content-range"].startswith("bytes 0-99/")
        assert part.body() == whole.body()[:100]
        # Seeking: the browser asks for ranges and moves the playhead.
        page.wait_for_function("() => document.querySelector('video').readyState >= 1")
        page.evaluate("() => { document.querySelector('video').currentTime = 0.5; }")
        page.wait_for_function("() => !document.querySelector('video').seeking")
        assert page.evaluate("() => document.querySelector('video').currentTime") > 0.4
        _shot(page, "viewer-video-desktop")
        assert_accessible(page, "viewer-video")
    finally:
        page.context.close()


def test_citizen_opens_their_own_study_on_a_phone(
    browser: Browser, portal_url: str, patient: str, imaging: DemoImaging
) -> None:
    page = _page(browser, "phone")
    try:
        log_in(page, portal_url, "innbygger", patient)
        expect(page).to_have_url(re.compile(r"/innbygger/"))
        _open(page, portal_url, "innbygger", imaging.ct.title)
        _loaded(page, ".series-strip img")
        _loaded(page, "img.viewer-image")
        fits_the_viewport(page)
        pane = page.get_by_role("group", name=NB("imaging.pane.label"))
        pane.focus()
        page.keyboard.press("ArrowDown")
        expect(page.locator(".viewer .position")).to_have_text(
            NB("imaging.position", index=2, count=len(imaging.ct.instances))
        )
        _shot(page, "viewer-ct-citizen-phone")
        assert_accessible(page, "viewer-ct-citizen-phone")
        # Photos side by side become one above the other.
        _open(page, portal_url, "innbygger", imaging.photos[0].title)
        page.get_by_role("region", name=NB("imaging.compare.heading")).get_by_role(
            "link"
        ).first.click()
        _loaded(page, ".photo-pair img")
        fits_the_viewport(page)
        boxes = [page.locator(".photo-pair figure").nth(i).bounding_box() for i in range(2)]
        assert boxes[0] and boxes[1] and boxes[0]["y"] < boxes[1]["y"]
        assert_accessible(page, "viewer-photos-citizen-phone")
    finally:
        page.context.close()


def test_citizen_cannot_reach_another_study_through_the_proxy(
    browser: Browser, portal_url: str, patient: str, imaging: DemoImaging
) -> None:
    page = _page(browser)
    try:
        log_in(page, portal_url, "innbygger", patient)
        _open(page, portal_url, "innbygger", imaging.ct.title)
        _loaded(page, "img.viewer-image")
        base = page.url.split("?")[0]
        ct, other = imaging.ct, imaging.radiograph
        own = f"{base}/bilder/studies/{ct.uid}"
        assert page.request.get(f"{own}/thumbnail").status == 200
        series = ct.series
        refused = {
            # another study of the same patient, named by this page's document: not its manifest's
            f"{base}/bilder/studies/{other.uid}/thumbnail": 404,
            f"{base}/bilder/studies/1.2.3.4/thumbnail": 404,
            f"{own}/series/{other.series}/thumbnail": 404,
            f"{own}/series/{series}/instances/{other.instances[0]}/rendered": 404,
            f"{own}/series/{series}/instances/{ct.instances[0]}/frames/1": 404,
            f"{own}/series/{series}/instances/{ct.instances[0]}/rendered?window=1,0": 400,
            f"{own}/series/{series}/instances/{ct.instances[0]}/rendered?viewport=1,1": 400,
            f"{own}/studies": 404,
            f"{base}/bilder/studies/x/thumbnail": 400,
        }
        for url, status in refused.items():
            assert page.request.get(url).status == status, url
        # A document that is no study has no pixels.
        page.goto(f"{portal_url}/innbygger/dokumenter?antall=200")
    finally:
        page.context.close()


def test_without_javascript_thumbnails_and_links_work(
    browser: Browser, portal_url: str, patient: str, imaging: DemoImaging
) -> None:
    page = _page(browser, javascript=False)
    try:
        log_in(page, portal_url, "innbygger", patient)
        _open(page, portal_url, "innbygger", imaging.ct.title)
        _loaded(page, ".series-strip img")
        first = page.locator("img.viewer-image").get_attribute("src")
        expect(page.get_by_role("button", name=NB("imaging.zoom.in"))).to_be_hidden()
        page.get_by_role("link", name=NB("imaging.next")).click()
        expect(page).to_have_url(re.compile(r"bilde=2"))
        assert page.locator("img.viewer-image").get_attribute("src") != first
        page.get_by_role("link", name=NB("imaging.window.skjelett")).click()
        expect(page).to_have_url(re.compile(r"vindu=skjelett"))
        assert "window=400%2C1800%2Clinear" in (
            page.locator("img.viewer-image").get_attribute("src") or ""
        )
        _loaded(page, "img.viewer-image")
    finally:
        page.context.close()


@pytest.mark.parametrize("language", ["nn", "en"])
def test_viewer_in_nynorsk_and_english(
    browser: Browser, portal_url: str, patient: str, imaging: DemoImaging, language: str
) -> None:
    page = _page(browser)
    t = Translator(language)
    try:
        log_in(page, portal_url, "innbygger", patient)
        _open(page, portal_url, "innbygger", imaging.ct.title)
        here = page.url.split(portal_url, 1)[1]
        page.goto(f"{portal_url}/sprak/{language}?neste={quote(here, safe='')}")
        expect(page.locator("html")).to_have_attribute("lang", language)
        expect(page.get_by_role("link", name=t("imaging.window.blotvev"))).to_be_visible()
        expect(page.get_by_role("button", name=t("imaging.zoom.in"))).to_be_visible()
        assert_accessible(page, f"viewer-{language}")
    finally:
        page.context.close()


def test_a_study_the_patient_blocks_is_refused_to_a_page_opened_before(
    browser: Browser, portal_url: str, network: Network, patient: str, imaging: DemoImaging
) -> None:
    """The health worker's page was open before the block: its pixels stop at the archive,
    which reads the patient's controls from the source (MEDIA-CONTRACT §2), not only at the list.

    The cine: no other module of the shared network blocks it (test_demo_media blocks the
    radiograph); the block is lifted in the `finally`, and seen lifted at the archive."""
    hcp = _hcp(browser, portal_url, network, patient, "desktop")
    citizen = _page(browser)
    study = imaging.cine
    try:
        _open(hcp, portal_url, "helsepersonell", study.title)
        _loaded(hcp, "img.viewer-image")
        pixels = hcp.locator("img.viewer-image").evaluate("i => i.src")
        assert hcp.request.get(pixels).status == 200
        log_in(citizen, portal_url, "innbygger", patient)
        citizen.goto(f"{portal_url}/innbygger/dokumenter?antall=200")
        block = NB("citizen.documents.block")
        citizen.get_by_role("button", name=f"{block} {study.title}", exact=True).click()
        expect(
            citizen.get_by_role("status").filter(has_text=NB("citizen.block.document.on"))
        ).to_be_visible()
        deadline = time.monotonic() + 20  # the demo's archive keeps the controls 1 s
        while (status := hcp.request.get(pixels).status) == 200:
            assert time.monotonic() < deadline, "the blocked study's pixels were still served"
            time.sleep(0.25)
        assert status == 403
        # A fresh list shows it «Sperret»: no link, so no page and no proxy for it.
        hcp.goto(f"{portal_url}/helsepersonell/oversikt?antall=200&oppdater=1")
        expect(
            hcp.get_by_role("main").get_by_role("link", name=study.title, exact=True)
        ).to_have_count(0)
        assert hcp.request.get(pixels).status == 404
    finally:
        hcp.context.close()
        citizen.context.close()
        lift_document_block(network, patient, study.unique_id, imaging.hcid)
    # Put back: the study is listed and served again (demo_imaging reads it through the hub).
    deadline = time.monotonic() + 20
    while True:
        try:
            demo_imaging(network, patient)
            break
        except AssertionError:
            assert time.monotonic() < deadline, "the study was still blocked after the unblock"
            time.sleep(0.25)
