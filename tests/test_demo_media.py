"""The demo's media loader without a network: what it makes for whom, and the same UIDs again."""

from __future__ import annotations

from datetime import date, datetime
from email.parser import BytesParser

import orjson

from onerecord.demo_media import _studies, _uid, _wic_body, media_environment
from onerecord.dicom import is_uid
from onerecord.synth.population import generate_population

TODAY = date(2026, 12, 3)


def test_the_adult_and_the_elderly_get_their_studies_under_their_synthetic_numbers() -> None:
    cast = dict(generate_population(seed=7, citizens=0, reference_date=TODAY).cast)
    studies = _studies(cast, seed=1, today=TODAY)
    assert set(studies) == {"adult", "elderly"}
    kinds = [[s.instances[0].Modality for s in group] for group in studies.values()]
    assert kinds == [["CT", "CR", "US", "XC", "XC"], ["CR", "XC", "XC"]]
    assert len(studies["adult"][0].instances) == 20
    assert [s.instances[0].StudyDescription for s in studies["adult"]][:3] == [
        "CT abdomen med kontrast",
        "Rtg thorax to plan",
        "Ekkokardiografi",
    ]
    for key, group in studies.items():
        ids = {ds.PatientID for s in group for ds in s.instances}
        assert ids == {cast[key].nin.value}
    # The same seed and people, the same UIDs: a demo started again re-sends the same instances.
    again = _studies(cast, seed=1, today=TODAY)
    assert [s.study_instance_uid for g in again.values() for s in g] == [
        s.study_instance_uid for g in studies.values() for s in g
    ]


def test_the_phones_request_names_fixed_uids_and_the_clip() -> None:
    cast = generate_population(seed=7, citizens=0, reference_date=TODAY).cast
    adult = cast["adult"]
    body, content_type = _wic_body(adult, b"MP4", taken=datetime(2026, 11, 28, 9), seed=1)
    message = BytesParser().parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    metadata, clip = message.get_payload()
    (fields,) = orjson.loads(metadata.get_payload(decode=True))
    assert fields["00100020"]["Value"] == [adult.nin.value]
    assert fields["0020000D"]["Value"] == [_uid("1", adult.nin.value, "wound", "study")]
    assert all(is_uid(fields[t]["Value"][0]) for t in ("0020000D", "0020000E", "00080018"))
    assert clip["Content-Location"] == "clip" and clip.get_payload(decode=True) == b"MP4"
    assert orjson.loads(media_environment()["ONERECORD_MEDIA_MODALITIES"]) == {
        "DEMO-MODALITY": {"host": "127.0.0.1", "port": 11113}
    }
