"""The wire against dicomweb-client's own encoders and decoders (a peer no one here wrote).

These call dicomweb-client's multipart and Accept helpers directly (private methods of the
pinned 0.61.2), so the bytes and headers are exactly what its STOW-RS and WADO-RS calls use.
"""

from __future__ import annotations

import orjson
import pytest
import requests
from dicomweb_client.web import DICOMwebClient
from pydicom.dataset import Dataset

from onerecord.dicom.json_model import dataset_to_json, parse_dicom_json
from onerecord.dicom.multipart import (
    MultipartParser,
    OutgoingPart,
    new_boundary,
    parse_related_content_type,
    related_content_type,
    render_multipart,
)
from onerecord.dicom.wado import (
    EXPLICIT_VR_LITTLE_ENDIAN,
    WadoResource,
    negotiate,
    offers_for,
)

JPEG = "1.2.840.10008.1.2.4.50"


@pytest.fixture
def client() -> DICOMwebClient:
    # No request is sent: only the client's encoders, decoders and header builders are used.
    return DICOMwebClient(url="http://127.0.0.1:9/dicomweb")


def test_a_stow_request_as_dicomweb_client_encodes_it() -> None:
    boundary = "0f3cf5c0-0e8d-4a2a-9a6e-5f0b0c0ffee0"
    content_type = f'multipart/related; type="application/dicom"; boundary={boundary}'
    instances = [b"\x00" * 128 + b"DICM one", b"\x00" * 128 + b"DICM two\r\n--"]
    body = DICOMwebClient._encode_multipart_message(instances, content_type)
    related = parse_related_content_type(content_type)
    parser = MultipartParser(related.boundary)
    parts = [p for i in range(0, len(body), 7) for p in parser.feed(body[i : i + 7])]
    parser.close()
    assert [p.body for p in parts] == instances
    assert all(p.content_type and p.content_type.essence == "application/dicom" for p in parts)


def test_a_wado_answer_as_dicomweb_client_decodes_it(client: DICOMwebClient) -> None:
    boundary = new_boundary()
    frames = [b"\x01\x02" * 10, b"", b"\r\n--" + boundary.encode()[:-1]]
    response = requests.models.Response()
    response.status_code = 200
    response.headers["content-type"] = related_content_type(
        "application/octet-stream", boundary, transfer_syntax=EXPLICIT_VR_LITTLE_ENDIAN
    )
    parts = [OutgoingPart("application/octet-stream", f) for f in frames]
    response._content = b"".join(render_multipart(parts, boundary))
    assert list(client._decode_multipart_message(response, stream=False)) == frames


@pytest.mark.parametrize(
    ("media_types", "resource", "expected"),
    [
        (None, WadoResource.INSTANCES, EXPLICIT_VR_LITTLE_ENDIAN),
        ((("application/dicom", "*"),), WadoResource.INSTANCES, JPEG),
        ((("application/dicom", JPEG),), WadoResource.INSTANCES, JPEG),
        (
            (("application/octet-stream", EXPLICIT_VR_LITTLE_ENDIAN),),
            WadoResource.FRAMES,
            EXPLICIT_VR_LITTLE_ENDIAN,
        ),
        ((("image/jpeg", JPEG),), WadoResource.FRAMES, JPEG),
    ],
)
def test_the_clients_accept_headers_are_understood(
    client: DICOMwebClient,
    media_types: tuple[tuple[str, str], ...] | None,
    resource: WadoResource,
    expected: str,
) -> None:
    root = "application/dicom" if resource is WadoResource.INSTANCES else "application/octet-stream"
    supported = {
        EXPLICIT_VR_LITTLE_ENDIAN: root,
        "*": root,
        JPEG: ("application/dicom", "image/jpeg"),
    }
    if media_types is None:
        header = client._build_multipart_accept_header_field_value(((root,)), supported)
    else:
        header = client._build_multipart_accept_header_field_value(media_types, supported)
    chosen = negotiate(offers_for(resource, stored_transfer_syntax=JPEG), header)
    assert chosen.transfer_syntax == expected


def test_our_json_is_what_pydicom_in_the_client_reads() -> None:
    ds = Dataset()
    ds.PatientName = "Nordmann^Kari"
    ds.PatientID = "12345"
    ds.ModalitiesInStudy = ["CT", "MR"]
    ds.NumberOfStudyRelatedInstances = "3"
    body = orjson.dumps([dataset_to_json(ds)])
    theirs = Dataset.from_json(orjson.loads(body)[0])
    assert theirs == ds
    (ours,) = parse_dicom_json(orjson.dumps([theirs.to_json_dict()]))
    assert ours == ds
