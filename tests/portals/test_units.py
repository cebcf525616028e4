"""Pure parts of the portal: settings, sessions, basis, workplaces, overview, override log."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from onerecord.mhd import DENIAL_REASON_SYSTEM
from onerecord.portals.basis import (
    InvalidAccessRequest,
    build_attestation,
    parse_access_request,
)
from onerecord.portals.errors import DocumentUnavailable, HubUnavailable, RegionUnreachable
from onerecord.portals.gateway import MASKED_COUNT_HEADER, fetch_document, fetch_overview
from onerecord.portals.i18n import Translator
from onerecord.portals.override_log import (
    EmergencyOverride,
    FileOverrideLog,
    MemoryOverrideLog,
    normalise_reason,
    reason_problem,
)
from onerecord.portals.overview import Overview, RegionNotice, build_overview
from onerecord.portals.sessions import (
    PortalSession,
    SessionStore,
    sign_session_id,
    unsign_session_id,
)
from onerecord.portals.settings import DEV_SESSION_SECRET, PortalSettings
from onerecord.portals.workplaces import workplaces_of
from onerecord.search_client import HubSession, StaffMember, refusal_reasons
from onerecord.trust.attestation import parse_attestation_claim
from onerecord.trust.keys import SigningKey

HSO = "urn:oid:2.16.578.1.12.4.5.100.1"
VEST = "urn:oid:2.16.578.1.12.4.5.100.2"
REGIONS = [
    {"name": "Helse Sør-Øst", "home_community_id": HSO},
    {"name": "Helse Vest", "home_community_id": VEST},
]
STAFF = StaffMember(
    nin="01818012337", category="LE", legal_entity="974000016", point_of_care="974000024"
)


def _valid_patient() -> str:
    from onerecord.domain.identifiers import NationalIdentityNumber

    for serial in range(100, 999):
        base = f"150880{serial}"
        for check in range(100):
            candidate = f"{base}{check:02d}"
            try:
                return NationalIdentityNumber(candidate).value
            except ValueError:
                continue
    raise AssertionError("no valid synthetic number")


FORM = {
    "healthcare_service": "01",
    "purpose_of_use": "TREAT",
    "purpose_of_use_details": "BEHANDLER",
    "access_basis": "SAMTYKKE",
}


def test_dev_secret_refused_outside_dev_mode() -> None:
    with pytest.raises(ValidationError, match="development session secret"):
        PortalSettings()
    assert PortalSettings(dev_mode=True).session_secret.get_secret_value() == DEV_SESSION_SECRET
    assert PortalSettings(session_secret="x" * 32).dev_mode is False


def test_cookies_are_secure_except_dev_loopback() -> None:
    dev = PortalSettings(dev_mode=True, public_url="http://127.0.0.1:8200")
    assert dev.secure_cookies is False
    prod = PortalSettings(session_secret="s" * 32, public_url="http://127.0.0.1:8200")
    assert prod.secure_cookies is True
    public = PortalSettings(dev_mode=True, public_url="https://portal.example")
    assert public.secure_cookies is True


def test_settings_from_manifest(tmp_path: Path) -> None:
    manifest = {
        "hub": {"fhir_base": "http://h/fhir/", "audience": "onerecord:hub"},
        "sts": {"issuer": "http://sts"},
        "client": {"client_id": "c", "key_file": str(tmp_path / "k.json")},
        "staff": {"doctor": {"nin": STAFF.nin}},
        "regions": [{**r, "slug": "x"} for r in REGIONS],
    }
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(manifest))
    settings = PortalSettings.from_manifest_file(path, dev_mode=True)
    assert settings.hub_fhir == "http://h/fhir"
    assert settings.client_key_file == tmp_path / "k.json"
    assert settings.regions[1] == REGIONS[1]
    assert "doctor" in settings.staff
    assert settings.client_id == "c"


def test_settings_from_manifest_prefer_the_portal_client_and_workdir(tmp_path: Path) -> None:
    manifest = {
        "hub": {"fhir_base": "http://h/fhir"},
        "sts": {"issuer": "http://sts/"},
        "client": {"client_id": "onerecord-cli", "key_file": str(tmp_path / "cli.json")},
        "portal_client": {"client_id": "onerecord-portal", "key_file": str(tmp_path / "p.json")},
        "workdir": str(tmp_path / "demo"),
    }
    settings = PortalSettings.from_manifest(manifest, dev_mode=True)
    assert settings.client_id == "onerecord-portal"
    assert settings.client_key_file == tmp_path / "p.json"
    assert settings.sts_url == "http://sts"
    assert settings.override_log_file == tmp_path / "demo" / "portal" / "emergency-overrides.jsonl"


def test_signed_session_id_round_trip_and_tamper() -> None:
    value = sign_session_id("abc", "secret-secret-secret")
    assert unsign_session_id(value, "secret-secret-secret") == "abc"
    assert unsign_session_id(value, "another-secret-value") is None
    assert unsign_session_id("abd" + value[3:], "secret-secret-secret") is None
    assert unsign_session_id("no-dot", "secret-secret-secret") is None
    # A cookie with characters outside ASCII is simply not a session (no TypeError).
    assert unsign_session_id("abc.\u00e9\u00e9", "secret-secret-secret") is None


def test_csrf_check_refuses_missing_wrong_and_non_ascii_tokens() -> None:
    session = PortalSession(id="s", csrf_token="right-token", last_seen=0)
    assert session.csrf_ok("right-token")
    assert not session.csrf_ok(None)
    assert not session.csrf_ok("")
    assert not session.csrf_ok("right-tokenx")
    assert not session.csrf_ok("r\u00f8ght-token")


def test_session_store_expires_rotates_and_ends() -> None:
    store = SessionStore(idle_s=10)
    s = store.create(now=0)
    assert store.get(s.id, now=5) is s
    old_id, old_csrf = s.id, s.csrf_token
    store.rotate(s, now=6)
    assert store.get(old_id, now=6) is None
    assert s.id != old_id and s.csrf_token != old_csrf
    assert s.csrf_ok(s.csrf_token) and not s.csrf_ok(old_csrf) and not s.csrf_ok(None)
    assert store.get(s.id, now=17) is None  # idle for 11 s
    t = store.create(now=20)
    store.end(t.id)
    assert store.get(t.id, now=20) is None and len(store) == 0


def test_access_request_validates_patient_and_codes() -> None:
    patient = _valid_patient()
    request = parse_access_request({"patient": f" {patient[:6]} {patient[6:]}", **FORM})
    assert request.patient == patient
    assert request.access_basis == "SAMTYKKE"
    assert "Behandling" in request.summary
    with pytest.raises(InvalidAccessRequest, match="hcp.patient.invalid-nin"):
        parse_access_request({"patient": patient[:-1] + str((int(patient[-1]) + 1) % 10), **FORM})
    with pytest.raises(InvalidAccessRequest) as wrong_purpose:
        parse_access_request({"patient": patient, **FORM, "purpose_of_use": "BTG"})
    assert wrong_purpose.value.field_key == "hcp.patient.purpose"
    with pytest.raises(InvalidAccessRequest) as wrong_basis:
        parse_access_request({"patient": patient, **FORM, "access_basis": "FORHOYET_AKUTT"})
    assert wrong_basis.value.field_key == "hcp.patient.basis"
    assert Translator("nn")("hcp.patient.choose", field="føremål") == "Vel føremål frå lista."


def test_attestation_states_the_chosen_basis_and_passes_the_parser() -> None:
    request = parse_access_request(
        {"patient": _valid_patient(), **FORM, "purpose_of_use": "COC", "healthcare_service": "03"}
    )
    attestation = build_attestation(STAFF, request, patient_digest="A" * 43)
    parsed = parse_attestation_claim(attestation)
    care = parsed.care_relationship
    assert care.purpose_of_use.code == "COC"
    assert care.healthcare_service is not None and care.healthcare_service.code == "03"
    assert care.purpose_of_use_details is not None
    assert care.purpose_of_use_details.code == "BEHANDLER"
    assert care.decision_ref.id == request.decision_ref
    assert parsed.patients[0].identifier_digest == "A" * 43


def _doc(hcid: str, title: str, *, blocked: bool = False) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "date": "2024-03-05T10:00:00+01:00",
        "category": [{"coding": [{"code": "A00-1", "display": "Epikriser og sammenfatninger"}]}],
        "extension": [
            {
                "url": "https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-HomeCommunityId",
                "valueIdentifier": {"value": hcid},
            }
        ],
        "content": [{"attachment": {"title": "Sperret" if blocked else title}}],
    }
    if blocked:
        doc["securityLabel"] = [{"coding": [{"code": "NORS"}]}]
    else:
        doc["masterIdentifier"] = {"value": f"urn:oid:1.2.{title}"}
        doc["type"] = {"coding": [{"code": "x", "display": "Epikrise"}]}
    return doc


def test_overview_rows_blocked_and_region_sentences() -> None:
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "warning",
                "code": "timeout",
                "extension": [
                    {
                        "url": "https://onerecord.no/fhir/StructureDefinition/region-status",
                        "valueCode": "timeout",
                    },
                    {
                        "url": "https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-HomeCommunityId",
                        "valueUri": VEST,
                    },
                ],
            }
        ],
    }
    bundle = {
        "resourceType": "Bundle",
        "total": 3,
        "entry": [
            {"resource": _doc(HSO, "Epikrise1")},
            {"resource": _doc(HSO, "x", blocked=True)},
            {"resource": _doc(VEST, "Notat2")},
            {"resource": outcome},
        ],
    }
    overview = build_overview(bundle, REGIONS)
    assert [r.title for r in overview.rows] == ["Epikrise1", "Sperret", "Notat2"]
    assert [r.blocked for r in overview.rows] == [False, True, False]
    assert [r.region for r in overview.rows] == ["Helse Sør-Øst", "Helse Sør-Øst", "Helse Vest"]
    assert overview.rows[0].class_ == "Epikriser og sammenfatninger"
    assert overview.blocked_count == 1 and overview.total == 3
    assert not overview.complete
    assert [n.status for n in overview.regions] == ["ok", "timeout"]
    t = Translator("nb")
    notice = overview.regions[1]
    assert t(notice.message_key, name=notice.name).startswith("Helse Vest svarte ikke i tide")
    assert build_overview(bundle, REGIONS, masked_count=4).blocked_count == 4


def test_region_sentence_names_the_region_in_each_language() -> None:
    nb, en = Translator("nb"), Translator("en")
    timeout = RegionNotice("Helse Nord", "timeout")
    assert not timeout.ok
    assert nb(timeout.message_key, name="Helse Nord").startswith("Helse Nord svarte ikke i tide")
    assert en(timeout.message_key, name="Helse Nord").startswith("Helse Nord did not answer")
    unavailable = RegionNotice("Helse Nord", "unavailable")
    assert "ikke tilgjengelig" in nb(unavailable.message_key, name="Helse Nord")
    surprise = RegionNotice("Helse Nord", "surprise")
    assert surprise.message_key == "region.unknown"
    assert "ukjent" in nb(surprise.message_key, name="Helse Nord")
    assert RegionNotice("Helse Nord", "ok").ok


def _opened(hcid: str, title: str, token: str, *, emergency: bool = False) -> dict[str, Any]:
    doc = _doc(hcid, title)
    doc["content"] = [
        {
            "attachment": {
                "title": title,
                "contentType": "application/pdf",
                "url": f"http://hub/fhir/Binary/{token}?x=1",
            },
            "format": {"code": "urn:no:ehelse:document:pdf"},
        }
    ]
    if emergency:
        doc["securityLabel"] = [{"coding": [{"code": "NORS"}]}]
    return doc


def test_overview_rows_carry_ref_unique_id_and_emergency() -> None:
    bundle = {
        "resourceType": "Bundle",
        "entry": [
            {"resource": _opened(HSO, "Epikrise", "hso~1~2")},
            {"resource": _opened(VEST, "Opened", "vest~3~4", emergency=True)},
            {"resource": _doc(VEST, "x", blocked=True)},
            {"resource": _doc(VEST, "NoUrl")},
        ],
    }
    overview = build_overview(bundle, REGIONS)
    plain, opened, blocked, no_url = overview.rows
    assert plain.ref == "hso~1~2" and plain.unique_id == "1.2.Epikrise"
    assert plain.mime_type == "application/pdf"
    assert plain.format_code == "urn:no:ehelse:document:pdf"
    assert plain.home_community_id == HSO
    assert not plain.blocked and not plain.emergency
    # Blocked by the patient but shown through the emergency override: listed and marked.
    assert opened.ref == "vest~3~4" and opened.emergency and not opened.blocked
    # A masked placeholder: no ref, so it can never be opened.
    assert blocked.blocked and blocked.ref is None and not blocked.emergency
    assert blocked.unique_id == ""
    assert no_url.ref is None and not no_url.blocked
    assert overview.find("hso~1~2") is plain
    assert overview.find("vest~3~4") is opened
    assert overview.find("nothing") is None
    assert overview.blocked_count == 1 and overview.complete


def test_workplaces_offer_the_own_department_first() -> None:
    staff = {
        "legal_entity": "974000016",
        "point_of_care": "974000024",
        "organisation": "Testsykehuset HF",
        "department": "222",
        "departments": [
            {"resh": "111", "name": "Akuttmottak"},
            {"resh": "333", "name": "Barneklinikk"},
            {"resh": "222", "name": "Medisinsk klinikk"},
            {"name": "no resh"},
            "not a table",
        ],
    }
    places = workplaces_of(staff)
    assert [p.department for p in places] == ["222", "111", "333"]
    assert places[0].label == "Testsykehuset HF, Medisinsk klinikk"
    assert places[0].key == "974000024:222"
    assert {p.legal_entity for p in places} == {"974000016"}
    assert len({p.key for p in places}) == len(places)


def test_workplaces_without_departments_or_organisation() -> None:
    bare = {"legal_entity": "974000016", "point_of_care": "974000024"}
    (only,) = workplaces_of(bare)
    assert only.department is None and only.label == "974000024" and only.key == "974000024:"
    unlisted = workplaces_of({**bare, "department": "999", "organisation": "Legekontoret"})
    assert [(p.department, p.label) for p in unlisted] == [("999", "Legekontoret, 999")]
    assert workplaces_of({"point_of_care": "974000024"}) == ()
    assert workplaces_of({}) == ()


def _override(reason: str) -> EmergencyOverride:
    return EmergencyOverride(
        at="2026-11-21T13:05:00+00:00",
        practitioner_hpr="1234567",
        practitioner_name="Kari Lege",
        legal_entity="974000016",
        point_of_care="974000024",
        department=None,
        patient=_valid_patient(),
        reason=reason,
        decision_ref="d-1",
        token_jti="jti-1",
    )


def test_file_override_log_writes_one_json_line_per_override(tmp_path: Path) -> None:
    path = tmp_path / "portal" / "emergency-overrides.jsonl"
    log = FileOverrideLog(path)
    assert path.parent.is_dir() and log.read() == []
    log.write(_override("Bevisstløs i akuttmottaket"))
    log.write(_override("Andre linje\nmed linjeskift"))
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["event"] == "emergency-override"
    assert first["reason"] == "Bevisstløs i akuttmottaket"
    assert first["practitioner_hpr"] == "1234567" and first["decision_ref"] == "d-1"
    assert second["reason"] == "Andre linje\nmed linjeskift"
    assert log.read() == [first, second]
    memory = MemoryOverrideLog()
    memory.write(_override("x" * 10))
    assert [o.reason for o in memory.entries] == ["x" * 10]


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("  Bevisstløs\tpasient \n i mottaket ", "Bevisstløs pasient i mottaket"),
        ("Be\u200bvisst\u200dløs\ufeff pasient\u00ad", "Bevisstløs pasient"),
        ("Linje\u2028to\x00\x07 og\u00a0tre", "Linje to og tre"),
        ("\u200b" * 20, ""),
    ],
)
def test_emergency_reason_drops_invisible_characters_and_collapses_space(
    raw: str, clean: str
) -> None:
    assert normalise_reason(raw) == clean


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("\u200b" * 20, "hcp.emergency.reason-length"),
        ("\u200b \u200b " * 10, "hcp.emergency.reason-length"),
        ("a\u200b" * 9, "hcp.emergency.reason-length"),
        ("x" * 501, "hcp.emergency.reason-length"),
        ("- . - . - . - . - .", "hcp.emergency.reason-words"),
        ("\u0301" * 20, "hcp.emergency.reason-words"),
        ("ab cd ... !!!", "hcp.emergency.reason-words"),
        ("abcde .....", None),
        ("Bevisstløs pasient i akuttmottaket", None),
        ("Ulykke 112 – 4 skadde", None),
    ],
)
def test_emergency_reason_needs_ten_characters_and_some_letters_or_digits(
    raw: str, problem: str | None
) -> None:
    assert reason_problem(normalise_reason(raw)) == problem


@pytest.mark.anyio
async def test_a_masked_count_in_other_digits_is_ignored_not_a_crash() -> None:
    def hub(request: httpx.Request) -> httpx.Response:
        body = {"resourceType": "Bundle", "type": "searchset", "total": 0, "entry": []}
        return httpx.Response(200, json=body, headers={MASKED_COUNT_HEADER: b"\xb2"})

    session = HubSession("token", SigningKey.generate(kid="dpop-test"))
    async with httpx.AsyncClient(transport=httpx.MockTransport(hub)) as http:
        overview = await fetch_overview(
            http, session, hub_fhir="http://hub.test/fhir", regions=(), patient="15828012344"
        )
    assert overview.rows == ()


@pytest.mark.anyio
async def test_next_links_are_followed_only_on_the_hub() -> None:
    asked: list[str] = []

    def hub(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url))
        body = {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [],
            "link": [{"relation": "next", "url": "http://elsewhere.test/fhir/DocumentReference"}],
        }
        return httpx.Response(200, json=body)

    session = HubSession("token", SigningKey.generate(kid="dpop-test"))
    async with httpx.AsyncClient(transport=httpx.MockTransport(hub)) as http:
        with pytest.raises(HubUnavailable):
            await fetch_overview(
                http, session, hub_fhir="http://hub.test/fhir", regions=(), patient="15828012344"
            )
    assert len(asked) == 1 and asked[0].startswith("http://hub.test/fhir/")


def test_session_store_drops_the_least_recently_used_at_its_limit() -> None:
    store = SessionStore(idle_s=1000, max_anonymous=3)
    first, second, third = (store.create(now=t) for t in (1, 2, 3))
    assert store.get(first.id, now=4) is first  # first is now the most recently used
    fourth = store.create(now=5)
    assert len(store) == 3
    assert store.get(second.id, now=6) is None
    assert all(store.get(s.id, now=6) is s for s in (first, third, fourth))


def test_anonymous_sessions_never_push_out_a_logged_in_one() -> None:
    store = SessionStore(idle_s=1000, max_sessions=2, max_anonymous=3)
    alice = store.rotate(store.create(now=1), now=1)  # logged in
    bob = store.rotate(store.create(now=2), now=2)
    # A flood of cookieless visits to the login page, each newer than both logins.
    flood = [store.create(now=10 + i) for i in range(50)]
    assert store.get(alice.id, now=100) is alice and store.get(bob.id, now=100) is bob
    assert len(store) == 2 + 3
    assert all(store.get(s.id, now=100) is None for s in flood[:-3])
    assert all(store.get(s.id, now=100) is s for s in flood[-3:])
    # Logged-in sessions have their own bound: a third login drops the least recently used.
    store.get(alice.id, now=101)
    carol = store.rotate(store.create(now=102), now=102)
    assert store.get(bob.id, now=103) is None
    assert store.get(alice.id, now=103) is alice and store.get(carol.id, now=103) is carol
    # Idle sessions still expire in both pools.
    assert store.get(alice.id, now=2000) is None
    store.create(now=2000)
    assert len(store) == 1
    assert store.get(carol.id, now=2000) is None


def test_the_hubs_newer_region_statuses_are_told_truthfully_and_a_refusal_offers_no_retry() -> None:
    nb = Translator("nb")
    rejected = RegionNotice("Helse Nord", "rejected")
    assert nb(rejected.message_key, name="Helse Nord").startswith("Helse Nord avviste søket")
    assert not rejected.retry_helps
    too_large = RegionNotice("Helse Nord", "too-large")
    assert "for stort svar" in nb(too_large.message_key, name="Helse Nord")
    assert too_large.retry_helps


def test_a_region_the_locator_spared_is_said_so_and_leaves_the_list_complete() -> None:
    """Issue 12: "not asked" is never confused with "no answer" or "no documents there"."""
    spared = RegionNotice("Helse Nord", "not-asked")
    down = RegionNotice("Helse Vest", "unavailable")
    assert spared.ok and not spared.retry_helps
    for lang, words in (("nb", "ble ikke spurt"), ("nn", "vart ikkje spurd"), ("en", "not asked")):
        sentence = Translator(lang)(spared.message_key, name=spared.name)
        assert sentence.startswith("Helse Nord") and words in sentence
    overview = Overview(rows=(), regions=(spared,), total=0, blocked_count=0)
    assert overview.complete
    assert not Overview(rows=(), regions=(spared, down), total=0, blocked_count=0).complete


def test_a_region_the_locator_did_not_ask_refused_nothing() -> None:
    """A refusal by every asked region is the patient's block, however many regions were spared."""
    status = "https://onerecord.no/fhir/StructureDefinition/region-status"
    hcid_url = "https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-HomeCommunityId"

    def issue(hcid: str, code: str, reason: str | None) -> dict[str, object]:
        extension: list[dict[str, object]] = [
            {"url": hcid_url, "valueUri": f"urn:oid:{hcid}"},
            {"url": status, "valueCode": code},
        ]
        out: dict[str, object] = {"severity": "error", "code": "forbidden", "extension": extension}
        if reason:
            out["details"] = {"coding": [{"system": DENIAL_REASON_SYSTEM, "code": reason}]}
        return out

    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [
            issue("1.1", "denied", "practitioner-blocked"),
            issue("1.2", "not-asked", None),
            issue("1.3", "not-asked", None),
        ],
    }
    assert refusal_reasons(outcome) == ["practitioner-blocked"]


def _retrieve_token() -> str:
    from onerecord.domain import DocumentUniqueId, HomeCommunityId, RepositoryUniqueId
    from onerecord.mhd import RetrieveKey

    return RetrieveKey(
        HomeCommunityId.parse("urn:oid:2.16.578.1.12.4.5.100.4"),
        RepositoryUniqueId.parse("2.16.578.1.12.4.5.100.4.2"),
        DocumentUniqueId("2.16.578.1.99.7"),
    ).token()


@pytest.mark.anyio
@pytest.mark.parametrize("status", [502, 503, 504])
async def test_a_document_whose_region_is_down_names_the_region_not_a_withdrawal(
    status: int,
) -> None:
    """Issue 11, defect 5: «kan være trukket tilbake, sperret…» was said for a region outage."""

    def hub(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json={"resourceType": "OperationOutcome", "issue": []})

    session = HubSession("token", SigningKey.generate(kid="dpop-test"))
    async with httpx.AsyncClient(transport=httpx.MockTransport(hub)) as http:
        with pytest.raises(RegionUnreachable) as raised:
            await fetch_document(
                http,
                session,
                hub_fhir="http://hub.test/fhir",
                ref=_retrieve_token(),
                region="Helse Nord",
            )
    error = raised.value
    for lang, said in (
        ("nb", "Helse Nord svarer ikke nå"),
        ("nn", "Helse Nord svarar ikkje no"),
        ("en", "Helse Nord is not answering now"),
    ):
        t = Translator(lang)
        assert t(error.message_key, **error.params).startswith(said)
        assert "trukket tilbake" not in t(error.advice_key)


@pytest.mark.anyio
async def test_a_document_the_hub_does_not_find_is_still_said_to_be_unavailable() -> None:
    def hub(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"resourceType": "OperationOutcome", "issue": []})

    session = HubSession("token", SigningKey.generate(kid="dpop-test"))
    async with httpx.AsyncClient(transport=httpx.MockTransport(hub)) as http:
        with pytest.raises(DocumentUnavailable):
            await fetch_document(
                http,
                session,
                hub_fhir="http://hub.test/fhir",
                ref=_retrieve_token(),
                region="Helse Nord",
            )
