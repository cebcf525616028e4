"""Photos in the clinic's work list (issue 15): the office sees the citizen's photos and
attaches photos to its answer, checked and cleaned as the citizen's are.

Real parts on 127.0.0.1 (clinic_harness): the STS, the hub, the dialogue service and the
portals. The citizen sends an e-consultation with a photo over the FHIR API; the GP opens it in
the work list, sees the photo through the portal (the service's Binary, read with the worker's
token, type checked, nosniff) and answers with a photo of their own, which the citizen reads; a
file that is not a photo is refused with 400 and no answer is stored.
"""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from tests.dialogue.clinic_harness import ClinicStack, running_clinic
from tests.dialogue.harness import communication
from tests.dialogue.test_photos import camera_jpeg
from tests.portals.pages import csrf_token, follow_redirects, login_through_sts

pytestmark = [pytest.mark.slow]
CLINIC = "/helsepersonell/legekontor"


@pytest.fixture(scope="module")
def clinic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClinicStack]:
    with running_clinic(Path(tmp_path_factory.mktemp("clinic-photos"))) as stack:
        yield stack


@pytest.fixture(scope="module")
def gp(clinic: ClinicStack) -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as http:
        page = login_through_sts(http, clinic.portal, "helsepersonell", clinic.gp)
        key = re.search(r'name="workplace" value="([^"]+)"', page.text)
        assert key is not None
        follow_redirects(
            http,
            http.post(
                f"{clinic.portal}/helsepersonell/arbeidssted",
                data={"csrf_token": csrf_token(page), "workplace": key.group(1)},
            ),
        )
        yield http


def asked_with_photo(clinic: ClinicStack, text: str) -> str:
    """The citizen's e-consultation with a camera photo; return its Task's id."""
    patient = clinic.patient("adult")
    body = communication(patient, text)
    encoded = base64.b64encode(camera_jpeg(900, 600)).decode()
    body["payload"].append({"contentAttachment": {"contentType": "image/jpeg", "data": encoded}})
    sent = clinic.post(clinic.citizen(patient), "Communication", body)
    assert sent.status_code == 201, sent.text
    tasks = clinic.get(clinic.citizen(patient), "Task", patient=patient).json()
    return next(
        e["resource"]["id"]
        for e in tasks["entry"]
        if e["resource"]["focus"]["reference"] == f"Communication/{sent.json()['id']}"
    )


def thread_of(clinic: ClinicStack) -> list[dict[str, object]]:
    patient = clinic.patient("adult")
    r = clinic.get(clinic.citizen(patient), "Communication", patient=patient)
    assert r.status_code == 200, r.text
    return [e["resource"] for e in r.json().get("entry", [])]


def png_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (120, 80), (10, 120, 200)).save(out, format="PNG")
    return out.getvalue()


def test_the_office_sees_the_photo_and_answers_with_one(
    clinic: ClinicStack, gp: httpx.Client
) -> None:
    task = asked_with_photo(clinic, "Utslett på armen, se bildet.")
    case = gp.get(f"{clinic.portal}{CLINIC}/sak/{task}")
    assert case.status_code == 200, case.text[:2000]
    found = re.search(rf'<img class="photo" src="{CLINIC}/bilde/([^"]+)"', case.text)
    assert found is not None, case.text[:3000]
    photo = gp.get(f"{clinic.portal}{CLINIC}/bilde/{found.group(1)}")
    assert photo.status_code == 200
    assert photo.headers["content-type"] == "image/jpeg"
    assert photo.headers["x-content-type-options"] == "nosniff"
    assert b"Synthetic Phone" not in photo.content
    assert gp.get(f"{clinic.portal}{CLINIC}/bilde/no-such-photo").status_code == 404
    assert gp.get(f"{clinic.portal}{CLINIC}/bilde/..%2Fetc").status_code == 404

    answered = gp.post(
        f"{clinic.portal}{CLINIC}/sak/{task}/svar",
        data={"csrf_token": csrf_token(case), "text": "Smør med krem, slik bildet viser."},
        files=[("bilde", ("krem.png", png_bytes(), "image/png"))],
    )
    assert answered.status_code in (302, 303), answered.text[:2000]
    reply = next(m for m in thread_of(clinic) if "Smør med krem" in str(m["payload"]))
    payload = reply["payload"]
    assert isinstance(payload, list) and len(payload) == 2
    url = f"{clinic.dialogue}/fhir/{payload[1]['contentAttachment']['url']}"
    token = clinic.citizen(clinic.patient("adult"))
    mine = clinic.client.get(url, headers=token.headers("GET", url))
    assert mine.status_code == 200 and mine.headers["content-type"] == "image/png"


@pytest.mark.parametrize(
    "files",
    [
        [("bilde", ("doc.pdf", b"%PDF-1.7 not a photo", "application/pdf"))],
        [("bilde", ("fake.jpg", png_bytes(), "image/jpeg"))],
        [("bilde", (f"{n}.png", png_bytes(), "image/png")) for n in range(4)],
    ],
)
def test_an_answer_with_a_bad_photo_is_refused_and_nothing_is_sent(
    clinic: ClinicStack, gp: httpx.Client, files: list[tuple[str, tuple[str, bytes, str]]]
) -> None:
    task = asked_with_photo(clinic, "Et spørsmål med bilde.")
    case = gp.get(f"{clinic.portal}{CLINIC}/sak/{task}")
    before = len(thread_of(clinic))
    r = gp.post(
        f"{clinic.portal}{CLINIC}/sak/{task}/svar",
        data={"csrf_token": csrf_token(case), "text": "Svar med feil fil."},
        files=files,
    )
    assert r.status_code in (400, 413), r.text[:2000]
    assert r.status_code != 400 or 'id="error"' in r.text
    assert len(thread_of(clinic)) == before


@pytest.fixture(scope="module")
def waiting_task(clinic: ClinicStack) -> str:
    return asked_with_photo(clinic, "Et spørsmål for hypothesis.")


@settings(max_examples=25, deadline=None)
@given(
    data=st.one_of(
        st.binary(max_size=300),
        st.binary(max_size=200).map(lambda b: b"\xff\xd8\xff" + b),
        st.binary(max_size=200).map(lambda b: b"\x89PNG\r\n\x1a\n" + b),
    ),
    kind=st.sampled_from(["image/jpeg", "image/png", "image/gif", "text/html", ""]),
)
def test_any_file_with_an_answer_is_4xx_or_sent_never_5xx(
    clinic: ClinicStack, gp: httpx.Client, waiting_task: str, data: bytes, kind: str
) -> None:
    case = gp.get(f"{clinic.portal}{CLINIC}/sak/{waiting_task}")
    before = len(thread_of(clinic))
    r = gp.post(
        f"{clinic.portal}{CLINIC}/sak/{waiting_task}/svar",
        data={"csrf_token": csrf_token(case), "text": "Svar."},
        files=[("bilde", ("x", data, kind))] if kind else [("bilde", ("x", data))],
    )
    assert r.status_code < 500, r.text[:2000]
    if r.status_code >= 400:
        assert len(thread_of(clinic)) == before
