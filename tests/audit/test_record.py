from __future__ import annotations

from datetime import datetime, timedelta, timezone

import orjson
import pytest

from onerecord.audit import AuditCitizen, AuditOutcome, AuditRecord
from tests.audit.factories import DOCTOR, JTI, T0, citizen_record, retrieve_record, search_record


@pytest.mark.parametrize("make", [search_record, retrieve_record, citizen_record])
def test_record_survives_its_json_form(make) -> None:  # type: ignore[no-untyped-def]
    record = make(7, emergency_override=True)
    stored = orjson.loads(orjson.dumps(record.to_dict()))
    assert AuditRecord.from_dict(stored) == record


def test_recorded_is_kept_in_utc() -> None:
    oslo = timezone(timedelta(hours=2))
    record = search_record(recorded=datetime(2025, 6, 15, 12, 0, tzinfo=oslo))
    assert record.recorded == T0 and record.recorded.utcoffset() == timedelta(0)
    assert record.to_dict()["recorded"] == "2025-06-15T10:00:00.000000+00:00"


def test_only_the_jti_is_kept() -> None:
    record = search_record()
    assert record.to_dict()["token_jti"] == JTI
    assert "token" not in record.to_dict()


@pytest.mark.parametrize(
    "changes",
    [
        {"recorded": datetime(2025, 1, 1)},
        {"outcome": AuditOutcome.DENIED},
        {"citizen": AuditCitizen("x"), "practitioner": DOCTOR},
    ],
)
def test_inconsistent_records_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        search_record(**changes)
