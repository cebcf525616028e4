from __future__ import annotations

import pytest

from onerecord.mhd import capability_statement
from tests.mhd.oracle import validate


@pytest.mark.parametrize("kind", ["source", "hub"])
def test_capability_statement_is_valid_r4(kind: str) -> None:
    body = capability_statement(
        base_url="http://127.0.0.1:8000/fhir",
        software_name="onerecord",
        version="0.1.0",
        kind=kind,  # type: ignore[arg-type]
    )
    validate(body)
    rest = body["rest"][0]
    types = {r["type"]: r for r in rest["resource"]}
    assert {"DocumentReference", "Binary"} <= set(types)
    params = {p["name"] for p in types["DocumentReference"]["searchParam"]}
    assert {"patient.identifier", "status", "date", "security-label", "author.family"} <= params
    assert body["format"] == ["application/fhir+json", "json"]
    recipient = any(i.endswith("DocumentRecipient") for i in body["instantiates"])
    transaction = "interaction" in rest
    assert recipient is transaction is (kind == "source")
