"""Reading a region's answer to `_summary=count` strictly (hub/count.py)."""

from __future__ import annotations

import orjson
import pytest

from onerecord.hub.count import parse_count
from onerecord.hub.fanout import RegionCallFailed
from onerecord.hub.results import RegionStatus


def test_a_count_answer_gives_its_total_and_issues() -> None:
    notice = {"severity": "information", "code": "suppressed", "diagnostics": "reserved"}
    body = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": 7,
        "entry": [{"resource": {"resourceType": "OperationOutcome", "issue": [notice]}}],
    }
    assert parse_count(orjson.dumps(body)) == (7, [notice])


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"resourceType": "OperationOutcome"}',
        b'{"resourceType": "Bundle", "type": "batch", "total": 1}',
        b'{"resourceType": "Bundle", "type": "searchset"}',
        b'{"resourceType": "Bundle", "type": "searchset", "total": -1}',
        b'{"resourceType": "Bundle", "type": "searchset", "total": true}',
        b'{"resourceType": "Bundle", "type": "searchset", "total": 1.5}',
        b'{"resourceType": "Bundle", "type": "searchset", "total": 1, "entry": 5}',
        b'{"resourceType": "Bundle", "type": "searchset", "total": 1,'
        b' "entry": [{"resource": {"resourceType": "DocumentReference"}}]}',
    ],
)
def test_anything_else_is_an_invalid_response(body: bytes) -> None:
    with pytest.raises(RegionCallFailed) as refused:
        parse_count(body)
    assert refused.value.status is RegionStatus.INVALID_RESPONSE
