"""Helse Nord's media archive in the demo network (docs/media.md "In the demo").

`onerecord demo` starts the archive, sends the cast's synthetic studies to it as a modality
(C-STORE) and a phone (STOW-RS, WIC) would, and waits until their manifests are at Helse Nord's
source. Here: DCMTK's echoscu is answered (and a stranger refused), the adult's manifests are in
the hub's search for a health worker, a study's metadata and the clip are read through the
hub's DICOMweb route, and a study the citizen blocks at the source is refused through the hub
and audited at the hub and the archive. The block is lifted in a `finally` (shared network).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import time
from typing import Any

import httpx
import pytest

from onerecord.search_client import HubSession, hub_change_control
from tests.media.dicom_tools import require_dcmtk
from tests.network.conftest import Network

pytestmark = [pytest.mark.slow, pytest.mark.shared_network]

MADO = "urn:ihe:rad:MADO"
_EXT_HCID = "https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-HomeCommunityId"


def media(network: Network) -> dict[str, Any]:
    return dict(network.manifest["media"])


def adult(network: Network) -> str:
    return str(network.manifest["patients"]["adult"])


def hub_get(session: HubSession, url: str, **headers: str) -> httpx.Response:
    return httpx.get(url, headers={**session.headers("GET", url), **headers}, timeout=30)


def imaging_documents(network: Network, patient: str) -> dict[str, dict[str, Any]]:
    """The patient's imaging manifests in the hub's search, by their StudyInstanceUID.

    A study's first manifest has the study's UID as its uniqueId; a replacement (instances that
    came after the first was published) a new one: the study is named in `context.related`.
    """
    bundle = network.hub_search(network.practitioner(patient), patient)
    found: dict[str, dict[str, Any]] = {}
    for entry in bundle.get("entry", []):
        doc = entry["resource"]
        if doc["resourceType"] != "DocumentReference" or "masterIdentifier" not in doc:
            continue
        if any(c.get("format", {}).get("code") == MADO for c in doc["content"]):
            for related in doc["context"]["related"]:
                if related["identifier"]["system"] == "urn:dicom:uid":
                    found[str(related["identifier"]["value"]).removeprefix("urn:oid:")] = doc
    return found


def test_the_archive_answers_c_echo_from_its_modality_and_refuses_a_stranger(
    network: Network,
) -> None:
    echoscu = require_dcmtk("echoscu")
    m = media(network)
    port = str(m["dimse_port"])
    known = subprocess.run(
        [echoscu, "-aet", m["modality_ae_title"], "-aec", m["ae_title"], "127.0.0.1", port],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert known.returncode == 0, known.stdout + known.stderr
    stranger = subprocess.run(
        [echoscu, "-aet", "STRANGER", "-aec", m["ae_title"], "127.0.0.1", port],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert stranger.returncode != 0
    assert "reject" in (stranger.stdout + stranger.stderr).lower()
    health = httpx.get(f"{m['url']}/healthz", timeout=10).json()
    assert health["dimse_port"] == m["dimse_port"] and health["manifests_pending"] == 0


def test_the_adults_studies_are_in_the_hubs_search_as_imaging_manifests(network: Network) -> None:
    m = media(network)
    studies = m["studies"]["adult"]
    assert len(studies) == 6  # CT, CR, ultrasound cine, the lesion twice, the wound clip
    found = imaging_documents(network, adult(network))
    assert set(studies) <= set(found)
    for uid in studies:
        doc = found[uid]
        assert doc["type"]["coding"][0]["code"] == "18748-4"
        (hcid,) = [e for e in doc["extension"] if e["url"] == _EXT_HCID]
        assert hcid["valueIdentifier"]["value"] == m["home_community_id"]
        related = [r["identifier"] for r in doc["context"]["related"]]
        assert any(
            (i["system"], i["value"]) == ("urn:dicom:uid", f"urn:oid:{uid}") for i in related
        )
    modalities = {
        c["code"] for uid in studies for e in found[uid]["context"]["event"] for c in e["coding"]
    }
    assert {"CT", "CR", "US", "XC"} <= modalities


def test_a_study_is_read_through_the_hubs_dicomweb_route(network: Network) -> None:
    m = media(network)
    patient = adult(network)
    session = network.practitioner(patient)
    ct = m["studies"]["adult"][0]
    url = f"{m['hub_dicomweb']}/studies/{ct}/metadata"
    answer = hub_get(session, url, accept="application/dicom+json")
    assert answer.status_code == 200, answer.text[:500]
    instances = answer.json()
    assert len(instances) == 20
    assert {i["0020000D"]["Value"][0] for i in instances} == {ct}
    assert {i["00100020"]["Value"][0] for i in instances} == {patient}
    assert {i["00080060"]["Value"][0] for i in instances} == {"CT"}
    # BulkDataURIs name the hub, so a client follows them with the token it has.
    hub = str(network.manifest["hub"]["base_url"])
    assert instances[0]["7FE00010"]["BulkDataURI"].startswith(f"{hub}/dicomweb/")
    # The wound clip a phone sent (WIC) plays through the hub with byte ranges.
    clip = m["studies"]["adult"][-1]
    (meta,) = hub_get(
        session, f"{m['hub_dicomweb']}/studies/{clip}/metadata", accept="application/dicom+json"
    ).json()
    series, sop = meta["0020000E"]["Value"][0], meta["00080018"]["Value"][0]
    rendered = f"{m['hub_dicomweb']}/studies/{clip}/series/{series}/instances/{sop}/rendered"
    part = hub_get(session, rendered, accept="video/mp4", range="bytes=0-1023")
    assert part.status_code == 206, part.text[:500]
    assert part.headers["content-type"] == "video/mp4" and part.content[4:8] == b"ftyp"


def _block(network: Network, citizen: HubSession, method: str, uid: str, hcid: str) -> None:
    async def call() -> httpx.Response:
        async with httpx.AsyncClient(timeout=30) as http:
            return await hub_change_control(
                http,
                citizen,
                hub_base=str(network.manifest["hub"]["base_url"]),
                method=method,
                path=f"document-blocks/{uid}",
                home_community_id=hcid,
            )

    answer = asyncio.run(call())
    assert answer.status_code == 200, answer.text


def _rows(path: Any, uid: str) -> list[tuple[str, str, dict[str, Any]]]:
    db = sqlite3.connect(path)
    try:
        rows = db.execute(
            "select action, outcome, event from audit_event where event like ? order by seq",
            (f"%{uid}%",),
        ).fetchall()
    finally:
        db.close()
    return [(a, o, json.loads(e)) for a, o, e in rows]


def test_a_study_the_citizen_blocks_is_refused_through_the_hub_and_audited(
    network: Network,
) -> None:
    m = media(network)
    patient = adult(network)
    cr = m["studies"]["adult"][1]
    url = f"{m['hub_dicomweb']}/studies/{cr}/metadata"
    doctor = network.practitioner(patient)
    assert hub_get(doctor, url, accept="application/dicom+json").status_code == 200
    # The citizen blocks the document they see in their list: the study's manifest.
    unique_id = str(imaging_documents(network, patient)[cr]["masterIdentifier"]["value"])
    unique_id = unique_id.removeprefix("urn:oid:")
    citizen = network.citizen(patient)
    _block(network, citizen, "PUT", unique_id, m["home_community_id"])
    try:
        # The demo's archive keeps a patient's controls for 1 s (CONTROLS_TTL_S).
        deadline = time.monotonic() + 10
        while (answer := hub_get(doctor, url, accept="application/dicom+json")).status_code == 200:
            assert time.monotonic() < deadline, "the block did not reach the archive"
            time.sleep(0.5)
        assert answer.status_code == 403, answer.text[:500]
        assert "document-blocked" in answer.text
        # The rest of the patient's images stay readable.
        ct = m["studies"]["adult"][0]
        other = hub_get(doctor, f"{m['hub_dicomweb']}/studies/{ct}/metadata")
        assert other.status_code == 200
        # The manifest is masked in the health worker's search.
        assert cr not in imaging_documents(network, patient)
    finally:
        _block(network, citizen, "DELETE", unique_id, m["home_community_id"])
    workdir = network.layout.workdir
    archive = [
        e
        for _a, o, e in _rows(workdir / "media" / "archive.db", cr)
        if e["reason"] and o != "success"
    ]
    assert any(e["reason"] == "document-blocked" and e["patient_id"] == patient for e in archive)
    # The hub audited the retrieve with the region's refusal.
    denied = [m["home_community_id"], "denied"]
    hub = [e for a, _o, e in _rows(workdir / "hub" / "audit.db", cr) if a == "retrieve"]
    assert any(denied in e["regions"] and e["patient_id"] == patient for e in hub)
