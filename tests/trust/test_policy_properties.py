"""Properties of the access policy over generated claims, facts and document labels."""

from __future__ import annotations

from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from onerecord.domain import code_tables
from onerecord.trust.policy import (
    DenialReason,
    EntryView,
    PatientControls,
    PopulationFacts,
    RegionPolicy,
    citizen_search_policy,
    hcp_search_policy,
)
from onerecord.trust.principal import (
    KJ_FORSKRIFT_SCOPE,
    READ_DOCUMENTREFERENCES_SCOPE,
    AccessBasis,
    CitizenContext,
    PurposeOfUse,
    RelationKind,
    Representation,
)
from tests.trust.policy_factories import NOW, PATIENT, TODAY, entry, grant, hcp, synthetic_nin

ALL_LABELS = sorted(
    {code for _, code in code_tables().value_sets["confidentialityCode"]} | {"R", "V"}
)
PEOPLE = [
    PATIENT,
    synthetic_nin(date(1990, 1, 2)),
    synthetic_nin(date(2015, 5, 5)),
    synthetic_nin(date(2011, 7, 1)),
    synthetic_nin(date(2008, 12, 24)),
]
ORDER = {EntryView.FULL: 0, EntryView.MASKED: 1, EntryView.HIDDEN: 2}

labels_st = st.lists(st.sampled_from(ALL_LABELS), min_size=1, max_size=4, unique=True).map(tuple)
entry_st = st.builds(
    lambda labels, cls: (labels, cls),
    labels_st,
    st.sampled_from(["A00-1", "B00-1", "C00-1", "E00-1", "I00-1"]),
)
representation_st = st.builds(
    Representation, st.sampled_from(PEOPLE), st.sampled_from(list(RelationKind))
)
citizen_st = st.builds(
    CitizenContext,
    nin=st.sampled_from(PEOPLE),
    acr_level=st.integers(1, 4),
    representations=st.lists(representation_st, max_size=3).map(tuple),
)
facts_st = st.builds(
    PopulationFacts,
    patient_birth_date=st.dates(date(1920, 1, 1), TODAY),
    patient_deceased=st.booleans(),
    parental_responsibility=st.booleans(),
    a_parent_at_child_address=st.booleans(),
    power_of_attorney_registered=st.booleans(),
    requester_address_protected=st.booleans(),
    patient_address_protected=st.booleans(),
)
purpose_st = st.one_of(st.none(), st.sampled_from([*PurposeOfUse, "HRESCH", "PATRQT", "13"]))
scope_st = st.sets(st.sampled_from([READ_DOCUMENTREFERENCES_SCOPE, KJ_FORSKRIFT_SCOPE])).map(
    frozenset
)
hcp_st = st.builds(
    lambda purpose, roles, basis, scope, level, own: hcp(
        purpose=purpose,
        roles=roles,
        access_basis=basis,
        scope=scope,
        security_level=level,
        nin=PATIENT if own else PEOPLE[1],
    ),
    purpose_st,
    st.lists(st.sampled_from(["LE", "SP", "AA", "XX", "TL"]), max_size=2).map(tuple),
    st.one_of(st.none(), st.sampled_from(list(AccessBasis))),
    scope_st,
    st.integers(2, 4),
    st.booleans(),
)
controls_st = st.builds(
    PatientControls,
    patient=st.just(PATIENT),
    blocked_practitioners=st.sets(st.sampled_from(["123456789", "55555"])).map(frozenset),
)


def _age(born: date) -> int:
    return TODAY.year - born.year - ((TODAY.month, TODAY.day) < (born.month, born.day))


@settings(max_examples=400)
@given(citizen_st, st.sampled_from(PEOPLE), facts_st, entry_st)
def test_citizen_never_sees_norn_or_v_nor_unrepresented_persons(
    ctx: CitizenContext, patient: object, facts: PopulationFacts, spec: tuple[tuple[str, ...], str]
) -> None:
    labels, cls = spec
    decision = citizen_search_policy(ctx, patient, facts=facts, now=NOW)  # type: ignore[arg-type]
    view = decision.view(entry(labels=labels, class_code=cls, patient=patient))  # type: ignore[arg-type]
    if "V" in labels or any(code.startswith("NORN_") for code in labels):
        assert view is not EntryView.FULL
        assert (
            not set(labels).isdisjoint(decision.hidden_labels)
            or not decision.allowed
            or (decision.empty)
        )
    if view is EntryView.FULL:
        assert ctx.acr_level >= 4 and not facts.patient_deceased
    if decision.allowed and ctx.nin != patient:
        rep = ctx.representation_of(patient)  # type: ignore[arg-type]
        assert rep is not None
        assert not (facts.requester_address_protected or facts.patient_address_protected)
        age = _age(facts.patient_birth_date)
        if rep.relation is RelationKind.PARENT:
            assert facts.parental_responsibility and facts.a_parent_at_child_address
            assert age < 12
        else:
            assert facts.power_of_attorney_registered and age >= 16
            assert _age(ctx.born) >= 18
    if not decision.allowed or decision.empty:
        assert view is EntryView.HIDDEN


@settings(max_examples=400)
@given(hcp_st, controls_st, entry_st)
def test_nors_never_full_for_treat_without_elevated_basis(
    ctx: object, controls: PatientControls, spec: tuple[tuple[str, ...], str]
) -> None:
    labels, cls = spec
    decision = hcp_search_policy(
        ctx,  # type: ignore[arg-type]
        PATIENT,
        region_policy=RegionPolicy(),
        controls=controls,
        today=TODAY,
    )
    view = decision.view(entry(labels=labels, class_code=cls))
    purpose = ctx.purpose  # type: ignore[attr-defined]
    basis = ctx.access_basis  # type: ignore[attr-defined]
    if "NORS" in labels and purpose in (PurposeOfUse.TREAT, PurposeOfUse.COC):
        if basis is None or not basis.elevated:
            assert view is not EntryView.FULL


@settings(max_examples=300)
@given(hcp_st, controls_st, entry_st)
def test_deny_overrides(
    ctx: object, controls: PatientControls, spec: tuple[tuple[str, ...], str]
) -> None:
    """A denying rule wins over any combination of other claims; denied means nothing shown."""
    labels, cls = spec
    doc = entry(labels=labels, class_code=cls)
    kw = {"region_policy": RegionPolicy(), "controls": controls, "today": TODAY}
    decision = hcp_search_policy(ctx, PATIENT, **kw)  # type: ignore[arg-type]
    if ctx.security_level < 4:  # type: ignore[attr-defined]
        assert decision.reason is DenialReason.INSUFFICIENT_ASSURANCE
    if ctx.purpose is None:  # type: ignore[attr-defined]
        assert not decision.allowed
    if controls.blocks_practitioner(ctx):  # type: ignore[arg-type]
        assert not decision.allowed
    if not decision.allowed:
        assert decision.view(doc) is EntryView.HIDDEN
    # Adding a label never makes an entry more visible.
    for extra in ALL_LABELS:
        more = entry(labels=tuple(dict.fromkeys((*labels, extra))), class_code=cls)
        assert ORDER[decision.view(more)] >= ORDER[decision.view(doc)]


@settings(max_examples=300, deadline=None)
@given(
    entry_st,
    st.booleans(),
    st.sampled_from([None, *AccessBasis]),
    st.sampled_from(["TREAT", "ETREAT", "BTG"]),
    st.booleans(),
)
def test_masks_is_the_blocking_part_of_view(
    facts: tuple[tuple[str, ...], str],
    blocked: bool,
    basis: AccessBasis | None,
    purpose: str,
    with_grant: bool,
) -> None:
    """`masks` (for the media archive's studies) says MASKED exactly when `view` would, unhidden."""
    labels, klass = facts
    doc = entry(labels=labels, class_code=klass)
    controls = PatientControls(
        PATIENT, blocked_documents=frozenset({doc.unique_id}) if blocked else frozenset()
    )
    ctx = hcp(
        purpose=purpose,
        access_basis=basis,
        emergency=grant(classes=("E00-1",)) if with_grant else None,
    )
    decision = hcp_search_policy(
        ctx, PATIENT, region_policy=RegionPolicy(), controls=controls, today=TODAY, now=NOW
    )
    view = decision.view(doc)
    if view is not EntryView.HIDDEN:
        assert decision.masks(doc) == (view is EntryView.MASKED)
    if not decision.allowed:
        assert not decision.masks(doc)
