"""The citizen's self-service at the hub, pure parts: input, door check, merging the regions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from onerecord.audit import CitizenLogEntry
from onerecord.domain import DocumentUniqueId, NationalIdentityNumber
from onerecord.hub.directory import Region
from onerecord.hub.merge import EXT_HOME_COMMUNITY_ID, EXT_REGION_STATUS
from onerecord.hub.results import RegionResult, RegionStatus
from onerecord.hub.self_service import (
    EXT_AUDIT_HOME_COMMUNITY_ID,
    ControlChange,
    ControlKind,
    change_status,
    citizen_patient,
    merge_access_log,
    merge_controls,
    parse_controls,
    parse_patient,
    region_root,
    region_states,
    tag_audit_event,
)
from onerecord.mhd import BadRequest
from onerecord.source.self_service import audit_event_entry, controls_json
from onerecord.trust.access_token import (
    AccessTokenClaims,
    Citizen,
    HealthPersonnel,
    Principal,
    principal_from_claims,
)
from onerecord.trust.errors import AccessDenied, PatientBindingFailed
from onerecord.trust.policy import PatientControls
from tests.hub.conftest import HCID_HSO, HCID_MIDT, HCID_VEST, failed_result, make_region
from tests.hub.tokens import practitioner_details
from tests.sts.fakes import CHILD_8, DOCTOR, PARENT

FNR = "urn:oid:2.16.578.1.12.4.1.4.1"
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
HSO, VEST, MIDT = make_region(HCID_HSO), make_region(HCID_VEST), make_region(HCID_MIDT)


def event(minutes: int, who: str = "Kari Lege") -> dict[str, Any]:
    """An AuditEvent as a source renders it, `minutes` after T0."""
    return audit_event_entry(
        CitizenLogEntry(
            time=T0 + timedelta(minutes=minutes),
            who_name=who,
            organisation="Sykehuset",
            department=None,
            healthcare_service="Somatikk",
            purpose="Behandling",
            action="search",
            documents_opened=False,
            emergency=False,
        )
    )


def ok(region: Region, *resources: dict[str, Any]) -> RegionResult:
    return RegionResult(region, RegionStatus.OK, 10.0, resources=resources)


def controls(
    patient: str, *, reserved: bool = False, docs: tuple[str, ...] = (), hprs: tuple[str, ...] = ()
) -> dict[str, Any]:
    """A controls object as a source renders it."""
    return controls_json(
        PatientControls(
            NationalIdentityNumber(patient),
            reserved_since=T0 if reserved else None,
            blocked_documents=frozenset(DocumentUniqueId(d) for d in docs),
            blocked_practitioners=frozenset(hprs),
        )
    )


# --- input -----------------------------------------------------------------------------------


def test_parse_patient_takes_a_token_or_a_bare_number() -> None:
    assert parse_patient(f"{FNR}|{PARENT}", "patient.identifier") == NationalIdentityNumber(PARENT)
    assert parse_patient(PARENT, "patient") == NationalIdentityNumber(PARENT)
    assert parse_patient(None, "patient") is None


@pytest.mark.parametrize(
    "value",
    ["12345678901", f"{FNR}|", "", f"urn:oid:1.2.3|{PARENT}", "x" * 40],
)
def test_bad_patient_is_400_naming_the_parameter(value: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_patient(value, "patient.identifier")
    assert caught.value.status == 400
    assert caught.value.expression == "patient.identifier"


def _claims(pid: str, **raw: Any) -> AccessTokenClaims:
    return AccessTokenClaims(
        issuer="https://sts.test",
        audience="onerecord:hub",
        subject=pid,
        jti="jti-1",
        issued_at=0,
        expires_at=600,
        jkt="thumbprint",
        client_id=None,
        scope=frozenset(),
        pid=pid,
        security_level="4",
        acr="idporten-loa-high",
        toa=None,
        raw={"helseid://claims/identity/pid": pid, **raw},
    )


def citizen_principal(nin: str, *, represents: tuple[str, ...] = ()) -> Principal:
    reps = [{"nin": r, "relation": "parent"} for r in represents]
    return principal_from_claims(_claims(nin, **{"onerecord:representation": reps}))


def practitioner_principal() -> Principal:
    details = practitioner_details(None, None)
    return principal_from_claims(_claims(DOCTOR, **{"nhn:tillitsrammeverk:parameters": details}))


def test_door_lets_a_citizen_ask_for_self_and_the_represented_only() -> None:
    me = NationalIdentityNumber(PARENT)
    child = NationalIdentityNumber(CHILD_8)
    citizen = citizen_principal(PARENT, represents=(CHILD_8,))
    assert isinstance(citizen, Citizen)
    assert citizen_patient(citizen, None) == me
    assert citizen_patient(citizen, me) == me
    assert citizen_patient(citizen, child) == child
    with pytest.raises(PatientBindingFailed):
        citizen_patient(citizen, NationalIdentityNumber(DOCTOR))
    # Without the trust framework (development open access) nothing is checked here.
    assert citizen_patient(None, child) == child
    assert citizen_patient(None, None) is None


def test_door_refuses_health_personnel() -> None:
    doctor = practitioner_principal()
    assert isinstance(doctor, HealthPersonnel)
    with pytest.raises(AccessDenied) as caught:
        citizen_patient(doctor, NationalIdentityNumber(PARENT))
    assert caught.value.status == 403


def test_control_change_is_validated_and_addressed() -> None:
    block = ControlChange.parse(
        kind=ControlKind.DOCUMENT_BLOCK,
        method="PUT",
        target="urn:oid:2.25.7^ab",
        home_community_id=HCID_VEST,
        patient=NationalIdentityNumber(CHILD_8),
    )
    assert block.method == "PUT" and block.target == "2.25.7^ab"
    assert block.path_and_query == f"/controls/document-blocks/2.25.7%5Eab?patient={CHILD_8}"
    assert block.audit_query == f"document-blocks:set:2.25.7^ab@{HCID_VEST}"
    unreserve = ControlChange.parse(
        kind=ControlKind.RESERVATION, method="DELETE", target=None, home_community_id=None
    )
    assert unreserve.path_and_query == "/controls/reservation"
    assert unreserve.audit_query == "reservation:removed"


@pytest.mark.parametrize(
    ("kind", "target", "hcid", "expression"),
    [
        (ControlKind.DOCUMENT_BLOCK, "not-an-oid", None, "document-blocks"),
        (ControlKind.PRACTITIONER_BLOCK, "12a", None, "practitioner-blocks"),
        (ControlKind.DOCUMENT_BLOCK, "2.25.7", "vest", "homeCommunityId"),
        (ControlKind.RESERVATION, None, HCID_VEST, "homeCommunityId"),
    ],
)
def test_bad_control_change_is_400(
    kind: ControlKind, target: str | None, hcid: str | None, expression: str
) -> None:
    with pytest.raises(BadRequest) as caught:
        ControlChange.parse(kind=kind, method="PUT", target=target, home_community_id=hcid)
    assert caught.value.expression == expression


def test_region_root_is_the_fhir_base_without_fhir() -> None:
    assert (
        region_root(make_region(HCID_HSO, base_url="http://r.test:81/fhir")) == "http://r.test:81"
    )


# --- access log ------------------------------------------------------------------------------


def test_access_log_is_newest_first_and_each_event_names_its_region() -> None:
    results = [ok(HSO, event(1), event(30)), ok(VEST, event(10)), ok(MIDT)]
    status, bundle = merge_access_log(results, self_url="http://hub/fhir/AuditEvent?x")
    assert status == 200
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "searchset"
    assert bundle["total"] == 3
    events = [e["resource"] for e in bundle["entry"]]
    assert [e["recorded"] for e in events] == [
        (T0 + timedelta(minutes=m)).isoformat() for m in (30, 10, 1)
    ]
    tags = [
        next(x["valueString"] for x in e["extension"] if x["url"] == EXT_AUDIT_HOME_COMMUNITY_ID)
        for e in events
    ]
    assert tags == [HCID_HSO, HCID_VEST, HCID_HSO]
    # The region's own source is kept; its name goes into source.site.
    assert events[1]["source"]["observer"] == {"display": "onerecord document source"}
    assert events[1]["source"]["site"] == VEST.name


def test_undated_events_come_last() -> None:
    undated = event(5)
    del undated["recorded"]
    _status, bundle = merge_access_log([ok(HSO, undated, event(1))], self_url="u")
    assert "recorded" in bundle["entry"][0]["resource"]
    assert "recorded" not in bundle["entry"][1]["resource"]


def test_a_region_cannot_tag_its_events_as_another_region() -> None:
    forged = event(1)
    forged["extension"] = [{"url": EXT_AUDIT_HOME_COMMUNITY_ID, "valueString": HCID_HSO}]
    tagged = tag_audit_event(forged, VEST)
    assert [x["valueString"] for x in tagged["extension"]] == [HCID_VEST]
    assert forged["extension"][0]["valueString"] == HCID_HSO, "the input is not mutated"


def test_partial_success_names_each_failed_region_in_an_outcome_entry() -> None:
    results = [
        ok(HSO, event(1)),
        failed_result(VEST, RegionStatus.TIMEOUT, detail="no answer within 4.0 s"),
        failed_result(MIDT, RegionStatus.DENIED, detail="HTTP 403"),
    ]
    status, bundle = merge_access_log(results, self_url="u")
    assert status == 200 and bundle["total"] == 1
    outcome = bundle["entry"][-1]
    assert outcome["search"]["mode"] == "outcome"
    issues = outcome["resource"]["issue"]
    assert [i["location"] for i in issues] == [[HCID_VEST], [HCID_MIDT]]
    codes = [{x["url"]: x for x in i["extension"]}[EXT_REGION_STATUS]["valueCode"] for i in issues]
    assert codes == ["timeout", "denied"]
    assert all(
        {x["url"]: x for x in i["extension"]}[EXT_HOME_COMMUNITY_ID]["valueUri"] for i in issues
    )


@pytest.mark.parametrize(
    ("statuses", "http"),
    [
        ((RegionStatus.TIMEOUT, RegionStatus.TIMEOUT), 504),
        ((RegionStatus.DENIED, RegionStatus.DENIED), 403),
        ((RegionStatus.DENIED, RegionStatus.UNAVAILABLE), 502),
        ((), 502),
    ],
)
def test_all_regions_failing_is_an_operation_outcome(
    statuses: tuple[RegionStatus, ...], http: int
) -> None:
    results = [failed_result(r, s) for r, s in zip((HSO, VEST), statuses, strict=False)]
    status, body = merge_access_log(results, self_url="u")
    assert status == http
    assert body["resourceType"] == "OperationOutcome" and body["issue"]


# --- controls --------------------------------------------------------------------------------


def test_parse_controls_accepts_a_sources_answer_and_refuses_others() -> None:
    good = controls(PARENT, docs=("2.25.1",))
    assert parse_controls(orjson.dumps(good)) == good
    for bad in (b"<html>", b"[]", b'{"patient": 1}', orjson.dumps({**good, "blockedDocuments": 3})):
        with pytest.raises(ValueError):
            parse_controls(bad)


def test_controls_merge_ors_the_reservation_and_unites_the_blocks() -> None:
    results = [
        ok(HSO, controls(PARENT, docs=("2.25.2", "2.25.1"), hprs=("1234567",))),
        ok(VEST, controls(PARENT, reserved=True, docs=("2.25.1",), hprs=("7654321",))),
        failed_result(MIDT, RegionStatus.UNAVAILABLE, detail="cannot connect"),
    ]
    merged = merge_controls(results, patient=NationalIdentityNumber(PARENT))
    assert merged["patient"] == PARENT
    assert merged["reserved"] is True
    assert merged["blockedDocuments"] == ["2.25.1", "2.25.2"]
    assert merged["blockedPractitioners"] == ["1234567", "7654321"]
    assert merged["regions"] == [
        {"homeCommunityId": HCID_HSO, "name": HSO.name, "status": "ok", "detail": None},
        {"homeCommunityId": HCID_VEST, "name": VEST.name, "status": "ok", "detail": None},
        {
            "homeCommunityId": HCID_MIDT,
            "name": MIDT.name,
            "status": "unavailable",
            "detail": "cannot connect",
        },
    ]


def test_controls_merge_without_a_known_patient_takes_the_regions_word() -> None:
    merged = merge_controls([ok(HSO, controls(CHILD_8))], patient=None)
    assert merged["patient"] == CHILD_8 and merged["reserved"] is False
    assert merge_controls([], patient=None)["patient"] is None


def test_region_states_fold_an_invalid_answer_into_error() -> None:
    (state,) = region_states([failed_result(HSO, RegionStatus.INVALID_RESPONSE, detail="not JSON")])
    assert state["status"] == "error" and state["detail"] == "not JSON"


@pytest.mark.parametrize(
    ("statuses", "http"),
    [
        ((RegionStatus.OK, RegionStatus.OK), 200),
        ((RegionStatus.OK, RegionStatus.TIMEOUT), 502),
        ((RegionStatus.DENIED, RegionStatus.DENIED), 403),
        ((RegionStatus.DENIED, RegionStatus.OK), 502),
        ((RegionStatus.REJECTED, RegionStatus.REJECTED), 400),
        ((RegionStatus.REJECTED, RegionStatus.DENIED), 400),
        ((RegionStatus.REJECTED, RegionStatus.OK), 502),
        ((RegionStatus.REJECTED, RegionStatus.TIMEOUT), 502),
        ((), 502),
    ],
)
def test_change_status_a_change_every_region_refuses_as_the_callers_error_is_400(
    statuses: tuple[RegionStatus, ...], http: int
) -> None:
    results = [
        ok(r, controls(PARENT)) if s is RegionStatus.OK else failed_result(r, s)
        for r, s in zip((HSO, VEST), statuses, strict=False)
    ]
    assert change_status(results) == http
