"""SAML XUA: every request of the network maps to the expected caller; the captured ITI-39 verifies.

Expected values are read from the vector files by hand and written here; nothing is computed by
the code under test. References: TRUST-FRAMEWORK §2.4, scenarios C2–C5.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from onerecord.trust import Citizen, HealthPersonnel, RelationKind
from onerecord.trust.principal import READ_DOCUMENTREFERENCES_SCOPE, AccessBasis
from onerecord.xca import SamlProblem, SamlRefused, XcaParseError, parse_envelope, parse_xml
from onerecord.xca.saml import (
    TrustedIssuer,
    XuaSettings,
    certificate_from_key_info,
    read_assertion,
    verify_assertion,
)
from onerecord.xca.xml import NS
from onerecord.xca.xua import (
    Hl7Code,
    Hl7Id,
    caller_from_assertion,
    parse_cx,
    patient_matches,
    read_hl7_value,
)
from tests.xca.saml_support import (
    captured_assertion,
    captured_soap_part,
    make_key_and_cert,
    resign,
)
from tests.xca.vectors import vector

HELSEID = "https://helseid-xdssaml.test.nhn.no"
HELSENORGE = "sikkerhet.helsenorge.no"
HPR_CAT = "2.16.578.1.12.4.1.1.9060"
SAML_NS = "urn:oasis:names:tc:SAML:2.0:assertion"
GENUINE_PATIENT = "12119000465^^^&amp;2.16.578.1.12.4.1.4.1&amp;ISO"
OTHER_PATIENT = "17855599120^^^&amp;2.16.578.1.12.4.1.4.1&amp;ISO"


@dataclass(frozen=True)
class Hcp:
    subject: str
    name: str
    hpr: str
    legal_entity: tuple[str, str]
    point_of_care: tuple[str, str]
    healthcare_service: tuple[str, str] | None
    details: str | None
    decision: str
    patient: str
    access_basis: AccessBasis | None = None
    resource_point_of_care: str | None = None
    resource_department: str | None = None


@dataclass(frozen=True)
class Person:
    subject: str
    patient: str
    relation: RelationKind | None


KVART = Hcp(
    subject="06828399789",
    name="KVART GREVLING",
    hpr="565505933",
    legal_entity=("960510542", "VOSS HERAD"),
    point_of_care=("874593842", "VOSS SJUKEHEIM"),
    healthcare_service=("urn:oid:2.16.578.1.12.4.1.1.8663", "KP01"),
    details=None,
    decision="07b4b65f-a538-4c88-b845-c8fd18702f83",
    patient="29698496140",
)

EXPECTED: dict[str, Hcp | Person | None] = {
    "PnR_request.xml": KVART,
    "SamlToken01.xml": KVART,
    "SamlToken02.xml": None,  # only subject-id: no security level, refused
    "iti18-iti40-request-getassociations.xml": KVART,
    "iti18-iti40-request.xml": KVART,
    "iti18-request-referenceIdList.xml": Hcp(
        subject="05085600143",
        name="ROLF FOS LILLEHAGEN",
        hpr="222200063",
        legal_entity=("874766852", "STAVANGER KOMMUNE HELSE OG VELFERD"),
        point_of_care=("874611972", "STAVANGER LEGEVAKT AVD ARMAUER HANSENS VEI"),
        healthcare_service=("urn:oid:2.16.578.1.12.4.1.1.8666", "01"),
        details="BEHANDLER",
        decision="4560dbb2-4fed-4b1e-84d6-808068c5808d",
        patient="23087018679",
        access_basis=AccessBasis.AKUTT,  # ACP 2.16.578.1.12.4.1.7.2.1.6
        resource_point_of_care="874611972",
    ),
    "iti38-iti40-request-hn-acp-1.xml": Person("27888498775", "27888498775", RelationKind.PARENT),
    "iti38-iti40-request-hn-acp-2.xml": Person("27888498775", "27888498775", RelationKind.PROXY),
    "iti38-iti40-request-hn-acp-3.xml": Person(
        "27888498775", "27888498775", RelationKind.PROXY_UNABLE_TO_CONSENT
    ),
    "iti38-iti40-request-hn.xml": Person("27888498775", "27888498775", None),
    "iti38-iti40-request-kj.xml": KVART,
    "iti39-iti40-request-hn.xml": Person("27888498775", "21821999925", RelationKind.PARENT),
    "iti39-iti40-request-kj-async.xml": KVART,
    "iti39-iti40-request-kj.xml": KVART,
    "iti41-request.xml": Hcp(
        subject="06828399789",
        name="KVART GREVLING",
        hpr="565505933",
        legal_entity=("994598759", "NORSK HELSENETT SF"),
        point_of_care=("994598759", "NORSK HELSENETT SF"),
        healthcare_service=("urn:oid:2.16.578.1.12.4.1.1.8451", "110"),
        details=None,
        decision="eb6536ad-8490-4f1f-9013-21014bdd0f8c",
        patient="13116900216",
        resource_point_of_care="924916753",
        resource_department="4209490",
    ),
    "iti43-iti40-request.xml": KVART,
    "iti62-iti40-request.xml": KVART,
    "iti86-iti40-request.xml": KVART,
}


def _assertion_of(name: str) -> object:
    data = vector(f"requests/{name}")
    if name.startswith("SamlToken"):
        return parse_xml(data)
    return parse_envelope(data).assertion


def test_every_request_with_an_assertion_is_listed() -> None:
    from tests.xca.vectors import request_names

    assert set(request_names()) - set(EXPECTED) == {"iti41-request2-replace.xml"}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_request_assertion_maps_to_the_expected_caller(name: str) -> None:
    assertion = read_assertion(_assertion_of(name))
    expected = EXPECTED[name]
    if expected is None:
        with pytest.raises(SamlRefused) as info:
            caller_from_assertion(assertion)
        assert info.value.problem is SamlProblem.ATTRIBUTE
        return
    caller = caller_from_assertion(assertion)
    assert caller.home_community_id is not None
    assert caller.home_community_id.urn == "urn:oid:2.16.578.1.12.4.1.7.1.1"
    assert caller.patient is not None and caller.patient.id == expected.patient
    assert caller.patient.authority == "2.16.578.1.12.4.1.4.1"
    if isinstance(expected, Person):
        assert assertion.issuer == HELSENORGE
        assert isinstance(caller.principal, Citizen)
        ctx = caller.principal.context()
        assert ctx.nin.value == expected.subject and ctx.acr_level == 4
        if expected.relation is None:
            assert ctx.representations == ()
        else:
            (rep,) = ctx.representations
            assert (rep.person.value, rep.relation) == (expected.patient, expected.relation)
        assert caller.access_basis is None
        return
    assert assertion.issuer == HELSEID
    assert isinstance(caller.principal, HealthPersonnel)
    hcp = caller.principal.context()
    assert hcp.practitioner_nin.value == expected.subject
    assert hcp.name == expected.name
    assert hcp.hpr is not None and hcp.hpr.value == expected.hpr
    assert (hcp.legal_entity.id, hcp.legal_entity.name) == expected.legal_entity
    assert (hcp.point_of_care.id, hcp.point_of_care.name) == expected.point_of_care
    assert hcp.roles == ("LE",)
    assert hcp.purpose_of_use == "TREAT"
    assert hcp.security_level == 4
    assert hcp.scope == frozenset({READ_DOCUMENTREFERENCES_SCOPE})
    assert hcp.decision_ref_id == expected.decision and hcp.decision_user_selected is True
    service = hcp.healthcare_service
    assert ((service.system, service.code) if service else None) == expected.healthcare_service
    assert (hcp.purpose_details.code if hcp.purpose_details else None) == expected.details
    assert caller.access_basis is expected.access_basis
    (patient_ref,) = caller.principal.attestation.patients or (None,)
    poc = patient_ref.point_of_care.id if patient_ref and patient_ref.point_of_care else None
    dep = patient_ref.department.id if patient_ref and patient_ref.department else None
    assert (poc, dep) == (expected.resource_point_of_care, expected.resource_department)
    # The JWT-shaped claims the rest of the system reads (hub assertion, audit) are there too.
    raw = caller.principal.claims.raw
    assert raw["nhn:tillitsrammeverk:parameters"]["practitioner"]["hpr_nr"]["id"] == expected.hpr


# The query patient of each query sample, and whether resource-id names the same patient.
QUERY_PATIENTS = {
    "iti38-iti40-request-kj.xml": ("17855599120", False),  # the README's refusal case
    "iti38-iti40-request-hn.xml": ("27888498775", True),
    # These three also differ: resource-id is the citizen, the query another person.
    "iti38-iti40-request-hn-acp-1.xml": ("17855599120", False),
    "iti38-iti40-request-hn-acp-2.xml": ("17855599120", False),
    "iti38-iti40-request-hn-acp-3.xml": ("17855599120", False),
    "iti18-iti40-request.xml": ("17855599120", False),
    "iti18-request-referenceIdList.xml": ("23087018679", True),
}


@pytest.mark.parametrize("name", sorted(QUERY_PATIENTS))
def test_resource_id_must_be_the_query_patient(name: str) -> None:
    env = parse_envelope(vector(f"requests/{name}"))
    slot = env.body.find(
        "rim:AdhocQuery/rim:Slot[@name='$XDSDocumentEntryPatientId']/rim:ValueList/rim:Value", NS
    )
    query_patient = slot.text
    expected_id, matches = QUERY_PATIENTS[name]
    assert parse_cx(query_patient).id == expected_id  # type: ignore[union-attr]
    assert patient_matches(read_assertion(env.assertion), query_patient) is matches


def test_the_kj_sample_is_refused_for_its_patient() -> None:
    env = parse_envelope(vector("requests/iti38-iti40-request-kj.xml"))
    assertion = read_assertion(env.assertion)
    assert not patient_matches(assertion, "'17855599120^^^&2.16.578.1.12.4.1.4.1&ISO'")
    assert patient_matches(assertion, "'29698496140^^^&2.16.578.1.12.4.1.4.1&ISO'")
    assert not patient_matches(assertion, "'29698496140^^^&2.16.578.1.12.4.1.4.2&ISO'")


# --- the captured, still verifiable ITI-39 --------------------------------------------------

ISSUED = datetime(2025, 9, 2, 16, 39, 8, 365000, tzinfo=UTC)
NOT_ON_OR_AFTER = datetime(2025, 9, 2, 17, 39, 8, 365000, tzinfo=UTC)


def _captured_settings(**changes: object) -> XuaSettings:
    cert = certificate_from_key_info(captured_assertion())
    base = XuaSettings(
        issuers=(TrustedIssuer(HELSEID, (cert,)),),
        audiences=frozenset({"nhn:dokumentdeling-saml"}),
    )
    return XuaSettings(**{**{f: getattr(base, f) for f in ("issuers", "audiences")}, **changes})  # type: ignore[arg-type]


def test_the_captured_iti39_verifies_with_the_clock_at_its_issue_instant() -> None:
    assertion = verify_assertion(captured_assertion(), _captured_settings(), now=ISSUED)
    caller = caller_from_assertion(assertion)
    assert isinstance(caller.principal, HealthPersonnel)
    hcp = caller.principal.context()
    assert hcp.name == "GRØNN VITS"  # the Latin-1 byte, read and re-encoded
    assert hcp.hpr is not None and hcp.hpr.value == "565501872"
    assert hcp.legal_entity.id == "981275721" and hcp.point_of_care.id == "873255102"
    assert hcp.decision_ref_id == "fcf4a966-5e5c-405c-896f-64814f6bf06e"
    assert caller.patient is not None and caller.patient.id == "12119000465"


def test_the_captured_iti39_needs_its_latin1_byte_recoded() -> None:
    raw = vector("captured/iti39-request-multipart-signed.txt")
    boundary = raw.split(b"\n", 1)[0].strip()
    soap = raw.split(boundary)[1].partition(b"\n\n")[2].strip()
    assert soap.count(b"\xd8") == 2  # the two "Ø" of GRØNN VITS
    with pytest.raises(XcaParseError):  # as sent: not UTF-8, not XML
        parse_xml(soap)
    mangled = soap.decode("utf-8", "replace").encode("utf-8")  # read wrongly, digest differs
    with pytest.raises(SamlRefused) as info:
        verify_assertion(captured_assertion(mangled), _captured_settings(), now=ISSUED)
    assert info.value.problem is SamlProblem.SIGNATURE


def test_within_skew_after_not_on_or_after_it_still_verifies() -> None:
    now = NOT_ON_OR_AFTER + timedelta(minutes=5) - timedelta(seconds=1)
    verify_assertion(captured_assertion(), _captured_settings(), now=now)


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        # one attribute changed (the point of care's name)
        (
            b"<saml:AttributeValue>BETANIEN HOSPITAL</saml:AttributeValue>",
            b"<saml:AttributeValue>BETANIEN HOSPITAM</saml:AttributeValue>",
            SamlProblem.SIGNATURE,
        ),
        # one digit of the patient changed
        (b"12119000465^^^", b"12119000466^^^", SamlProblem.SIGNATURE),
        # the purpose changed
        (b'code="TREAT"', b'code="ETREAT"', SamlProblem.SIGNATURE),
    ],
)
def test_the_captured_iti39_is_refused_when_changed(
    old: bytes, new: bytes, problem: SamlProblem
) -> None:
    soap = captured_soap_part()
    assert old in soap
    changed = soap.replace(old, new)
    with pytest.raises(SamlRefused) as info:
        verify_assertion(captured_assertion(changed), _captured_settings(), now=ISSUED)
    assert info.value.problem is problem


def test_the_captured_iti39_is_refused_past_not_on_or_after_plus_skew() -> None:
    now = NOT_ON_OR_AFTER + timedelta(minutes=5)
    with pytest.raises(SamlRefused) as info:
        verify_assertion(captured_assertion(), _captured_settings(), now=now)
    assert info.value.problem is SamlProblem.EXPIRED


def test_the_captured_iti39_is_refused_before_not_before_minus_skew() -> None:
    now = ISSUED - timedelta(minutes=5, seconds=1)
    with pytest.raises(SamlRefused) as info:
        verify_assertion(captured_assertion(), _captured_settings(), now=now)
    assert info.value.problem is SamlProblem.NOT_YET_VALID


def test_today_the_captured_certificate_has_expired() -> None:
    with pytest.raises(SamlRefused) as info:
        verify_assertion(
            captured_assertion(), _captured_settings(), now=datetime(2026, 8, 2, tzinfo=UTC)
        )
    assert info.value.problem in (SamlProblem.SIGNATURE, SamlProblem.EXPIRED)


def test_an_unknown_issuer_or_another_audience_is_refused() -> None:
    _, other = make_key_and_cert()
    with pytest.raises(SamlRefused) as info:
        verify_assertion(
            captured_assertion(),
            _captured_settings(issuers=(TrustedIssuer("https://elsewhere", (other,)),)),
            now=ISSUED,
        )
    assert info.value.problem is SamlProblem.ISSUER
    with pytest.raises(SamlRefused) as info:
        verify_assertion(
            captured_assertion(),
            _captured_settings(audiences=frozenset({"urn:someone-else"})),
            now=ISSUED,
        )
    assert info.value.problem is SamlProblem.AUDIENCE


def test_the_keyinfo_certificate_is_not_trusted_by_itself() -> None:
    # The issuer is known, but with another certificate: the one in KeyInfo does not count.
    _, other = make_key_and_cert()
    with pytest.raises(SamlRefused) as info:
        verify_assertion(
            captured_assertion(),
            _captured_settings(issuers=(TrustedIssuer(HELSEID, (other,)),)),
            now=ISSUED,
        )
    assert info.value.problem is SamlProblem.SIGNATURE


def test_a_rollover_certificate_list_accepts_any_listed_certificate() -> None:
    _, other = make_key_and_cert()
    real = certificate_from_key_info(captured_assertion())
    verify_assertion(
        captured_assertion(),
        _captured_settings(issuers=(TrustedIssuer(HELSEID, (other, real)),)),
        now=ISSUED,
    )


def test_no_assertion_is_refused() -> None:
    with pytest.raises(SamlRefused) as info:
        verify_assertion(None, _captured_settings(), now=ISSUED)
    assert info.value.problem is SamlProblem.MISSING


@pytest.mark.parametrize("name", ["iti38-iti40-request-kj.xml", "iti38-iti40-request-hn.xml"])
def test_pretty_printed_samples_parse_but_their_signatures_are_broken(name: str) -> None:
    # Reformatted after signing (README): the attributes are readable, the signature fails even
    # with the certificate of its own KeyInfo trusted and the clock at its IssueInstant.
    element = parse_envelope(vector(f"requests/{name}")).assertion
    assertion = read_assertion(element)
    cert = certificate_from_key_info(element)
    settings_ = XuaSettings(
        issuers=(TrustedIssuer(assertion.issuer, (cert,)),),
        audiences=frozenset(assertion.audiences),
    )
    with pytest.raises(SamlRefused) as info:
        verify_assertion(element, settings_, now=assertion.issue_instant)
    assert info.value.problem is SamlProblem.SIGNATURE


# --- assertions signed here, to test what the captured one cannot ----------------------------


def _own(transform: bytes = b"", replace: bytes = b"") -> tuple[object, XuaSettings]:
    key, cert = make_key_and_cert()
    soap = captured_soap_part()
    if transform:
        assert transform in soap
        soap = soap.replace(transform, replace)
    signed = resign(captured_assertion(soap), key, cert)
    return signed, _captured_settings(issuers=(TrustedIssuer(HELSEID, (cert,)),))


def test_an_assertion_signed_by_a_configured_key_verifies() -> None:
    signed, settings_ = _own()
    assertion = verify_assertion(signed, settings_, now=ISSUED)
    assert caller_from_assertion(assertion).patient.id == "12119000465"  # type: ignore[union-attr]


def test_a_subject_not_confirmed_by_bearer_is_refused() -> None:
    signed, settings_ = _own(b"cm:bearer", b"cm:holder-of-key")
    with pytest.raises(SamlRefused) as info:
        verify_assertion(signed, settings_, now=ISSUED)
    assert info.value.problem is SamlProblem.SUBJECT_CONFIRMATION


def test_old_and_new_names_with_different_values_are_refused() -> None:
    # The old purposeOfUse says TREAT, the new purpose ETREAT: ambiguous.
    signed, settings_ = _own(
        b'&lt;Purpose xmlns="urn:hl7-org:v3" xsi:type="CE" code="TREAT"',
        b'&lt;Purpose xmlns="urn:hl7-org:v3" xsi:type="CE" code="ETREAT"',
    )
    assertion = verify_assertion(signed, settings_, now=ISSUED)
    with pytest.raises(SamlRefused) as info:
        caller_from_assertion(assertion)
    assert info.value.problem is SamlProblem.ATTRIBUTE


def test_security_level_three_is_refused() -> None:
    signed, settings_ = _own(
        b'SecurityLevel"><saml:AttributeValue>4', b'SecurityLevel"><saml:AttributeValue>3'
    )
    with pytest.raises(SamlRefused):
        caller_from_assertion(verify_assertion(signed, settings_, now=ISSUED))


def test_a_tampered_copy_with_the_same_signature_is_refused() -> None:
    signed, settings_ = _own()
    evil = etree.fromstring(etree.tostring(signed))
    for value in evil.iter(f"{{{SAML_NS}}}AttributeValue"):
        if value.text == GENUINE_PATIENT:
            value.text = OTHER_PATIENT
    with pytest.raises(SamlRefused) as info:
        verify_assertion(evil, settings_, now=ISSUED)
    assert info.value.problem is SamlProblem.SIGNATURE


def test_signature_wrapping_lends_no_attributes() -> None:
    # XSW: an unsigned assertion with another patient and the same ID wraps the genuine signed
    # one (in saml:Advice). Either the signature fails, or only the signed element is read.
    signed, settings_ = _own()
    evil = etree.fromstring(etree.tostring(signed))
    for sig in evil.findall("{http://www.w3.org/2000/09/xmldsig#}Signature"):
        evil.remove(sig)
    for value in evil.iter(f"{{{SAML_NS}}}AttributeValue"):
        if value.text == GENUINE_PATIENT:
            value.text = OTHER_PATIENT
    advice = etree.SubElement(evil, f"{{{SAML_NS}}}Advice")
    advice.append(etree.fromstring(etree.tostring(signed)))
    wrapped = parse_xml(etree.tostring(evil))
    try:
        assertion = verify_assertion(wrapped, settings_, now=ISSUED)
    except SamlRefused as exc:
        assert exc.problem is SamlProblem.SIGNATURE
        return
    assert caller_from_assertion(assertion).patient.id == "12119000465"  # type: ignore[union-attr]


# --- the lenient but unambiguous HL7 v3 reader -----------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        f'<Role xmlns="urn:hl7-org:v3" xsi:type="CE" code="LE" codeSystem="urn:oid:{HPR_CAT}"/>',
        f'<Role xmlns="urn:hl7-org:v3" type="CE" code="LE" codeSystem="{HPR_CAT}"/>',
        f'<Purpose xmlns:xsi="urn:hl7-org:v3" xsi:type="CE" code="LE" codeSystem="{HPR_CAT}"/>',
        f'<Role code="LE" codeSystem="{HPR_CAT}"/>',
    ],
)
def test_hl7_codes_are_read_leniently(text: str) -> None:
    assert read_hl7_value(text, kind="CE", what="role") == Hl7Code(
        "LE", "urn:oid:2.16.578.1.12.4.1.1.9060", None
    )


@pytest.mark.parametrize(
    "text",
    [
        '<Role xmlns="urn:hl7-org:v3" xsi:type="II" code="LE" codeSystem="1.2"/>',
        '<Role xmlns="urn:hl7-org:v3" type="CE" xsi:type="II" code="LE" codeSystem="1.2"/>',
        '<Role xmlns="urn:other" code="LE" codeSystem="1.2"/>',
        '<Role code="LE"/>',
        "<Role code='LE' codeSystem='1.2'/><Role code='SP' codeSystem='1.2'/>",
        "LE",
        "<!DOCTYPE r [<!ENTITY e 'x'>]><Role code='&e;' codeSystem='1.2'/>",
    ],
)
def test_ambiguous_or_wrong_hl7_values_are_refused(text: str) -> None:
    with pytest.raises(SamlRefused):
        read_hl7_value(text, kind="CE", what="role")


def test_hl7_identifiers_are_read() -> None:
    value = read_hl7_value(
        '<id xmlns="urn:hl7-org:v3" type="II" extension="565505933" root="2.16.578.1.12.4.1.4.4"/>',
        kind="II",
        what="provider-identifier",
    )
    assert value == Hl7Id("565505933", "urn:oid:2.16.578.1.12.4.1.4.4")


@given(st.text(max_size=300))
@settings(max_examples=300, deadline=None)
def test_any_text_is_an_hl7_value_or_refused(text: str) -> None:
    for kind in ("CE", "II"):
        try:
            read_hl7_value(text, kind=kind, what="x")
        except SamlRefused:
            pass


@given(st.text(max_size=120))
@settings(max_examples=300, deadline=None)
def test_any_text_is_a_cx_or_none(text: str) -> None:
    result = parse_cx(text)
    assert result is None or (result.id and result.authority)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("29698496140^^^&amp;2.16.578.1.12.4.1.4.1&amp;ISO", "29698496140"),
        ("27888498775^^^&2.16.578.1.12.4.1.4.1&ISO", "27888498775"),
        ("'17855599120^^^&2.16.578.1.12.4.1.4.1&ISO'", "17855599120"),
        ("17855599120^^^&2.16.578.1.12.4.1.4.1&HL7", None),
        ("17855599120", None),
        ("^^^&2.16.578.1.12.4.1.4.1&ISO", None),
    ],
)
def test_cx_values_as_the_network_sends_them(value: str, expected: str | None) -> None:
    parsed = parse_cx(value)
    assert (parsed.id if parsed else None) == expected
