"""The demo's media archive: Helse Nord's `onerecord media serve`, and the images sent to it.

The archive runs beside Helse Nord's document source (docs/media.md "In the demo"): SQLite and a
content folder under WORKDIR/media, DIMSE on a free port with one known modality (the demo's
own, `DEMO-MODALITY`), DICOMweb behind the STS and the hub, the patient's controls read from
the source and each study's manifest published there (ITI-65) with the archive's own publisher
key, which Helse Nord's source trusts.

Then the demo acts as the hospital's modalities and a nurse's phone: it generates synthetic
studies with `synth.dicom` for two people of the cast — the adult the banner prints (CT, chest
radiograph, echocardiography cine, a skin lesion at two dates, a wound clip) and the elderly
Helse Nord resident (a radiograph and the lesion photos) — sends the DICOM files over C-STORE
(pynetdicom, as a modality does), the clip as an MP4 over STOW-RS (IHE WIC, as a phone does,
with a health worker's token), and waits until the archive says every manifest is published.
Nothing is written to the archive's database from here. UIDs are drawn from the seed and the
patient's number, so a demo started again in the same workdir re-sends the same instances,
which the archive keeps once.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import socket
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
from pydicom.dataset import Dataset

from onerecord.media.security import MEDIA_STORE_SCOPE
from onerecord.search_client import StaffMember, practitioner_session
from onerecord.synth.dicom import (
    DicomPatient,
    SynthStudy,
    cr_study,
    patient_studies,
    skin_lesion_studies,
    wound_clip_mp4,
)
from onerecord.synth.population import Citizen
from onerecord.synth.regions import DEFAULT_REGIONS
from onerecord.trust.keys import SigningKey

__all__ = [
    "MEDIA_AE_TITLE",
    "MEDIA_ISSUER",
    "MEDIA_REGION",
    "MODALITY_AE_TITLE",
    "MediaLoad",
    "MediaPorts",
    "load_media",
    "media_environment",
    "wait_published",
]

MEDIA_REGION = 3
"""The index in DEFAULT_REGIONS of the region whose archive the demo runs: Helse Nord."""
MEDIA_AE_TITLE = "ONERECORD"
MODALITY_AE_TITLE = "DEMO-MODALITY"
"""The one modality the demo's archive knows (calling AE title); any other is refused."""
MEDIA_ISSUER = "onerecord-demo-media-nord"
"""The archive's `iss` in its publish proofs to Helse Nord's source."""
_READ_SCOPE = "nhn:phr/mhd/read-documentreferences"
_CT_SLICES = 20
_CT_SIZE = 512
_WOUND_SITE = ("30021000", "Lower leg")
_DESCRIPTIONS = {
    "CT abdomen": "CT abdomen med kontrast",
    "Rtg thorax": "Rtg thorax to plan",
    "UL hjerte": "Ekkokardiografi",
    "Hudfoto føflekk": "Hudfoto føflekk venstre skulder",
}
"""The hospital's own study descriptions (the manifests' titles), not synth.dicom's generic
ones."""
_WOUND_DESCRIPTION = "Sårvideo venstre legg"


@dataclass(frozen=True, slots=True)
class MediaPorts:
    """Where the demo's archive listens."""

    http: int
    dimse: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http}"

    @property
    def dicomweb(self) -> str:
        return f"{self.url}/dicomweb"


@dataclass
class MediaLoad:
    """What the demo sent: study UIDs per cast key, instances, and how long it took."""

    studies: dict[str, list[str]] = field(default_factory=dict)
    instances: int = 0
    seconds: float = 0.0


def media_environment() -> dict[str, str]:
    """The archive's settings beside its command line: the demo's modality, a short quiet
    period before a study is published. A modality's burst is over in about a second, but on a
    busy machine a pause between two slices can pass 0.3 s, and the study's first manifest then
    covers part of it and is replaced at once (a second ITI-65): 1 s keeps it one manifest, and
    the wait is hidden behind the regions' import."""
    return {
        "ONERECORD_MEDIA_MODALITIES": json.dumps(
            {MODALITY_AE_TITLE: {"host": "127.0.0.1", "port": 11113}}
        ),
        "ONERECORD_MEDIA_MANIFEST_QUIET_S": "1.0",
        "ONERECORD_MEDIA_MANIFEST_RETRY_MAX_S": "10",
        # A block the citizen sets is seen by the archive within a second (default 5 s).
        "ONERECORD_MEDIA_CONTROLS_TTL_S": "1",
    }


def _patient(citizen: Citizen) -> DicomPatient:
    sex = "M" if int(citizen.nin.value[8]) % 2 else "F"
    return DicomPatient(citizen.nin, citizen.family, citizen.given, citizen.birth_date, sex)


def _studies(cast: dict[str, Citizen], *, seed: int, today: date) -> dict[str, list[SynthStudy]]:
    """The adult's every kind of study; the elderly Helse Nord resident's radiograph and photos."""
    out: dict[str, list[SynthStudy]] = {}
    if "adult" in cast:
        out["adult"] = patient_studies(
            _patient(cast["adult"]),
            seed=seed,
            reference_date=today,
            ct_slices=_CT_SLICES,
            size=_CT_SIZE,
        )[:-1]  # the wound clip goes in as a phone sends it (WIC), not as a DICOM file
    if "elderly" in cast:
        person = _patient(cast["elderly"])
        rng = random.Random(f"dicom-{seed}-{person.nin.value}")
        out["elderly"] = [
            cr_study(person, rng, study_date=today - timedelta(days=60), size=512),
            *skin_lesion_studies(
                person, rng, first_date=today - timedelta(days=230), width=320, height=256
            ),
        ]
    for group in out.values():
        for study in group:
            for ds in study.instances:
                ds.StudyDescription = _DESCRIPTIONS.get(ds.StudyDescription, ds.StudyDescription)
    return out


def _uid(*parts: str) -> str:
    """A 2.25 UID from a name-based UUID (PS3.5 B.2): the same parts, the same UID."""
    name = "/".join(("onerecord-demo-media", *parts))
    return f"2.25.{uuid.UUID(bytes=hashlib.sha256(name.encode()).digest()[:16], version=4).int}"


def _c_store(datasets: Sequence[Dataset], port: int) -> int:
    """Send every instance over one association as the demo's modality; return how many."""
    from pynetdicom import AE  # imported here: only the demo's loader needs the SCU side

    ae = AE(ae_title=MODALITY_AE_TITLE)
    for sop_class, syntax in sorted(
        {(str(ds.SOPClassUID), str(ds.file_meta.TransferSyntaxUID)) for ds in datasets}
    ):
        ae.add_requested_context(sop_class, [syntax])
    assoc = ae.associate("127.0.0.1", port, ae_title=MEDIA_AE_TITLE)
    if not assoc.is_established:
        raise RuntimeError("the media archive refused the demo's modality")
    try:
        raw = assoc.dul.socket.socket if assoc.dul.socket else None
        if raw is not None:  # DIMSE's small PDUs wait on Nagle's algorithm otherwise
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for ds in datasets:
            status = assoc.send_c_store(ds)
            if status is None or getattr(status, "Status", None) != 0x0000:
                raise RuntimeError("the media archive did not store an instance (C-STORE)")
    finally:
        assoc.release()
    return len(datasets)


def _wic_body(citizen: Citizen, clip: bytes, *, taken: datetime, seed: int) -> tuple[bytes, str]:
    """A phone's STOW-RS request (IHE WIC): the patient, body site, a note, when, the MP4."""
    nin = citizen.nin.value
    code, meaning = _WOUND_SITE
    metadata = {
        "00100020": {"vr": "LO", "Value": [nin]},
        "00100010": {"vr": "PN", "Value": [{"Alphabetic": f"{citizen.family}^{citizen.given}"}]},
        "0020000D": {"vr": "UI", "Value": [_uid(str(seed), nin, "wound", "study")]},
        "0020000E": {"vr": "UI", "Value": [_uid(str(seed), nin, "wound", "series")]},
        "00080018": {"vr": "UI", "Value": [_uid(str(seed), nin, "wound", "instance")]},
        "0008002A": {"vr": "DT", "Value": [taken.strftime("%Y%m%d%H%M%S")]},
        "00081030": {"vr": "LO", "Value": [_WOUND_DESCRIPTION]},
        "00082218": {
            "vr": "SQ",
            "Value": [
                {
                    "00080100": {"vr": "SH", "Value": [code]},
                    "00080102": {"vr": "SH", "Value": ["SCT"]},
                    "00080104": {"vr": "LO", "Value": [meaning]},
                }
            ],
        },
        "00204000": {"vr": "LT", "Value": ["Sår venstre legg, dag 3"]},
        "7FE00010": {"vr": "OB", "BulkDataURI": "clip"},
    }
    boundary = f"wic-{uuid.uuid4().hex}"
    body = (
        f"--{boundary}\r\nContent-Type: application/dicom+json\r\n\r\n".encode()
        + orjson.dumps([metadata])
        + f"\r\n--{boundary}\r\nContent-Type: video/mp4\r\nContent-Location: clip\r\n\r\n".encode()
        + clip
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f'multipart/related; type="application/dicom+json"; boundary={boundary}'


async def _stow_clip(
    http: httpx.AsyncClient,
    citizen: Citizen,
    *,
    ports: MediaPorts,
    sts_url: str,
    client_id: str,
    client_key: SigningKey,
    staff: StaffMember,
    seed: int,
    today: date,
) -> str:
    """The wound clip as a nurse's phone sends it; return its StudyInstanceUID."""
    nin = citizen.nin.value
    session = await practitioner_session(
        http,
        sts_url=sts_url,
        client_id=client_id,
        client_key=client_key,
        staff=staff,
        patient=nin,
        audience=DEFAULT_REGIONS[MEDIA_REGION].home_community_id.urn,
        scope=f"{_READ_SCOPE} {MEDIA_STORE_SCOPE}",
    )
    clip = await asyncio.to_thread(wound_clip_mp4, seed)
    taken = datetime.combine(today - timedelta(days=5), datetime.min.time()).replace(hour=9)
    body, content_type = _wic_body(citizen, clip, taken=taken, seed=seed)
    url = f"{ports.dicomweb}/studies"
    answer = await http.post(
        url,
        content=body,
        headers={**session.headers("POST", url), "content-type": content_type},
    )
    if answer.status_code != 200:
        status = answer.status_code
        raise RuntimeError(f"the media archive refused the wound clip (STOW-RS {status})")
    return _uid(str(seed), nin, "wound", "study")


async def load_media(
    http: httpx.AsyncClient,
    cast: dict[str, Citizen],
    *,
    ports: MediaPorts,
    sts_url: str,
    client_id: str,
    client_key: SigningKey,
    staff: StaffMember,
    seed: int,
    today: date,
) -> MediaLoad:
    """Generate the cast's studies, send them as a modality and a phone would, and say what."""
    started = time.monotonic()
    studies = await asyncio.to_thread(_studies, cast, seed=seed, today=today)
    datasets = [ds for group in studies.values() for study in group for ds in study.instances]
    sent = await asyncio.to_thread(_c_store, datasets, ports.dimse)
    load = MediaLoad(
        studies={key: [s.study_instance_uid for s in group] for key, group in studies.items()},
        instances=sent,
    )
    if "adult" in cast:
        clip_study = await _stow_clip(
            http,
            cast["adult"],
            ports=ports,
            sts_url=sts_url,
            client_id=client_id,
            client_key=client_key,
            staff=staff,
            seed=seed,
            today=today,
        )
        load.studies["adult"].append(clip_study)
        load.instances += 1
    load.seconds = time.monotonic() - started
    return load


async def wait_published(http: httpx.AsyncClient, ports: MediaPorts, deadline: float) -> None:
    """Wait until the archive has no study left to publish to the source (its /healthz)."""
    while time.monotonic() < deadline:
        try:
            health: dict[str, Any] = (await http.get(f"{ports.url}/healthz", timeout=2)).json()
        except (httpx.HTTPError, ValueError):
            health = {}
        if health.get("manifests_pending") == 0:
            return
        await asyncio.sleep(0.1)
    raise TimeoutError("the media archive did not publish its manifests within the deadline")


def media_key_file(keys: Path) -> Path:
    """Where the archive's development publisher key lives (made by `demo.write_publishers`)."""
    return keys / "dev-media-publisher.jwk.json"
