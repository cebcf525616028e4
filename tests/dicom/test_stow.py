from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from onerecord.dicom.json_model import parse_dicom_json
from onerecord.dicom.stow import (
    FailedInstance,
    FailureReason,
    StoredInstance,
    StoreResponse,
    WarningReason,
)

CT = "1.2.840.10008.5.1.4.1.1.2"
BASE = "https://archive.test/dicomweb/studies/1.2.3"


def _stored(n: int, warning: WarningReason | None = None) -> StoredInstance:
    return StoredInstance(CT, f"1.2.3.{n}", f"{BASE}/series/1.2.3.9/instances/1.2.3.{n}", warning)


def test_all_stored_is_200_with_retrieve_urls() -> None:
    response = StoreResponse(stored=(_stored(1), _stored(2)), retrieve_url=BASE)
    assert response.status == 200
    body = orjson.loads(response.render())
    assert body["00081190"] == {"vr": "UR", "Value": [BASE]}
    items = body["00081199"]["Value"]
    assert items[0]["00081150"] == {"vr": "UI", "Value": [CT]}
    assert items[1]["00081155"] == {"vr": "UI", "Value": ["1.2.3.2"]}
    assert items[1]["00081190"]["Value"] == [f"{BASE}/series/1.2.3.9/instances/1.2.3.2"]
    assert "00081198" not in body and "00081196" not in items[0]


def test_some_failed_or_warned_is_202() -> None:
    failed = FailedInstance(CT, "1.2.3.3", FailureReason.DATA_SET_DOES_NOT_MATCH_SOP_CLASS)
    response = StoreResponse(stored=(_stored(1),), failed=(failed,))
    assert response.status == 202
    body = response.to_json()
    assert body["00081198"]["Value"][0]["00081197"] == {"vr": "US", "Value": [0xA900]}
    warned = StoreResponse(stored=(_stored(1, WarningReason.COERCION_OF_DATA_ELEMENTS),))
    assert warned.status == 202
    item = warned.to_json()["00081199"]["Value"][0]
    assert item["00081196"] == {"vr": "US", "Value": [0xB000]}


def test_none_stored_is_409() -> None:
    failed = FailedInstance("", "", FailureReason.CANNOT_UNDERSTAND)
    response = StoreResponse(failed=(failed,))
    assert response.status == 409
    (ds,) = parse_dicom_json(response.render())
    assert ds.FailedSOPSequence[0].FailureReason == 0xC000
    assert StoreResponse().status == 409


@settings(max_examples=100, deadline=None)
@given(
    stored=st.lists(st.sampled_from([None, *WarningReason]), max_size=4),
    failed=st.lists(st.sampled_from(list(FailureReason)), max_size=4),
)
def test_status_follows_from_the_outcome(
    stored: list[WarningReason | None], failed: list[FailureReason]
) -> None:
    response = StoreResponse(
        stored=tuple(_stored(i, w) for i, w in enumerate(stored)),
        failed=tuple(FailedInstance(CT, f"9.{i}", r) for i, r in enumerate(failed)),
    )
    (ds,) = parse_dicom_json(response.render())
    assert len(ds.get("ReferencedSOPSequence", [])) == len(stored)
    assert [item.FailureReason for item in ds.get("FailedSOPSequence", [])] == failed
    if not stored:
        assert response.status == 409
    elif failed or any(stored):
        assert response.status == 202
    else:
        assert response.status == 200
