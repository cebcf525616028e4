"""The demo's imaging studies as the viewer's tests find them (docs/media.md "In the demo").

`onerecord demo` runs Helse Nord's media archive and sends the adult of the cast a CT, a chest
radiograph, an ultrasound cine, a skin lesion photographed twice and a wound clip (a phone's
MP4, WIC), waiting until every manifest is at the region's source. `demo_imaging(network,
patient)` reads what the viewer's tests need from the hub, as a health worker: each study's
manifest in the search (its title in the list, its uniqueId, which a block names), and its
first series and instances from the hub's DICOMweb route. Nothing is written: the viewer's
tests run on the worker's shared network.

Everything runs in a thread: a browser test module's main thread runs no event loop of its own
(tests/browser/conftest.py).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from onerecord.search_client import HubSession
from tests.network.conftest import Network

__all__ = ["DemoImaging", "Study", "demo_imaging"]

MADO = "urn:ihe:rad:MADO"
_T = TypeVar("_T")


@dataclass(frozen=True)
class Study:
    """One of the demo's studies: its UID, its manifest in the list, its first series."""

    uid: str
    title: str
    """The manifest's title as the list shows it: "<StudyDescription> (<modalities>)"."""
    unique_id: str
    """The manifest's uniqueId (without `urn:oid:`), which a document block names."""
    series: str
    instances: tuple[str, ...]
    """The first series' SOP Instance UIDs, by InstanceNumber."""


@dataclass(frozen=True)
class DemoImaging:
    """The adult's studies in the demo's archive (demo_media.py sends them in this order)."""

    region: int
    hcid: str
    ct: Study
    radiograph: Study
    cine: Study
    photos: tuple[Study, Study]
    clip: Study


def _in_thread(call: Callable[[], _T]) -> _T:
    """Run `call` (which may run an event loop) off the browser module's main thread."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(call).result()


def _manifests(network: Network, session: HubSession, patient: str) -> dict[str, dict[str, Any]]:
    """The patient's imaging manifests in the hub's search, by the StudyInstanceUID they name."""
    found: dict[str, dict[str, Any]] = {}
    for entry in network.hub_search(session, patient).get("entry", []):
        doc = entry["resource"]
        if doc.get("resourceType") != "DocumentReference" or "masterIdentifier" not in doc:
            continue
        if not any(c.get("format", {}).get("code") == MADO for c in doc["content"]):
            continue
        for related in doc["context"]["related"]:
            if related["identifier"]["system"] == "urn:dicom:uid":
                found[str(related["identifier"]["value"]).removeprefix("urn:oid:")] = doc
    return found


def _first_series(session: HubSession, hub_dicomweb: str, uid: str) -> tuple[str, tuple[str, ...]]:
    url = f"{hub_dicomweb}/studies/{uid}/metadata"
    headers = {**session.headers("GET", url), "accept": "application/dicom+json"}
    answer = httpx.get(url, headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text[:500]
    instances = answer.json()
    series = str(instances[0]["0020000E"]["Value"][0])
    ordered = sorted(
        (i for i in instances if i["0020000E"]["Value"][0] == series),
        key=lambda i: int(i.get("00200013", {}).get("Value", [0])[0]),
    )
    return series, tuple(str(i["00080018"]["Value"][0]) for i in ordered)


def demo_imaging(network: Network, patient: str) -> DemoImaging:
    """The adult's studies in the demo's archive, read through the hub as a health worker."""
    media = network.manifest["media"]
    assert patient == network.manifest["patients"]["adult"], "the demo images the adult"
    uids = [str(u) for u in media["studies"]["adult"]]
    hcids = [str(r["home_community_id"]) for r in network.manifest["regions"]]

    def read() -> DemoImaging:
        session = network.practitioner(patient)
        docs = _manifests(network, session, patient)
        assert set(uids) <= set(docs), f"listed: {sorted(docs)}"
        studies = []
        for uid in uids:
            doc = docs[uid]
            (content,) = [c for c in doc["content"] if c.get("format", {}).get("code") == MADO]
            series, instances = _first_series(session, str(media["hub_dicomweb"]), uid)
            studies.append(
                Study(
                    uid=uid,
                    title=str(content["attachment"]["title"]),
                    unique_id=str(doc["masterIdentifier"]["value"]).removeprefix("urn:oid:"),
                    series=series,
                    instances=instances,
                )
            )
        ct, radiograph, cine, first_photo, second_photo, clip = studies
        return DemoImaging(
            region=hcids.index(str(media["home_community_id"])),
            hcid=str(media["home_community_id"]),
            ct=ct,
            radiograph=radiograph,
            cine=cine,
            photos=(first_photo, second_photo),
            clip=clip,
        )

    return _in_thread(read)
