"""One example per TRUST-FRAMEWORK §7 scenario, at the policy level (C6–C8, B8, B9, B12, D, E)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from onerecord.domain import DocumentQuery
from onerecord.trust.policy import (
    DenialReason,
    EntryView,
    PatientControls,
    PopulationFacts,
    RegionPolicy,
    citizen_access_log_policy,
    citizen_hidden_labels,
    citizen_retrieve_policy,
    citizen_search_policy,
    hcp_retrieve_policy,
    hcp_search_policy,
    masked_entry,
)
from onerecord.trust.principal import (
    KJ_FORSKRIFT_SCOPE,
    READ_DOCUMENTREFERENCES_SCOPE,
    AccessBasis,
    RelationKind,
    Representation,
)
from tests.trust.policy_factories import (
    HCID,
    NOW,
    PATIENT,
    PRACTITIONER,
    TODAY,
    btg,
    citizen,
    entry,
    hcp,
    synthetic_nin,
    years_ago,
)

REGION = RegionPolicy()
NO_CONTROLS = PatientControls(PATIENT)
KJ = frozenset({KJ_FORSKRIFT_SCOPE})


def search(ctx=None, *, controls=NO_CONTROLS, policy=REGION, patient=PATIENT):
    return hcp_search_policy(
        ctx or hcp(), patient, region_policy=policy, controls=controls, today=TODAY
    )


def months_ago(months: int) -> datetime:
    return NOW - timedelta(days=round(months * 30.44))


# --- request gate (C6–C8, B8, B9, A22) -------------------------------------------------------


def test_c1_valid_request_is_allowed() -> None:
    decision = search()
    assert decision.allowed and not decision.empty and decision.reason is None
    assert decision.view(entry()) is EntryView.FULL


def test_c6_role_outside_the_region_allow_list_is_denied() -> None:
    policy = RegionPolicy(allowed_roles=frozenset({"LE", "SP", "PS"}))
    assert search(hcp(roles=("AA",)), policy=policy).reason is DenialReason.ROLE_NOT_ALLOWED
    assert search(hcp(roles=("SP",)), policy=policy).allowed


def test_a22_health_worker_without_hpr_is_denied() -> None:
    assert search(hcp(hpr=None, roles=())).reason is DenialReason.ROLE_NOT_ALLOWED


def test_c7_security_level_3_is_denied() -> None:
    assert search(hcp(security_level=3)).reason is DenialReason.INSUFFICIENT_ASSURANCE


@pytest.mark.parametrize("purpose", [None, "", "HRESCH", "treat"])
def test_c8_missing_or_unknown_purpose_is_denied(purpose: str | None) -> None:
    decision = search(hcp(purpose=purpose))
    assert not decision.allowed and decision.reason is DenialReason.PURPOSE_NOT_ALLOWED
    assert decision.view(entry()) is EntryView.HIDDEN


def test_purpose_outside_the_region_list_is_denied() -> None:
    from onerecord.trust.principal import PurposeOfUse

    policy = RegionPolicy(allowed_purposes=frozenset({PurposeOfUse.TREAT}))
    assert search(hcp(purpose="COC"), policy=policy).reason is DenialReason.PURPOSE_NOT_ALLOWED


def test_att43_neither_service_nor_details_is_denied() -> None:
    assert search(hcp(healthcare_service=None)).reason is DenialReason.MISSING_ATTESTATION
    assert search(hcp(decision_ref_id=" ")).reason is DenialReason.MISSING_ATTESTATION


def test_b8_kj_scope_without_access_basis_is_denied() -> None:
    assert search(hcp(scope=KJ)).reason is DenialReason.ACCESS_BASIS_REQUIRED
    assert search(hcp(scope=KJ, access_basis=AccessBasis.SAMTYKKE)).allowed


def test_b9_both_list_scopes_are_denied() -> None:
    both = frozenset({KJ_FORSKRIFT_SCOPE, READ_DOCUMENTREFERENCES_SCOPE})
    ctx = hcp(scope=both, access_basis=AccessBasis.AKUTT)
    assert search(ctx).reason is DenialReason.SCOPE_CONFLICT
    assert search(hcp(scope=frozenset())).reason is DenialReason.SCOPE_MISSING


def test_access_basis_header_values_in_any_case() -> None:
    assert AccessBasis.parse(" forhoyet_akutt ") is AccessBasis.FORHOYET_AKUTT
    with pytest.raises(ValueError):
        AccessBasis.parse("HPAKUTT")


def test_att5_blocked_health_worker_is_denied_by_hpr_or_nin() -> None:
    by_hpr = PatientControls(PATIENT, blocked_practitioners=frozenset({"123456789"}))
    by_nin = PatientControls(PATIENT, blocked_practitioners=frozenset({PRACTITIONER.value}))
    for controls in (by_hpr, by_nin):
        decision = search(hcp(purpose="BTG"), controls=controls)
        assert decision.reason is DenialReason.PRACTITIONER_BLOCKED
    other = PatientControls(PATIENT, blocked_practitioners=frozenset({"99999"}))
    assert search(controls=other).allowed


def test_controls_of_another_patient_are_a_programming_error() -> None:
    with pytest.raises(ValueError):
        search(controls=PatientControls(PRACTITIONER))


# --- D: blocks, confidentiality, kjernejournalforskriften ------------------------------------


def test_d1_nors_is_masked_for_treat_and_not_retrievable() -> None:
    blocked = entry(labels=("N", "NORS"))
    decision = search()
    assert decision.view(blocked) is EntryView.MASKED
    assert not decision.unlocks(blocked)
    retrieve = hcp_retrieve_policy(
        hcp(), PATIENT, blocked, region_policy=REGION, controls=NO_CONTROLS, today=TODAY
    )
    assert not retrieve.allowed and retrieve.reason is DenialReason.DOCUMENT_BLOCKED


def test_d1_masked_placeholder_keeps_date_class_region_only() -> None:
    blocked = entry(labels=("NORS",), service_start=datetime(2020, 2, 2, tzinfo=UTC))
    placeholder = masked_entry(blocked)
    assert placeholder.title == "Sperret" and placeholder.title != blocked.title
    assert placeholder.date == datetime(2020, 2, 2, tzinfo=UTC)
    assert placeholder.class_code == blocked.class_code
    assert placeholder.home_community_id == HCID
    for dropped in ("unique_id", "type_code", "authors", "practice_setting"):
        assert not hasattr(placeholder, dropped)


@pytest.mark.parametrize(
    "ctx",
    [
        btg(),
        replace(btg(), purpose_of_use="ETREAT"),
        replace(btg(), scope=KJ, purpose_of_use="TREAT"),
    ],
)
def test_d2_emergency_opens_blocked_entries_and_is_marked(ctx: object) -> None:
    """D2 as refined by issue 11, defect 7: an emergency opens what its signed grant names."""
    blocked = entry(labels=("N", "NORS"))
    decision = search(ctx)
    assert decision.view(blocked) is EntryView.FULL
    assert decision.emergency_access and decision.unlocks(blocked)
    assert not decision.unlocks(entry())
    retrieve = hcp_retrieve_policy(
        ctx,
        PATIENT,
        blocked,
        region_policy=REGION,
        controls=NO_CONTROLS,
        today=TODAY,
    )
    assert retrieve.allowed and retrieve.emergency_access


def test_d2_plain_akutt_does_not_open_blocked_entries() -> None:
    decision = search(hcp(scope=KJ, access_basis=AccessBasis.AKUTT))
    assert decision.view(entry(labels=("NORS",))) is EntryView.MASKED


def test_d3_elevated_consent_opens_blocked_entries() -> None:
    ctx = hcp(scope=KJ, access_basis=AccessBasis.FORHOYET_SAMTYKKE)
    assert search(ctx).view(entry(labels=("NORS",))) is EntryView.FULL
    plain = hcp(scope=KJ, access_basis=AccessBasis.SAMTYKKE)
    assert search(plain).view(entry(labels=("NORS",))) is EntryView.MASKED


def test_document_block_by_patient_masks_like_nors() -> None:
    doc = entry(unique_id="2.16.578.1.12.4.5.100.1.1.777")
    controls = PatientControls(PATIENT, blocked_documents=frozenset({doc.unique_id}))
    assert search(controls=controls).view(doc) is EntryView.MASKED
    assert search(controls=controls).view(entry()) is EntryView.FULL
    assert search(btg(), controls=controls).view(doc) is EntryView.FULL


def test_d4_reserved_patient_gives_an_empty_list() -> None:
    controls = PatientControls(PATIENT, reserved_since=NOW - timedelta(days=3))
    decision = search(btg(), controls=controls)
    assert decision.allowed and decision.empty
    assert decision.reason is DenialReason.PATIENT_RESERVED
    assert decision.view(entry()) is EntryView.HIDDEN
    retrieve = hcp_retrieve_policy(
        hcp(), PATIENT, entry(), region_policy=REGION, controls=controls, today=TODAY
    )
    assert retrieve.reason is DenialReason.PATIENT_RESERVED


def test_d5_kj_scope_hides_lab_results_older_than_a_year() -> None:
    lab = entry(class_code="C00-1", service_start=months_ago(13))
    recent = entry(class_code="C00-1", service_start=months_ago(11))
    kj = search(hcp(scope=KJ, access_basis=AccessBasis.SAMTYKKE))
    assert kj.view(lab) is EntryView.HIDDEN
    assert kj.view(recent) is EntryView.FULL
    assert search().view(lab) is EntryView.FULL  # §45 scope: no filter


def test_d6_kj_scope_images_five_years_summaries_always() -> None:
    kj = search(hcp(scope=KJ, access_basis=AccessBasis.UNNTAK))
    assert kj.view(entry(class_code="E00-1", service_start=months_ago(48))) is EntryView.FULL
    assert kj.view(entry(class_code="E00-1", service_start=months_ago(72))) is EntryView.HIDDEN
    assert kj.view(entry(class_code="A00-1", service_start=months_ago(240))) is EntryView.FULL
    assert kj.view(entry(class_code="B00-1", service_start=months_ago(1))) is EntryView.HIDDEN


def test_d7_own_record_hides_v() -> None:
    own = hcp(nin=PATIENT)
    decision = search(own)
    assert decision.hidden_labels == frozenset({"V"})
    assert decision.view(entry(labels=("V",))) is EntryView.HIDDEN
    assert decision.view(entry(labels=("R",))) is EntryView.FULL
    query = decision.restrict(DocumentQuery(patient_id=PATIENT))
    assert "V" in query.hidden_labels
    assert search().view(entry(labels=("V",))) is EntryView.FULL


@pytest.mark.parametrize("code", ["NORN_KUT", "NORN_ALL", "NORU"])
def test_d8_norn_and_noru_do_not_restrict_health_personnel(code: str) -> None:
    assert search().view(entry(labels=("N", code))) is EntryView.FULL


def test_b12_retrieve_of_another_patients_entry_is_denied() -> None:
    other = entry(patient=PRACTITIONER)
    retrieve = hcp_retrieve_policy(
        hcp(), PATIENT, other, region_policy=REGION, controls=NO_CONTROLS, today=TODAY
    )
    assert retrieve.reason is DenialReason.WRONG_PATIENT


# --- E: citizens ------------------------------------------------------------------------------

ADULT = synthetic_nin(years_ago(40))


def facts_for(patient_born: object, **kw: bool) -> PopulationFacts:
    return PopulationFacts(patient_birth_date=patient_born, **kw)


def csearch(ctx, patient, facts):
    return citizen_search_policy(ctx, patient, facts=facts, now=NOW)


def test_e1_adult_sees_n_and_r_but_not_v_or_norn() -> None:
    decision = csearch(citizen(ADULT), ADULT, facts_for(ADULT.birth_date))
    assert decision.allowed and not decision.empty
    assert decision.view(entry(patient=ADULT, labels=("N",))) is EntryView.FULL
    assert decision.view(entry(patient=ADULT, labels=("R",))) is EntryView.FULL
    assert decision.view(entry(patient=ADULT, labels=("N", "NORS"))) is EntryView.FULL
    assert decision.view(entry(patient=ADULT, labels=("V",))) is EntryView.HIDDEN
    assert decision.view(entry(patient=ADULT, labels=("N", "NORN_FFL"))) is EntryView.HIDDEN
    assert {"V", "NORN_ALL", "NORN_KUT", "NORN_ANG"} <= decision.hidden_labels
    query = decision.restrict(DocumentQuery(patient_id=ADULT))
    assert query.hidden_labels == citizen_hidden_labels() and query.released_by == NOW


def test_e2_citizen_aged_14_gets_an_empty_list() -> None:
    teen = synthetic_nin(years_ago(14))
    decision = csearch(citizen(teen), teen, facts_for(teen.birth_date))
    assert decision.allowed and decision.empty
    assert decision.reason is DenialReason.CITIZEN_UNDER_AGE
    retrieve = citizen_retrieve_policy(
        citizen(teen), teen, entry(patient=teen), facts=facts_for(teen.birth_date), now=NOW
    )
    assert not retrieve.allowed


def _own_log(born: object) -> object:
    person = synthetic_nin(born)
    return citizen_access_log_policy(
        citizen(person), person, facts=facts_for(person.birth_date), now=NOW
    )


def test_e2_a_young_person_of_12_to_15_reads_their_own_access_log() -> None:
    # Issue 11: the log is theirs from the 12th birthday, when the parents' access ends (E5).
    for born in (years_ago(14), years_ago(12), years_ago(16, days=-1)):
        decision = _own_log(born)
        assert decision.allowed and not decision.empty and decision.reason is None
    # The documents themselves stay closed until 16 (E2), whatever the log allows.
    teen = synthetic_nin(years_ago(14))
    assert csearch(citizen(teen), teen, facts_for(teen.birth_date)).empty


def test_e2_under_12_the_own_access_log_stays_closed() -> None:
    for born in (years_ago(11), years_ago(12, days=-1)):
        decision = _own_log(born)
        assert decision.empty and decision.reason is DenialReason.CITIZEN_UNDER_AGE


def test_access_log_policy_keeps_every_other_citizen_rule() -> None:
    teen = synthetic_nin(years_ago(14))
    # Another person's log: a proxy for a 14-year-old is no more valid for the log (E8).
    holder = synthetic_nin(years_ago(45), start=100)
    ctx = citizen(holder, representations=(Representation(teen, RelationKind.PROXY),))
    facts = facts_for(teen.birth_date, power_of_attorney_registered=True)
    assert citizen_access_log_policy(ctx, teen, facts=facts, now=NOW).reason is (
        DenialReason.PROXY_NOT_VALID
    )
    # A parent of a 14-year-old (E5) and a level-3 login (E13) stay refused.
    parent = citizen(holder, representations=(Representation(teen, RelationKind.PARENT),))
    parental = facts_for(
        teen.birth_date, parental_responsibility=True, a_parent_at_child_address=True
    )
    assert citizen_access_log_policy(parent, teen, facts=parental, now=NOW).reason is (
        DenialReason.CHILD_TOO_OLD
    )
    low = citizen(teen, acr_level=3)
    assert citizen_access_log_policy(
        low, teen, facts=facts_for(teen.birth_date), now=NOW
    ).reason is (DenialReason.INSUFFICIENT_ASSURANCE)
    # An adult's own log and a parent's reading of a child under 12 are as for the documents.
    assert citizen_access_log_policy(
        citizen(ADULT), ADULT, facts=facts_for(ADULT.birth_date), now=NOW
    ).allowed
    child = synthetic_nin(years_ago(11))
    parent_of_11 = citizen(holder, representations=(Representation(child, RelationKind.PARENT),))
    facts_11 = facts_for(
        child.birth_date, parental_responsibility=True, a_parent_at_child_address=True
    )
    assert citizen_access_log_policy(parent_of_11, child, facts=facts_11, now=NOW).allowed


def test_e3_citizen_aged_17_sees_own_documents() -> None:
    youth = synthetic_nin(years_ago(17))
    decision = csearch(citizen(youth), youth, facts_for(youth.birth_date))
    assert decision.allowed and not decision.empty
    sixteen_today = synthetic_nin(years_ago(16))
    assert not csearch(
        citizen(sixteen_today), sixteen_today, facts_for(sixteen_today.birth_date)
    ).empty


def _parent_of(child_born: object, **kw: bool) -> object:
    child = synthetic_nin(child_born)
    ctx = citizen(ADULT, representations=(Representation(child, RelationKind.PARENT),))
    return csearch(ctx, child, facts_for(child.birth_date, parental_responsibility=True, **kw))


def test_e4_parent_of_child_11_living_with_a_parent() -> None:
    decision = _parent_of(years_ago(11), a_parent_at_child_address=True)
    assert decision.allowed and not decision.empty


def test_e5_parent_of_child_who_turned_12_yesterday_is_denied() -> None:
    decision = _parent_of(years_ago(12, days=1), a_parent_at_child_address=True)
    assert decision.reason is DenialReason.CHILD_TOO_OLD
    almost = _parent_of(years_ago(12, days=-1), a_parent_at_child_address=True)
    assert almost.allowed


def test_e6_no_parent_at_childs_address_is_denied() -> None:
    decision = _parent_of(years_ago(11), a_parent_at_child_address=False)
    assert decision.reason is DenialReason.NO_PARENT_AT_ADDRESS


def test_parent_without_parental_responsibility_is_denied() -> None:
    child = synthetic_nin(years_ago(5))
    ctx = citizen(ADULT, representations=(Representation(child, RelationKind.PARENT),))
    facts = facts_for(child.birth_date, a_parent_at_child_address=True)
    assert csearch(ctx, child, facts).reason is DenialReason.NO_REPRESENTATION


def _proxy(holder_age: int, giver_age: int, **kw: bool):
    holder = synthetic_nin(years_ago(holder_age))
    giver = synthetic_nin(years_ago(giver_age), start=100)
    ctx = citizen(holder, representations=(Representation(giver, RelationKind.PROXY),))
    facts = facts_for(giver.birth_date, power_of_attorney_registered=True, **kw)
    return csearch(ctx, giver, facts)


def test_e7_proxy_for_a_40_year_old() -> None:
    assert _proxy(50, 40).allowed


def test_e8_proxy_for_a_14_year_old_is_denied() -> None:
    assert _proxy(45, 14).reason is DenialReason.PROXY_NOT_VALID


def test_e10_proxy_holder_17_or_giver_15_is_denied() -> None:
    assert _proxy(17, 40).reason is DenialReason.PROXY_NOT_VALID
    assert _proxy(40, 15).reason is DenialReason.PROXY_NOT_VALID


def test_unregistered_proxy_is_denied() -> None:
    holder = synthetic_nin(years_ago(50))
    giver = synthetic_nin(years_ago(40), start=100)
    ctx = citizen(holder, representations=(Representation(giver, RelationKind.PROXY),))
    decision = csearch(ctx, giver, facts_for(giver.birth_date))
    assert decision.reason is DenialReason.NO_REPRESENTATION


def test_e9_another_persons_documents_without_representation_are_denied() -> None:
    decision = csearch(citizen(ADULT), PATIENT, facts_for(PATIENT.birth_date))
    assert decision.reason is DenialReason.NO_REPRESENTATION
    assert decision.view(entry()) is EntryView.HIDDEN


@pytest.mark.parametrize("side", ["requester_address_protected", "patient_address_protected"])
def test_e11_protected_address_cannot_represent_or_be_represented(side: str) -> None:
    assert _proxy(50, 40, **{side: True}).reason is DenialReason.PROTECTED_ADDRESS
    decision = _parent_of(years_ago(5), a_parent_at_child_address=True, **{side: True})
    assert decision.reason is DenialReason.PROTECTED_ADDRESS


def test_e12_noru_hidden_until_release() -> None:
    decision = csearch(citizen(ADULT), ADULT, facts_for(ADULT.birth_date))
    later = entry(patient=ADULT, labels=("N", "NORU"), release=NOW + timedelta(days=1))
    released = entry(patient=ADULT, labels=("N", "NORU"), release=NOW - timedelta(days=1))
    undated = entry(patient=ADULT, labels=("N", "NORU"))
    assert decision.view(later) is EntryView.HIDDEN
    assert decision.view(undated) is EntryView.HIDDEN
    assert decision.view(released) is EntryView.FULL
    retrieve = citizen_retrieve_policy(
        citizen(ADULT), ADULT, later, facts=facts_for(ADULT.birth_date), now=NOW
    )
    assert retrieve.reason is DenialReason.DOCUMENT_RESTRICTED


def test_e13_login_at_level_3_is_refused() -> None:
    decision = csearch(citizen(ADULT, acr_level=3), ADULT, facts_for(ADULT.birth_date))
    assert decision.reason is DenialReason.INSUFFICIENT_ASSURANCE


def test_deceased_patient_has_no_digital_access() -> None:
    decision = csearch(citizen(ADULT), ADULT, facts_for(ADULT.birth_date, patient_deceased=True))
    assert decision.reason is DenialReason.PATIENT_DECEASED


def test_citizen_retrieve_of_own_normal_document() -> None:
    doc = entry(patient=ADULT)
    facts = facts_for(ADULT.birth_date)
    assert citizen_retrieve_policy(citizen(ADULT), ADULT, doc, facts=facts, now=NOW).allowed
    other = citizen_retrieve_policy(citizen(ADULT), ADULT, entry(), facts=facts, now=NOW)
    assert other.reason is DenialReason.WRONG_PATIENT


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError):
        citizen_search_policy(
            citizen(ADULT),
            ADULT,
            facts=facts_for(ADULT.birth_date),
            now=NOW.replace(tzinfo=None),
        )


def test_restrict_keeps_existing_restrictions() -> None:
    decision = csearch(citizen(ADULT), ADULT, facts_for(ADULT.birth_date))
    earlier = NOW - timedelta(days=5)
    query = DocumentQuery(patient_id=ADULT, hidden_labels=frozenset({"X"}), released_by=earlier)
    narrowed = decision.restrict(query)
    assert "X" in narrowed.hidden_labels and narrowed.released_by == earlier
