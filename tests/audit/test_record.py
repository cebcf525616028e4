from __future__ import annotations

from dataclasses import asdict, replace
from datetime import datetime, timedelta, timezone

import orjson
import pytest

from onerecord.audit import AuditCitizen, AuditCode, AuditEmergency, AuditOutcome, AuditRecord
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
        {"system": "urn:oid:1.2.3", "practitioner": DOCTOR},
    ],
)
def test_inconsistent_records_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        search_record(**changes)


def test_a_system_caller_survives_and_old_records_keep_their_form() -> None:
    record = search_record(practitioner=None, system="urn:oid:2.16.578.1.12.4.5.100.1.42")
    stored = orjson.loads(orjson.dumps(record.to_dict()))
    assert stored["system"] == "urn:oid:2.16.578.1.12.4.5.100.1.42"
    assert AuditRecord.from_dict(stored) == record
    # A record without a system has no such key: the hash chain of older records is unchanged.
    assert "system" not in search_record().to_dict()


def test_the_caller_is_stored_as_asdict_gives_it() -> None:
    """The stored (hash-chained) form of the caller is unchanged by the copy-free conversion."""
    emergency = AuditEmergency(
        access_basis="AKUTT",
        reason_category="LIVSFARE",
        until="2025-06-15T14:00:00+00:00",
        classes=(AuditCode("urn:oid:2.16.578.1.12.4.1.1.9602", "A00-04", "Epikriser"),),
        documents=2,
        opened=("1.2.3", "1.2.4"),
    )
    doctor = replace(DOCTOR, access_basis="AKUTT", emergency=emergency)
    for record in (search_record(practitioner=doctor), citizen_record()):
        stored = record.to_dict()
        for caller in ("practitioner", "citizen"):
            value = getattr(record, caller)
            assert stored[caller] == (asdict(value) if value is not None else None)
        assert orjson.dumps(stored["practitioner"]) == orjson.dumps(
            asdict(record.practitioner) if record.practitioner else None
        )
