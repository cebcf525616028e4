"""A citizen under 16 on their own (issue 11, defect 1): the rules in words, not a broken page.

Every region answers a 14-year-old's (or an 11-year-old's) own search empty with the reason
`citizen-under-age` (E2); the controls are refused until 16; the own access log is readable
from 12 and refused before. The portal must say the rule — what the person sees, what the
parents see, the dates it changes — instead of an empty list with a false "try again later",
and show the young person's own log. The app over ASGI with the STS and hub faked as the real
hub answers (see test_citizen_network.py and tests/browser for the real network).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest

from onerecord.mhd import DENIAL_REASON_SYSTEM
from onerecord.portals.overview import DocumentRow, Overview, RegionNotice
from onerecord.portals.young_person import Stage, age_rule, birthday
from tests.portals import test_citizen_app
from tests.portals.test_citizen_app import (
    _EXT_HCID,
    _EXT_STATUS,
    HUB,
    REGIONS,
    FakeNetwork,
    access_event,
    log_in,
)
from tests.trust.policy_factories import synthetic_nin

pytestmark = pytest.mark.anyio

TODAY = datetime.now(UTC).date()
TEEN_BORN = date(TODAY.year - 14, 1, 1)
"""14 all this year: turned 12 on 1 January two years ago, turns 16 on 1 January in two."""
CHILD_BORN = date(TODAY.year - 11, 1, 1)
TEEN = synthetic_nin(TEEN_BORN).value
CHILD = synthetic_nin(CHILD_BORN).value
ADULT = synthetic_nin(date(TODAY.year - 40, 6, 1)).value

UNDER_AGE = "citizen-under-age"


def under_age_issue(hcid: str) -> dict[str, Any]:
    """A region's informational issue as the hub passes it on (real answer, issue 11)."""
    return {
        "severity": "information",
        "code": "suppressed",
        "details": {"coding": [{"system": DENIAL_REASON_SYSTEM, "code": UNDER_AGE}]},
        "diagnostics": f"no entries are shown by rule: {UNDER_AGE}",
        "extension": [{"url": _EXT_HCID, "valueUri": hcid}],
        "location": [hcid],
    }


def refused_issue(hcid: str, reason: str | None) -> dict[str, Any]:
    """A region's refusal as the hub reports it in a 403 OperationOutcome."""
    codings: list[dict[str, Any]] = [
        {"system": "https://onerecord.no/fhir/CodeSystem/region-status", "code": "denied"}
    ]
    if reason is not None:
        codings.append({"system": DENIAL_REASON_SYSTEM, "code": reason})
    return {
        "severity": "error",
        "code": "forbidden",
        "extension": [
            {"url": _EXT_HCID, "valueUri": hcid},
            {"url": _EXT_STATUS, "valueCode": "denied"},
        ],
        "details": {"coding": codings},
        "location": [hcid],
    }


@dataclass
class UnderAgeHub(FakeNetwork):
    """The hub as it answers a citizen under 16 asking for themselves (the demo's answers)."""

    under_age: bool = True
    log_refused_reason: str | None = None
    """Set for a child under 12: every region refuses the own log with this reason."""
    search_issue_regions: tuple[str, ...] = tuple(r["home_community_id"] for r in REGIONS)
    controls_refused: bool = True

    def _answer(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if str(request.url).startswith(HUB) and self.under_age:
            if path == "/fhir/DocumentReference":
                self.requests.append(request)
                issues = [under_age_issue(h) for h in self.search_issue_regions]
                entry = {"resource": {"resourceType": "OperationOutcome", "issue": issues}}
                body = {"resourceType": "Bundle", "type": "searchset", "total": 0}
                return httpx.Response(200, json=body | {"entry": [entry] if issues else []})
            if path == "/fhir/AuditEvent" and self.log_refused_reason is not None:
                self.requests.append(request)
                issues = [
                    refused_issue(r["home_community_id"], self.log_refused_reason) for r in REGIONS
                ]
                return httpx.Response(
                    403, json={"resourceType": "OperationOutcome", "issue": issues}
                )
            if path.startswith("/controls") and self.controls_refused:
                # The hub's 403 for controls names each region, without a reason code.
                self.requests.append(request)
                issues = [refused_issue(r["home_community_id"], None) for r in REGIONS]
                return httpx.Response(
                    403, json={"resourceType": "OperationOutcome", "issue": issues}
                )
        return super()._answer(request)


def userinfo(nin: str, name: str) -> dict[str, Any]:
    return {
        "sub": nin,
        "name": name,
        "pid": nin,
        "security_level": "4",
        "acr": "idporten-loa-high",
        "onerecord:representation": [],
        "onerecord:representation_refused": [],
    }


@pytest.fixture
def fake() -> UnderAgeHub:
    return UnderAgeHub(userinfo=userinfo(TEEN, "Iben Ung"))


# The portal over ASGI as test_citizen_app runs it, in front of this module's `fake`.
browser = test_citizen_app.browser


async def logged_in(browser: httpx.AsyncClient, language: str = "nb") -> None:
    if language != "nb":
        await browser.get(f"/sprak/{language}", params={"neste": "/"})
    back = await log_in(browser)
    assert back.status_code == 303, back.text


FALSE_WARNINGS = (
    "Prøv igjen om litt",  # the controls "could not be fetched"
    "Prøv igjen",
    "Listen kan mangle",
    "svarte ikke",
    "Try again",
)

# What each language says for a 14-year-old, with the 16th birthday and the 12th.
TEEN_TEXTS = {
    "nb": (
        "Dokumentene dine vises her fra du fyller 16 år",
        "Du er 14 år.",
        f"1. januar {TEEN_BORN.year + 16}",
        "Foreldrene dine kan ikke se dokumentene dine her",
        f"siden du fylte 12 år, 1. januar {TEEN_BORN.year + 12}",
    ),
    "nn": (
        "Dokumenta dine blir viste her frå du fyller 16 år",
        "Du er 14 år.",
        f"1. januar {TEEN_BORN.year + 16}",
        "Foreldra dine kan ikkje sjå dokumenta dine her",
        f"sidan du fylte 12 år, 1. januar {TEEN_BORN.year + 12}",
    ),
    "en": (
        "Your documents are shown here from your 16th birthday",
        "You are 14.",
        f"1 January {TEEN_BORN.year + 16}",
        "Your parents cannot see your documents here",
        f"since your 12th birthday, 1 January {TEEN_BORN.year + 12}",
    ),
}


@pytest.mark.parametrize("language", ["nb", "nn", "en"])
async def test_a_14_year_old_gets_the_rules_not_an_empty_list(
    browser: httpx.AsyncClient, fake: UnderAgeHub, language: str
) -> None:
    await logged_in(browser, language)
    page = await browser.get("/innbygger/dokumenter")
    assert page.status_code == 200
    html = page.text
    for text in TEEN_TEXTS[language]:
        assert text in html, (text, html[-4000:])
    assert 'data-stage="young"' in html
    assert f'<time datetime="{TEEN_BORN.year + 16}-01-01">' in html
    # No empty table, no region sentences, no false "try again" warning.
    assert "<table" not in html and 'class="warning"' not in html
    for text in FALSE_WARNINGS:
        assert text not in html, text
    # The way to their own access log, and the menu still marks the documents page.
    assert '<a href="/innbygger/tilgangslogg">' in html
    assert 'href="/innbygger/dokumenter" aria-current="page"' in html
    # The controls are closed until 16: the page did not ask for them.
    assert fake.hub_calls("/controls") == []


async def test_a_14_year_old_reads_their_own_access_log(
    browser: httpx.AsyncClient, fake: UnderAgeHub
) -> None:
    fake.events = [access_event(REGIONS[0]["home_community_id"], opened=True, emergency=False)]
    await logged_in(browser)
    page = await browser.get("/innbygger/tilgangslogg")
    assert page.status_code == 200, page.text[-2000:]
    assert "Ane Aasen" in page.text and "Oslo universitetssykehus HF" in page.text
    assert "Denne loggen er din. Foreldrene dine kan ikke se den." in page.text
    assert f"1. januar {TEEN_BORN.year + 16}" in page.text
    # One visit, but no «Sperr»: the controls open at 16 (§5.2).
    assert page.text.count('<li class="visit') == 1
    assert "/innbygger/tilgangslogg/sperr" not in page.text
    (call,) = fake.hub_calls("/fhir/AuditEvent")
    assert call.url.params["patient.identifier"].endswith(f"|{TEEN}")


async def test_a_14_year_old_is_told_when_the_privacy_controls_open(
    browser: httpx.AsyncClient, fake: UnderAgeHub
) -> None:
    await logged_in(browser)
    page = await browser.get("/innbygger/personvern")
    assert page.status_code == 200, page.text[-2000:]
    assert (
        "Sperringer og reservasjon mot deling kan du bestemme over selv her fra du fyller 16 år, "
        f"1. januar {TEEN_BORN.year + 16}." in page.text
    )
    assert 'href="/innbygger/personvern" aria-current="page"' in page.text
    assert '<form method="post" action="/innbygger/sperringer' not in page.text


CHILD_TEXTS = {
    "nb": (
        "Du kan ikke se dokumentene dine her ennå",
        "Du er 11 år. Før du fyller 12, er det foreldrene dine som ser dokumentene dine her",
        "be en forelder logge inn med sin egen innlogging",
        f"Fra {CHILD_BORN.day}. januar {CHILD_BORN.year + 12} kan de ikke det lenger.",
        f"1. januar {CHILD_BORN.year + 16}",
    ),
    "nn": (
        "Du kan ikkje sjå dokumenta dine her enno",
        "Du er 11 år. Før du fyller 12, er det foreldra dine som ser dokumenta dine her",
        "be ein forelder logge inn med si eiga innlogging",
        f"Frå 1. januar {CHILD_BORN.year + 12} kan dei ikkje det lenger.",
        f"1. januar {CHILD_BORN.year + 16}",
    ),
    "en": (
        "You cannot see your documents here yet",
        "You are 11. Until you turn 12, it is your parents who see your documents here",
        "ask a parent to log in with their own login",
        f"From 1 January {CHILD_BORN.year + 12} they no longer can.",
        f"1 January {CHILD_BORN.year + 16}",
    ),
}


@pytest.mark.parametrize("language", ["nb", "nn", "en"])
async def test_an_11_year_old_alone_is_told_plainly_on_every_page(
    browser: httpx.AsyncClient, fake: UnderAgeHub, language: str
) -> None:
    fake.userinfo = userinfo(CHILD, "Lars Liten")
    fake.log_refused_reason = UNDER_AGE
    await logged_in(browser, language)
    for path in ("dokumenter", "tilgangslogg", "personvern"):
        page = await browser.get(f"/innbygger/{path}")
        assert page.status_code == 200, (path, page.text[-2000:])
        assert 'data-stage="child"' in page.text, path
        assert CHILD_TEXTS[language][0] in page.text, path
        assert f'href="/innbygger/{path}" aria-current="page"' in page.text
        for text in FALSE_WARNINGS:
            assert text not in page.text, (path, text)
    page = await browser.get("/innbygger/dokumenter")
    for text in CHILD_TEXTS[language][1:]:
        assert text in page.text, (text, page.text[-4000:])
    assert f'<time datetime="{CHILD_BORN.year + 12}-01-01">' in page.text


async def test_other_refusals_of_the_log_stay_errors(
    browser: httpx.AsyncClient, fake: UnderAgeHub
) -> None:
    # A refusal for another reason is not the young person's rule, and says so as before.
    fake.log_refused_reason = "no-representation"
    await logged_in(browser)
    page = await browser.get("/innbygger/tilgangslogg")
    assert page.status_code == 403
    assert "Du har ikke tilgang til dette for personen du valgte." in page.text


async def test_an_adult_with_refused_controls_gets_the_error_not_the_young_page(
    browser: httpx.AsyncClient, fake: UnderAgeHub
) -> None:
    fake.userinfo = userinfo(ADULT, "Voksen Person")
    fake.under_age = True  # the fake refuses the controls; the adult is no young person
    await logged_in(browser)
    page = await browser.get("/innbygger/personvern")
    assert page.status_code == 403 and "young-person" not in page.text


async def test_one_region_saying_under_age_is_enough(
    browser: httpx.AsyncClient, fake: UnderAgeHub
) -> None:
    # One region answered late (no issue); the rule is the same everywhere, so it is said.
    fake.search_issue_regions = (REGIONS[1]["home_community_id"],)
    await logged_in(browser)
    page = await browser.get("/innbygger/dokumenter")
    assert page.status_code == 200 and 'data-stage="young"' in page.text


async def test_an_adult_with_an_empty_list_sees_the_ordinary_page(
    browser: httpx.AsyncClient, fake: UnderAgeHub
) -> None:
    fake.userinfo = userinfo(ADULT, "Voksen Person")
    fake.under_age = False
    await logged_in(browser)
    page = await browser.get("/innbygger/dokumenter")
    assert page.status_code == 200
    assert "young-person" not in page.text and "<table" in page.text


# --- pure parts -----------------------------------------------------------------------------


def test_age_rule_stages_and_dates() -> None:
    today = date(2026, 12, 2)
    young = age_rule(synthetic_nin(date(2012, 7, 25)).value, today)
    assert young is not None and young.stage is Stage.YOUNG and young.age == 14
    assert young.parents_until == date(2024, 7, 25)
    assert young.own_access_from == date(2028, 7, 25)
    assert young.reads_own_log
    child = age_rule(synthetic_nin(date(2015, 6, 12)).value, today)
    assert child is not None and child.stage is Stage.CHILD and not child.reads_own_log
    # The 12th birthday opens the own log (E5: the parents' access ends the same day).
    on_12th = age_rule(synthetic_nin(date(2014, 12, 2)).value, today)
    day_before = age_rule(synthetic_nin(date(2014, 12, 3)).value, today)
    assert on_12th is not None and on_12th.stage is Stage.YOUNG
    assert day_before is not None and day_before.stage is Stage.CHILD
    # From the 16th birthday there is no rule to explain; the day before there is.
    assert age_rule(synthetic_nin(date(2010, 12, 2)).value, today) is None
    assert age_rule(synthetic_nin(date(2010, 12, 3)).value, today) is not None
    assert age_rule("not a number", today) is None


def test_a_29_february_birthday_falls_on_1_march_as_the_policy_counts() -> None:
    born = date(2012, 2, 29)
    assert birthday(born, 16) == date(2028, 2, 29)
    assert birthday(born, 15) == date(2027, 3, 1)
    rule = age_rule(synthetic_nin(born).value, date(2027, 2, 28))
    assert rule is not None and rule.age == 14


def _overview(rows: tuple[DocumentRow, ...], *reasons: str | None) -> Overview:
    regions = tuple(RegionNotice(f"R{i}", "ok", reason) for i, reason in enumerate(reasons))
    return Overview(rows=rows, regions=regions, total=len(rows), blocked_count=0)


def test_overview_under_age_only_when_a_region_says_so_and_nothing_is_listed() -> None:
    assert _overview((), UNDER_AGE, None).under_age
    assert not _overview((), None, None).under_age
    assert not _overview((), "patient-reserved").under_age
    row = DocumentRow("2026-01-01", "t", "", "", "", "", "R0", blocked=False)
    assert not _overview((row,), UNDER_AGE).under_age
