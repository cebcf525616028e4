"""The citizen's access log shows who at the clinic read their messages (issue 15); the work
list's forms never fail the server.

Real parts on 127.0.0.1 (clinic_harness): the STS, the hub (no regions), the dialogue service
and the portals. The citizen writes to the office over the FHIR API, the GP reads the thread in
the work list, and the citizen's access log page in the portal lists the GP's read, with the
dialogue service named as where it happened.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.dialogue.clinic_harness import ClinicStack, running_clinic
from tests.dialogue.harness import communication
from tests.portals.pages import csrf_token, follow_redirects, login_through_sts

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def clinic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClinicStack]:
    with running_clinic(Path(tmp_path_factory.mktemp("clinic-log"))) as stack:
        yield stack


def test_the_gps_read_of_a_message_is_in_the_citizens_access_log(clinic: ClinicStack) -> None:
    patient = clinic.patient("adult")
    sent = clinic.post(
        clinic.citizen(patient),
        "Communication",
        communication(patient, "Ny adresse fra 1. mai", category="contact-office", fee=None),
    )
    assert sent.status_code == 201, sent.text
    tasks = clinic.get(clinic.citizen(patient), "Task", patient=patient).json()
    assert all(
        e["resource"]["code"]["coding"][0]["code"] != "contact-office" for e in tasks["entry"]
    )

    with httpx.Client(timeout=30) as gp:
        page = login_through_sts(gp, clinic.portal, "helsepersonell", clinic.gp)
        key = re.search(r'name="workplace" value="([^"]+)"', page.text)
        assert key is not None
        follow_redirects(
            gp,
            gp.post(
                f"{clinic.portal}/helsepersonell/arbeidssted",
                data={"csrf_token": csrf_token(page), "workplace": key.group(1)},
            ),
        )
        inbox = gp.get(f"{clinic.portal}/helsepersonell/legekontor?type=contact-office")
        assert inbox.status_code == 200, inbox.text[:2000]
        task = re.search(r'data-task="([^"]+)"', inbox.text)
        assert task is not None
        case = gp.get(f"{clinic.portal}/helsepersonell/legekontor/sak/{task.group(1)}")
        assert "Ny adresse fra 1. mai" in unescape(case.text)

    with httpx.Client(timeout=30) as me:
        login_through_sts(me, clinic.portal, "innbygger", patient)
        log = me.get(f"{clinic.portal}/innbygger/tilgangslogg")
        assert log.status_code == 200, log.text[:3000]
        text = unescape(log.text)
        gp_name = clinic.population.staff["gp"].name
        assert gp_name in text
        assert "Fastlegekontoret (digital dialog)" in text
        hpr = clinic.population.staff["gp"].hpr
        assert hpr is not None and hpr.value not in text  # the reader is keyed, never shown


# --- the work list's forms: 4xx (or a redirect), never 5xx; nothing written on a 4xx ----------


def _rows(clinic: ClinicStack) -> tuple[int, ...]:
    import sqlite3

    path = clinic.db_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as db:
        counts = tuple(
            db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608 - fixed names
            for table in (
                "dialogue_message",
                "dialogue_request",
                "dialogue_slot",
                "dialogue_appointment",
                "dialogue_absence",
            )
        )
        office = db.execute("SELECT services, information FROM dialogue_office").fetchall()
    return (*counts, hash(str(office)))


@pytest.fixture(scope="module")
def gp_browser(clinic: ClinicStack) -> Iterator[tuple[httpx.Client, str]]:
    with httpx.Client(timeout=30) as gp:
        page = login_through_sts(gp, clinic.portal, "helsepersonell", clinic.gp)
        key = re.search(r'name="workplace" value="([^"]+)"', page.text)
        assert key is not None
        landed = follow_redirects(
            gp,
            gp.post(
                f"{clinic.portal}/helsepersonell/arbeidssted",
                data={"csrf_token": csrf_token(page), "workplace": key.group(1)},
            ),
        )
        yield gp, csrf_token(landed)


_TEXT = st.text(max_size=12) | st.sampled_from(
    ["", "on", "off", "renew", "refuse", "video", "2027-02-30", "25:00", "9" * 30, "flu-vaccine"]
    + ["2027-03-23", "09:00", "11:00", "5", "٥"]
)
_FORMS = st.dictionaries(
    st.sampled_from(
        [
            "text",
            "decision",
            "reason",
            "day",
            "time",
            "minutes",
            "mode",
            "slot",
            "service",
            "active",
            "message",
            "start_day",
            "start_time",
            "end_day",
            "end_time",
            "service-e-consultation",
            "action",
            "flu_day",
            "flu_from",
            "flu_to",
            "flu_minutes",
        ]
    ),
    _TEXT,
    max_size=6,
)
_PATHS = st.sampled_from(
    [
        "sak/{id}/svar",
        "sak/{id}/lukk",
        "sak/{id}/fornyelse",
        "timer",
        "timer/{id}/avlys",
        "timer/{id}/bekreft",
        "timer/{id}/flytt",
        "timer/vaksine",
        "tjeneste",
        "bekreftelse",
        "informasjon",
        "fravaer",
    ]
)


@settings(max_examples=40, deadline=None)
@given(path=_PATHS, ident=st.text(min_size=1, max_size=10), form=_FORMS)
def test_work_list_forms_never_fail_the_server(
    clinic: ClinicStack,
    gp_browser: tuple[httpx.Client, str],
    path: str,
    ident: str,
    form: dict[str, str],
) -> None:
    gp, token = gp_browser
    before = _rows(clinic)
    url = f"{clinic.portal}/helsepersonell/legekontor/{path.format(id=quote(ident, safe=''))}"
    r = gp.post(url, data={"csrf_token": token, **form})
    assert r.status_code < 500, (url, form, r.status_code)
    if 400 <= r.status_code < 500:
        assert _rows(clinic) == before, (url, form)


def test_staff_elsewhere_or_without_hpr_see_no_work_list(clinic: ClinicStack) -> None:
    """The work list is a GP office's: a doctor whose workplace is no office of the dialogue is
    told so in words (404); a worker without an HPR number gets no workplace, so no work list."""
    from onerecord.portals.i18n import Translator

    nin = clinic.other_doctor
    with httpx.Client(timeout=30) as worker:
        page = login_through_sts(worker, clinic.portal, "helsepersonell", nin)
        key = re.search(r'name="workplace" value="([^"]+)"', page.text)
        assert key is not None
        follow_redirects(
            worker,
            worker.post(
                f"{clinic.portal}/helsepersonell/arbeidssted",
                data={"csrf_token": csrf_token(page), "workplace": key.group(1)},
            ),
        )
        elsewhere = worker.get(f"{clinic.portal}/helsepersonell/legekontor")
        assert elsewhere.status_code == 404, elsewhere.text[:2000]
        assert Translator("nb")("clinic.error.no-office") in unescape(elsewhere.text)

    no_hpr = clinic.population.staff["no_hpr"].nin.value
    with httpx.Client(timeout=30) as worker:
        page = login_through_sts(worker, clinic.portal, "helsepersonell", no_hpr)
        assert 'name="workplace"' not in page.text
        refused = worker.get(f"{clinic.portal}/helsepersonell/legekontor")
        assert refused.status_code != 200
        assert Translator("nb")("clinic.inbox.heading") not in unescape(refused.text)
