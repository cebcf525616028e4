"""Issue 11, defect 2 in chromium: who the patient is, and a mistyped number said to be unknown.

Against the real network (`onerecord demo`: the STS serves the population register's patient
lookup, PDQm ITI-78). At 1280 × 800 and on a 390 × 844 phone, each page checked with axe-core
and saved as a screenshot:
- the header names the patient (name, number, birth date and age, sex, GP) on the overview and
  on a document's page;
- a protected address is flagged, and the address is nowhere on the page;
- `01819010001` passes the check digits but belongs to nobody: the form says the number is
  unknown, in each language, and no overview opens.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, ViewportSize, expect

from onerecord.synth.dataset import load_population
from onerecord.synth.population import Population
from tests.browser.test_portals import BASIS, checked, hcp_open_patient, sts_login
from tests.network.conftest import Network

pytestmark = [pytest.mark.slow, pytest.mark.shared_network]

UNKNOWN = "01819010001"
SIZES: dict[str, ViewportSize] = {
    "desktop": {"width": 1280, "height": 800},
    "phone": {"width": 390, "height": 844},
}
UNKNOWN_TEXT = {
    "nb": "ingen person med dette nummeret i folkeregisteret",
    "nn": "ingen person med dette nummeret i folkeregisteret",
    "en": "no person with this number in the population register",
}


@pytest.fixture(scope="module")
def population(network: Network) -> Population:
    return load_population(Path(network.manifest["dataset"]))


def _fits(page: Page, size: ViewportSize) -> None:
    box = page.locator(".patient-header").bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= size["width"] + 1


@pytest.mark.parametrize("size", sorted(SIZES))
def test_header_names_the_patient_on_overview_and_document(
    network: Network, portal_url: str, a11y_page: Page, population: Population, size: str
) -> None:
    page = a11y_page
    page.set_viewport_size(SIZES[size])
    adult = population.cast["adult"]
    hcp_open_patient(page, portal_url, network, adult.nin.value, shots=False)
    header = page.locator(".patient-header")
    expect(header).to_have_attribute("data-lookup", "found")
    expect(header.locator(".patient-name")).to_contain_text(adult.name)
    expect(header).to_contain_text(adult.nin.value)
    expect(header).to_contain_text(f"({adult.age_on(population.reference_date)} år)")
    expect(header).to_contain_text("Fastlege")
    expect(header).to_contain_text(re.compile("Kvinne|Mann"))
    _fits(page, SIZES[size])
    checked(page, f"hcp-header-overview-{size}")

    page.locator("tr.document td a").first.click()
    expect(page).to_have_url(re.compile(r"/helsepersonell/dokument/"))
    expect(page.locator(".patient-header .patient-name")).to_contain_text(adult.name)
    checked(page, f"hcp-header-document-{size}")


def test_protected_address_is_flagged_and_never_shown(
    network: Network, portal_url: str, a11y_page: Page, population: Population
) -> None:
    page = a11y_page
    page.set_viewport_size(SIZES["desktop"])
    shielded = population.cast["protected6"]
    hcp_open_patient(page, portal_url, network, shielded.nin.value, shots=False)
    header = page.locator(".patient-header")
    expect(header.locator(".patient-name")).to_contain_text(shielded.name)
    expect(header.locator(".flag.protected")).to_contain_text("Strengt fortrolig adresse")
    home = population.address_of(shielded.nin)
    body = page.locator("body").inner_text()
    assert home.street not in body and home.postal_code not in body
    checked(page, "hcp-header-protected-address")


@pytest.mark.parametrize("size", sorted(SIZES))
def test_a_mistyped_number_with_valid_check_digits_is_said_to_be_unknown(
    network: Network, portal_url: str, a11y_page: Page, size: str
) -> None:
    page = a11y_page
    page.set_viewport_size(SIZES[size])
    doctor = network.manifest["staff"]["doctor"]
    page.goto(f"{portal_url}/helsepersonell/logg-inn")
    page.get_by_role("button", name="Logg inn").click()
    sts_login(page, doctor["nin"])
    page.get_by_role("button", name="Fortsett").click()
    expect(page).to_have_url(re.compile(r"/helsepersonell/pasient$"))
    for language in ("nb", "nn", "en"):
        page.goto(f"{portal_url}/sprak/{language}?neste=/helsepersonell/pasient")
        page.fill("#patient", UNKNOWN)
        page.select_option("#healthcare_service", BASIS["healthcare_service"])
        page.select_option("#purpose_of_use", BASIS["purpose_of_use"])
        page.select_option("#purpose_of_use_details", BASIS["purpose_of_use_details"])
        page.check(f"#basis-{BASIS['access_basis']}")
        page.locator("main form button[type=submit]").click()
        alert = page.get_by_role("alert")
        expect(alert).to_contain_text(UNKNOWN_TEXT[language], ignore_case=True)
        expect(page).to_have_url(re.compile(r"/helsepersonell/pasient$"))
        expect(page.locator("#patient")).to_have_value(UNKNOWN)
        expect(page.locator("#patient")).to_have_attribute("aria-invalid", "true")
        assert page.locator("table.documents").count() == 0
        checked(page, f"hcp-unknown-number-{language}-{size}")
    page.goto(f"{portal_url}/helsepersonell/oversikt")
    expect(page).to_have_url(re.compile(r"/helsepersonell/pasient$"))
