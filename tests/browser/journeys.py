"""The steps of the issue-11 journeys, one function per step, shared by the tests and scripts.

Each step drives a real chromium tab against the demo network (`onerecord demo`) the way the
person would — by role, label and text taken from the message catalogue (bokmål), never by CSS
class or layout, so that the pages can be restyled (Designsystemet) without breaking the steps
— and asserts that the person got where the step says. Steps return what later steps need
(a title, a name), so a journey reads as a list of steps.

Used by tests/browser/test_journeys.py (a journey per role), scripts/screenshots (each page at
both sizes for docs/portals.md) and bench/page_budget.py (bytes and paint per page).

Steps that depend on parts other branches change, and how far they are written for both:
- emergency override (branch `override`: per document or class, acute basis only,
  time-limited): `use_emergency_override` picks the first option of any choice the form asks
  for and accepts either today's «in use» status or the new override region;
  `open_document_opened_by_override` needs fewer «Sperret» rows than before and a row tagged
  «(åpnet med nødtilgang)»;
- access log (branch `accesslog`: one line per visit): `read_access_log` and
  `read_own_access_log` find the health worker's name (and organisation) on a table row;
- `block_health_worker` types the HPR number on the privacy page (defect 8 may add "block this
  person" on the log's line) and accepts today's flash or one naming the person (`pending`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playwright.sync_api import Locator, Page, expect

from onerecord.domain import NationalIdentityNumber
from onerecord.portals.i18n import Translator
from onerecord.synth.dataset import load_population
from onerecord.synth.population import Population

__all__ = [
    "EMERGENCY_REASON",
    "NB",
    "Cast",
    "act_for",
    "block_a_document",
    "block_health_worker",
    "choose_workplace",
    "lift_blocks",
    "log_in",
    "log_out",
    "open_a_document",
    "open_document_opened_by_override",
    "open_lab_result",
    "read_access_log",
    "read_own_access_log",
    "regions_in_rows",
    "see_blocked_rows",
    "see_blocks_on_privacy_page",
    "see_my_documents",
    "see_page_names",
    "see_patient_header",
    "see_young_person_page",
    "state_basis",
    "use_emergency_override",
]

NB = Translator("nb")
EMERGENCY_REASON = "Bevisstløs pasient i akuttmottak, trenger tidligere epikriser."
LAB_TITLE = re.compile(r"^Svarrapport")
# The basis a GP states (consent) and the one an emergency nurse states (acute need).
GP_BASIS = {"service": "01", "purpose": "TREAT", "relation": "BEHANDLER", "basis": "SAMTYKKE"}
ACUTE_BASIS = {"service": "02", "purpose": "TREAT", "relation": "BEHANDLER", "basis": "AKUTT"}


@dataclass(frozen=True)
class Cast:
    """Who is who in the running demo: the manifest's numbers and the register's names."""

    manifest: dict[str, Any]
    population: Population

    @classmethod
    def of(cls, manifest: dict[str, Any]) -> Cast:
        return cls(manifest, load_population(Path(manifest["dataset"])))

    @property
    def portal_url(self) -> str:
        return str(self.manifest["portal"]["url"])

    def nin(self, key: str) -> str:
        return str(self.manifest["patients"][key])

    def name(self, key: str) -> str:
        return self.population.cast[key].name

    def staff(self, key: str) -> dict[str, Any]:
        staff: dict[str, Any] = self.manifest["staff"][key]
        return staff

    @property
    def region_names(self) -> list[str]:
        return [str(r["name"]) for r in self.manifest["regions"]]


def _main(page: Page) -> Locator:
    return page.get_by_role("main")


def log_in(page: Page, portal_url: str, area: str, nin: str) -> None:
    """Open the portal's login page, go to the STS and choose the synthetic user `nin` there."""
    key = "hcp.login.button" if area == "helsepersonell" else "citizen.login.button"
    page.goto(f"{portal_url}/{area}/logg-inn")
    page.get_by_role("main").get_by_role("button", name=NB(key)).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("testbrukere")
    page.get_by_role("radio", name=re.compile(nin)).check()
    page.get_by_role("button", name="Logg inn").click()
    expect(page).to_have_url(re.compile(rf"{portal_url}/{area}/"))


def choose_workplace(page: Page, organisation: str) -> None:
    """On the workplace page, keep the workplace at `organisation` and go on."""
    expect(page.get_by_role("heading", level=1)).to_have_text(NB("hcp.workplace.heading"))
    place = page.get_by_role("radio", name=re.compile(re.escape(organisation)))
    place.first.check()
    page.get_by_role("button", name=NB("hcp.workplace.button")).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(NB("hcp.patient.heading"))
    expect(_main(page)).to_contain_text(organisation)


def state_basis(page: Page, patient: str, basis: dict[str, str]) -> None:
    """Fill the patient and basis-for-access form by its labels and ask for the documents."""
    page.get_by_label(NB("hcp.patient.nin")).fill(patient)
    page.get_by_label(NB("hcp.patient.service")).select_option(basis["service"])
    page.get_by_label(NB("hcp.patient.purpose"), exact=True).select_option(basis["purpose"])
    page.get_by_label(NB("hcp.patient.relation")).select_option(basis["relation"])
    page.get_by_role("radio", name=NB(f"basis.access.{basis['basis']}")).check()
    page.get_by_role("button", name=NB("hcp.patient.button")).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(NB("overview.heading"))


def see_patient_header(page: Page, name: str, nin: str) -> None:
    """The page names the patient (defect 2), not only the number."""
    header = page.get_by_role("region", name=NB("hcp.header.label"))
    expect(header).to_contain_text(name)
    expect(header).to_contain_text(nin)


def regions_in_rows(page: Page, region_names: list[str]) -> set[str]:
    """Return the regions that at least one row of the documents table comes from."""
    table = _main(page).get_by_role("table").first
    return {
        region
        for region in region_names
        if table.get_by_role("row").filter(has_text=region).count() > 0
    }


def open_lab_result(page: Page) -> str:
    """Open the first lab report (KITH svarrapport) of the list; its results show as a table."""
    link = _main(page).get_by_role("link", name=LAB_TITLE).first
    title = link.inner_text().strip()
    link.click()
    expect(page).to_have_url(re.compile(r"/dokument/"))
    expect(page.get_by_role("heading", level=1)).to_contain_text(title)
    expect(_main(page).get_by_role("table").first).to_be_visible()
    return title


def log_out(page: Page, portal_url: str, area: str) -> None:
    """Log out; the portal is back at its login page and the session's pages are closed."""
    page.get_by_role("button", name=NB("site.logout")).click()
    expect(page).to_have_url(re.compile(rf"/{area}/logg-inn$"))
    expect(page.get_by_role("button", name=NB("site.logout"))).to_have_count(0)
    back = "oversikt" if area == "helsepersonell" else "dokumenter"
    answer = page.goto(f"{portal_url}/{area}/{back}")
    assert answer is not None and answer.status in (200, 401), answer and answer.status
    expect(_main(page).get_by_role("table")).to_have_count(0)
    expect(page.get_by_role("button", name=NB("site.logout"))).to_have_count(0)


def see_blocked_rows(page: Page) -> int:
    """Count the rows the patient has blocked («Sperret»); there must be some."""
    blocked = _main(page).get_by_role("row").filter(has_text=NB("overview.blocked"))
    expect(blocked.first).to_be_visible()
    return blocked.count()


def use_emergency_override(page: Page, reason: str = EMERGENCY_REASON) -> None:
    """Ask for emergency access with a reason, from the overview's link.

    Written for today's override (every blocked document at once, a reason) and for branch
    `override` (acute basis only; choose one document or class and a coded cause, then a
    region names what is open and until when): a choice left unchosen takes its first option.
    """
    page.get_by_role("link", name=NB("hcp.emergency.link")).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(NB("hcp.emergency.heading"))
    for group in _main(page).get_by_role("group").all():
        radios = group.get_by_role("radio")
        if radios.count() and not radios.evaluate_all("rs => rs.some(r => r.checked)"):
            radios.first.check()
    page.get_by_label(NB("hcp.emergency.reason")).fill(reason)
    page.get_by_role("button", name=NB("hcp.emergency.button")).click()
    in_force = page.get_by_role("status").filter(has_text=NB("hcp.emergency.active"))
    in_force = in_force.or_(page.get_by_role("region", name=NB("hcp.emergency.title")))
    expect(in_force.first).to_be_visible()


def open_document_opened_by_override(page: Page, portal_url: str, blocked_before: int) -> str:
    """Fewer rows are «Sperret» than `blocked_before`; open one the override opened."""
    page.goto(f"{portal_url}/helsepersonell/oversikt?antall=200")
    blocked = _main(page).get_by_role("row").filter(has_text=NB("overview.blocked"))
    assert blocked.count() < blocked_before, (blocked.count(), blocked_before)
    row = _main(page).get_by_role("row").filter(has_text=NB("overview.opened-by-override")).first
    link = row.get_by_role("cell").get_by_role("link").first
    title = link.inner_text().strip()
    link.click()
    expect(page).to_have_url(re.compile(r"/helsepersonell/dokument/"))
    expect(page.get_by_role("heading", level=1)).to_contain_text(title)
    return title


def see_my_documents(page: Page, portal_url: str) -> None:
    """«Mine dokumenter»: the citizen's own list, with documents in it."""
    page.goto(f"{portal_url}/innbygger/dokumenter?antall=200")
    expect(page.get_by_role("heading", level=1)).to_have_text(NB("citizen.documents.title"))
    expect(page.get_by_role("link", name=NB("citizen.nav.documents"))).to_be_visible()
    expect(_main(page).get_by_role("row").nth(1)).to_be_visible()


def open_a_document(page: Page) -> str:
    """Open the first document of the list that has a link; it opens in the citizen's frame."""
    link = _main(page).get_by_role("table").first.get_by_role("cell").get_by_role("link")
    title = link.first.inner_text().strip()
    link.first.click()
    expect(page).to_have_url(re.compile(r"/innbygger/dokument/"))
    expect(page.get_by_role("heading", level=1)).to_contain_text(title)
    return title


def block_a_document(page: Page, portal_url: str) -> str:
    """Block the first document that can be blocked, from «Mine dokumenter»; return its title."""
    page.goto(f"{portal_url}/innbygger/dokumenter?antall=200")
    block = NB("citizen.documents.block")
    button = _main(page).get_by_role("button", name=re.compile(rf"^{block} ")).first
    label = button.get_attribute("aria-label") or button.inner_text()
    title = label.removeprefix(f"{block} ").strip()
    button.click()
    status = page.get_by_role("status").filter(has_text=NB("citizen.block.document.on"))
    expect(status).to_be_visible()
    return title


def block_health_worker(page: Page, portal_url: str, hpr: str, name: str) -> None:
    """On the privacy page, block the health worker with HPR number `hpr` (today by number)."""
    page.goto(f"{portal_url}/innbygger/personvern")
    page.get_by_label(NB("citizen.privacy.practitioners.label")).fill(hpr)
    page.get_by_role("button", name=NB("citizen.privacy.practitioners.button")).click()
    # Today's flash says the block is in force; branch `pending` names the person instead.
    said = re.compile(f"{re.escape(NB('citizen.block.practitioner.on'))}|{re.escape(name)}")
    expect(page.get_by_role("status").filter(has_text=said).first).to_be_visible()


def see_blocks_on_privacy_page(page: Page, portal_url: str, document: str, name: str) -> None:
    """The privacy page lists the blocked document and the blocked health worker, by name."""
    page.goto(f"{portal_url}/innbygger/personvern")
    main = _main(page)
    expect(main.get_by_role("row").filter(has_text=document)).to_have_count(1)
    expect(main.get_by_role("row").filter(has_text=name)).to_have_count(1)


def lift_blocks(page: Page, portal_url: str, document: str, health_worker: str) -> None:
    """Lift the document and health-worker blocks again on the privacy page (leave no state)."""
    page.goto(f"{portal_url}/innbygger/personvern")
    for named in (
        NB("citizen.documents.unblock-named", title=document),
        NB("citizen.privacy.practitioners.unblock-named", name=health_worker),
    ):
        button = _main(page).get_by_role("button", name=named)
        if button.count():
            button.first.click()
            page.goto(f"{portal_url}/innbygger/personvern")
    expect(_main(page).get_by_role("button", name=NB("citizen.documents.unblock"))).to_have_count(0)


def read_access_log(page: Page, portal_url: str, who: dict[str, Any], *, title: str) -> None:
    """The access log names the health worker and their organisation, never their number.

    One line per visit (issue 11 defect 4): the visit names the person and organisation.
    """
    page.goto(f"{portal_url}/innbygger/tilgangslogg")
    expect(page.get_by_role("heading", level=1)).to_have_text(title)
    row = _main(page).locator("li.visit").filter(has_text=str(who["name"])).first
    expect(row).to_contain_text(str(who["organisation"]))
    assert str(who["nin"]) not in _main(page).inner_text()


def see_young_person_page(page: Page, nin: str) -> None:
    """A 14-year-old lands on the page that explains the rules (defect 1), dated by birth."""
    expect(page).to_have_url(re.compile(r"/innbygger/dokumenter$"))
    expect(page.get_by_role("heading", level=1)).to_have_text(NB("citizen.young.title.young"))
    main = _main(page)
    expect(main.get_by_role("heading", name=NB("citizen.young.parents.heading"))).to_be_visible()
    born = NationalIdentityNumber(nin).birth_date
    try:
        sixteen = born.replace(year=born.year + 16)
    except ValueError:  # 29 February
        sixteen = born.replace(year=born.year + 16, month=3, day=1)
    expect(main).to_contain_text(NB.date(sixteen, long=True))
    expect(main.get_by_role("alert")).to_have_count(0)


def read_own_access_log(page: Page, who: dict[str, Any]) -> None:
    """From the young-person page, follow the link to their own access log; `who` shows there."""
    _main(page).get_by_role("link", name=NB("citizen.nav.access-log")).click()
    expect(page).to_have_url(re.compile(r"/innbygger/tilgangslogg$"))
    expect(page.get_by_role("heading", level=1)).to_have_text(NB("citizen.log.title"))
    visit = _main(page).locator("li.visit").filter(has_text=str(who["name"])).first
    expect(visit).to_be_visible()


def act_for(page: Page, portal_url: str, name: str) -> None:
    """On «Bytt person», choose to see the documents of `name` (a child, a proxy giver)."""
    page.goto(f"{portal_url}/innbygger/representasjon")
    page.get_by_role("button", name=re.compile(rf"{re.escape(name)}$")).click()
    expect(page).to_have_url(re.compile(r"/innbygger/dokumenter$"))


def see_page_names(page: Page, portal_url: str, name: str) -> None:
    """The documents and privacy pages say whose they are: `name`, not «Mine» or «du»."""
    page.goto(f"{portal_url}/innbygger/dokumenter?antall=200")
    heading = page.get_by_role("heading", level=1)
    expect(heading).to_have_text(NB("citizen.documents.title-other", name=name))
    nav = page.get_by_role("navigation", name=NB("citizen.nav.label"))
    expect(
        nav.get_by_role("link", name=NB("citizen.nav.documents-other", name=name))
    ).to_be_visible()
    expect(nav.get_by_role("link", name=NB("citizen.nav.documents"), exact=True)).to_have_count(0)
    expect(_main(page).get_by_role("row").nth(1)).to_be_visible()
    page.goto(f"{portal_url}/innbygger/personvern")
    expect(heading).to_have_text(NB("citizen.privacy.title-other", name=name))
