"""The portals in Debian's chromium against the worker's shared demo network (`onerecord demo`).

What issue 5 asks to see, page by page, each page checked with axe-core (no serious or
critical violations) and saved as a screenshot under test-artefacts/screenshots/:
- a health worker logs in through the STS, chooses a workplace, states a basis, sees documents
  from at least three regions, opens a PDF and a lab result, sees blocked placeholders and uses
  the emergency override;
- a citizen logs in, sees their own documents, finds the health worker's visit in the access
  log with organisation and reason, blocks a document, and the health worker no longer sees it;
- a parent acts for a child of 10 and is refused for a child of 13.
Flows run in contexts that ignore CSP only so that axe can be injected (see axe.py); one flow
runs with the portal's CSP enforced to show that the pages need nothing it forbids.
The document the citizen blocks is unblocked in a `finally` (docs/testing.md "Shared network").
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.artefacts import screenshot
from tests.browser.axe import assert_accessible
from tests.browser.blocks import lift_document_block
from tests.browser.conftest import LOCALE, VIEWPORT
from tests.network.conftest import Network

pytestmark = [pytest.mark.slow, pytest.mark.shared_network]

BASIS = {
    "healthcare_service": "01",
    "purpose_of_use": "TREAT",
    "purpose_of_use_details": "BEHANDLER",
    "access_basis": "SAMTYKKE",
}


def checked(page: Page, name: str) -> None:
    """Save the page as a screenshot and check it with axe-core."""
    screenshot(page, name)
    assert_accessible(page, name)


def sts_login(page: Page, nin: str, shot: str | None = None) -> None:
    """Choose the synthetic user `nin` on the STS's test-user page and log in."""
    expect(page.locator("h1")).to_contain_text("testbrukere")
    if shot:
        checked(page, shot)
    page.check(f"#user-{nin}")
    page.get_by_role("button", name="Logg inn").click()


def hcp_open_patient(
    page: Page, portal_url: str, network: Network, patient: str, *, shots: bool
) -> None:
    """Log the cast doctor in, choose the first workplace, state a basis for `patient`."""
    doctor = network.manifest["staff"]["doctor"]
    page.goto(f"{portal_url}/helsepersonell/logg-inn")
    if shots:
        checked(page, "hcp-1-login")
    page.get_by_role("button", name="Logg inn").click()
    sts_login(page, doctor["nin"], "sts-login-practitioner" if shots else None)
    expect(page).to_have_url(re.compile(r"/helsepersonell/arbeidssted$"))
    if shots:
        checked(page, "hcp-2-workplace")
    page.get_by_role("button", name="Fortsett").click()
    expect(page).to_have_url(re.compile(r"/helsepersonell/pasient$"))
    page.fill("#patient", patient)
    page.select_option("#healthcare_service", BASIS["healthcare_service"])
    page.select_option("#purpose_of_use", BASIS["purpose_of_use"])
    page.select_option("#purpose_of_use_details", BASIS["purpose_of_use_details"])
    page.check(f"#basis-{BASIS['access_basis']}")
    if shots:
        checked(page, "hcp-3-patient-and-basis")
    page.get_by_role("button", name="Vis dokumenter").click()
    expect(page).to_have_url(re.compile(r"/helsepersonell/oversikt"))


def document_refs(page: Page) -> set[str]:
    """Return the retrieve tokens of the documents the overview lists (the ends of their links)."""
    hrefs = page.locator("tr.document td:nth-child(2) a").evaluate_all(
        "links => links.map(a => a.getAttribute('href'))"
    )
    # A link carries the overview's view after "?" (its way back); the token ends the path.
    return {str(h).split("?")[0].rsplit("/", 1)[1] for h in hrefs if h}


def region_names_in_rows(page: Page) -> set[str]:
    cells = page.locator("table.documents tbody tr.document td:nth-child(7)").all_inner_texts()
    return {c.strip() for c in cells if c.strip()}


def test_health_worker_sees_opens_and_overrides(
    network: Network, portal_url: str, a11y_page: Page
) -> None:
    page = a11y_page
    patient = network.manifest["patients"]["adult"]
    hcp_open_patient(page, portal_url, network, patient, shots=True)

    # The national overview: documents from at least three regions, each region's answer.
    page.goto(f"{portal_url}/helsepersonell/oversikt?antall=200")
    checked(page, "hcp-4-overview")
    assert len(region_names_in_rows(page)) >= 3, region_names_in_rows(page)
    for region in network.manifest["regions"]:
        expect(page.locator(".regions")).to_contain_text(f"{region['name']} svarte.")
    blocked = page.locator("tr.blocked")
    assert blocked.count() >= 1
    expect(blocked.first).to_contain_text("Sperret")
    expect(page.locator(".blocked-note")).to_contain_text(f"{blocked.count()} dokument")

    # A PDF opens in place; its bytes come from the content URL as application/pdf.
    page.locator('tr.document[data-mime="application/pdf"] a').first.click()
    expect(page.locator('object[type="application/pdf"]')).to_have_count(1)
    page.wait_for_timeout(2000)  # let the PDF viewer paint before the screenshot
    checked(page, "hcp-5-document-pdf")
    content_url = page.locator("object.pdf").get_attribute("data")
    assert content_url
    pdf = page.request.get(f"{portal_url}{content_url}")
    assert pdf.status == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.body().startswith(b"%PDF")

    # A lab result (KITH svarrapport) is rendered to HTML with its results table.
    page.goto(f"{portal_url}/helsepersonell/oversikt?antall=200")
    page.locator('tr.document[data-format="urn:no:kith:xmlstds:svarrapport"] a').first.click()
    expect(page.locator(".rendered table")).to_have_count(1)
    checked(page, "hcp-6-document-lab-result")

    # An image is shown as an image (decoded by the browser, not just linked).
    page.goto(f"{portal_url}/helsepersonell/oversikt?antall=200")
    page.locator('tr.document[data-mime="image/png"] a').first.click()
    image = page.locator("img.document-image")
    expect(image).to_be_visible()
    assert image.evaluate("img => img.complete && img.naturalWidth > 0") is True

    # The emergency override (per document or class, acute basis only, issue 11 defect 7):
    # tests/browser/test_emergency_override.py. Under SAMTYKKE it is not offered.
    page.goto(f"{portal_url}/helsepersonell/oversikt?antall=200")
    expect(page.locator("a.override-link")).to_have_count(0)


def test_citizen_sees_the_visit_blocks_a_document_and_the_health_worker_loses_it(
    network: Network, portal_url: str, browser: Browser
) -> None:
    adult = network.manifest["patients"]["adult"]
    doctor = network.manifest["staff"]["doctor"]
    hcp_context = browser.new_context(locale=LOCALE, viewport=VIEWPORT, bypass_csp=True)
    citizen_context = browser.new_context(locale=LOCALE, viewport=VIEWPORT, bypass_csp=True)
    blocked: tuple[str, str] | None = None
    try:
        hcp = hcp_context.new_page()
        hcp_open_patient(hcp, portal_url, network, adult, shots=False)
        hcp.goto(f"{portal_url}/helsepersonell/oversikt?antall=200")
        before = document_refs(hcp)

        citizen = citizen_context.new_page()
        citizen.goto(f"{portal_url}/innbygger/logg-inn")
        checked(citizen, "citizen-1-login")
        citizen.get_by_role("button", name="Logg inn").click()
        sts_login(citizen, adult, "sts-login-citizen")
        expect(citizen).to_have_url(re.compile(r"/innbygger/dokumenter"))
        citizen.goto(f"{portal_url}/innbygger/dokumenter?antall=200")
        checked(citizen, "citizen-2-my-documents")
        assert citizen.locator("tr.document").count() >= 1

        # The access log names the doctor, the organisation and the reason — never a number.
        citizen.goto(f"{portal_url}/innbygger/tilgangslogg")
        checked(citizen, "citizen-3-access-log")
        log = citizen.locator("main")
        expect(log).to_contain_text(doctor["name"])
        expect(log).to_contain_text(doctor["organisation"])
        expect(log).to_contain_text("Behandling – Helsetjenester generelt")
        assert doctor["nin"] not in log.inner_text()

        # A FHIR document (Bundle of type document) opens rendered, in the citizen's frame.
        citizen.goto(f"{portal_url}/innbygger/dokumenter?antall=200")
        # (Not an imaging manifest: its ImagingStudy is JSON too, and opens the viewer.)
        citizen.locator(
            'tr.document[data-mime="application/fhir+json"]:not([data-format="urn:ihe:rad:MADO"]) a'
        ).first.click()
        expect(citizen.locator(".rendered h2").first).to_be_visible()
        expect(citizen.locator(".citizen-nav")).to_be_visible()
        checked(citizen, "citizen-8-fhir-document")

        # Block one document the doctor can see now.
        citizen.goto(f"{portal_url}/innbygger/dokumenter?antall=200")
        row = citizen.locator("tr.document", has=citizen.get_by_role("button", name="Sperr")).first
        href = row.locator("td:nth-child(2) a").get_attribute("href") or ""
        ref = href.split("?")[0].rsplit("/", 1)[1]
        assert ref in before
        blocked = (
            row.locator("input[name=unique_id]").get_attribute("value") or "",
            row.locator("input[name=home_community_id]").get_attribute("value") or "",
        )
        row.get_by_role("button", name="Sperr").click()
        expect(citizen.locator("[role=status]").first).to_be_visible()
        checked(citizen, "citizen-4-after-block")

        citizen.goto(f"{portal_url}/innbygger/personvern")
        checked(citizen, "citizen-5-privacy")

        # «Oppdater»: the doctor's list of a minute ago is served from the rows already fetched
        # (issue 11, defect 4); a fresh one shows the block at once.
        hcp.goto(f"{portal_url}/helsepersonell/oversikt?antall=200&oppdater=1")
        assert ref not in document_refs(hcp)
        assert len(document_refs(hcp)) == len(before) - 1
    finally:
        hcp_context.close()
        citizen_context.close()
        if blocked is not None:
            lift_document_block(network, adult, *blocked)


def test_parent_acts_for_a_child_of_ten_and_is_refused_for_a_child_of_thirteen(
    network: Network, portal_url: str, a11y_page: Page
) -> None:
    page = a11y_page
    patients: dict[str, Any] = network.manifest["patients"]
    page.goto(f"{portal_url}/innbygger/logg-inn")
    page.get_by_role("button", name="Logg inn").click()
    sts_login(page, patients["parent"])
    page.goto(f"{portal_url}/innbygger/representasjon")
    checked(page, "citizen-6-act-for-someone")
    refused = page.locator("ul.refused")
    expect(refused).to_contain_text("12 og 16")
    # The manifest carries no names: the child of 10's name is the one the page offers.
    child10 = page.locator(
        "ul.people li", has=page.locator(f'input[value="{patients["child10"]}"]')
    )
    child10_name = re.sub(r" \(barn\)$", "", child10.locator(".person").inner_text().strip())
    assert child10_name
    acting_child10 = f"Du ser dokumentene til {child10_name} (barn)."
    child10.get_by_role("button").click()
    expect(page.locator(".acting")).to_contain_text(acting_child10)
    page.goto(f"{portal_url}/innbygger/dokumenter")
    expect(page.locator(".acting")).to_contain_text(acting_child10)
    expect(page.locator("h1")).to_have_text(f"Dokumentene til {child10_name}")
    checked(page, "citizen-7-child-documents")
    assert page.locator("tr.document").count() >= 1

    # Asking for the child of 13 anyway (a tampered form) is refused with the same message.
    csrf = page.locator('input[name="csrf_token"]').first.get_attribute("value")
    refused_answer = page.request.post(
        f"{portal_url}/innbygger/representasjon",
        form={"csrf_token": csrf or "", "person": patients["child13"]},
        max_redirects=0,
    )
    assert refused_answer.status == 403
    assert "12 og 16" in refused_answer.text()
    named = re.search(r"Du kan ikke se dokumentene til ([^<]+?) digitalt\.", refused_answer.text())
    assert named, refused_answer.text()[:2000]
    child13_name = named.group(1)
    assert child13_name != child10_name
    # Still acting for the child of 10, by name; the child of 13 is named nowhere in the line.
    page.goto(f"{portal_url}/innbygger/dokumenter")
    expect(page.locator(".acting")).to_contain_text(acting_child10)
    expect(page.locator(".acting")).not_to_contain_text(child13_name)


def test_pages_work_with_the_content_security_policy_enforced_and_switch_language(
    network: Network, portal_url: str, page: Page
) -> None:
    hcp_open_patient(page, portal_url, network, network.manifest["patients"]["adult"], shots=False)
    page.goto(f"{portal_url}/helsepersonell/oversikt")
    assert page.locator("tr.document").count() >= 1
    page.get_by_role("link", name="Nynorsk").click()
    expect(page.locator("html")).to_have_attribute("lang", "nn")
    expect(page.locator("h1")).to_have_text("Nasjonal dokumentoversikt")
    expect(page.locator("table.documents caption")).to_contain_text("dokument")
    page.get_by_role("link", name="English").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("h1")).to_have_text("National document overview")
    screenshot(page, "hcp-9-overview-in-english")


def test_start_page_error_page_and_english_pages_pass_axe(
    network: Network, portal_url: str, a11y_page: Page
) -> None:
    page = a11y_page
    page.goto(f"{portal_url}/")
    checked(page, "start-page")
    missing = page.goto(f"{portal_url}/finnes-ikke")
    assert missing is not None and missing.status == 404
    expect(page.locator("[role=alert]")).to_contain_text("Siden finnes ikke.")
    checked(page, "error-page")
    page.get_by_role("link", name="English").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    page.goto(f"{portal_url}/helsepersonell/logg-inn")
    expect(page.locator("h1")).to_have_text("Log in as health personnel")
    assert_accessible(page, "login page in English")
    page.get_by_role("link", name="Nynorsk").click()
    expect(page.locator("html")).to_have_attribute("lang", "nn")
    assert_accessible(page, "login page in nynorsk")
