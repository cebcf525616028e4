"""What a search decision hands the registry, and which retrieve refusals conceal the document.

Issue 10, F1–F4: the registry must apply exactly the per-entry view (so filters, sorting and
`total` see only what the caller may), and a retrieve must not confirm a document the caller may
not know of.
"""

from __future__ import annotations

from typing import Any

from onerecord.domain import DocumentQuery
from onerecord.trust.policy import (
    CONCEALING_REASONS,
    DenialReason,
    PatientControls,
    RegionPolicy,
    SearchDecision,
    hcp_search_policy,
    kj_forskrift_windows,
    retrieve_policy,
)
from onerecord.trust.principal import KJ_FORSKRIFT_SCOPE, AccessBasis
from tests.trust import policy_factories as pf

BLOCKED = pf.entry()
CONTROLS = PatientControls(pf.PATIENT, blocked_documents=frozenset({BLOCKED.unique_id}))
QUERY = DocumentQuery(patient_id=pf.PATIENT)


def decide(**kw: Any) -> SearchDecision:
    return hcp_search_policy(
        pf.hcp(**kw),
        pf.PATIENT,
        region_policy=RegionPolicy(),
        controls=CONTROLS,
        today=pf.TODAY,
    )


def test_restrict_masks_nors_and_blocked_documents_without_emergency_access() -> None:
    narrowed = decide().restrict(QUERY)
    assert narrowed.masked_labels == frozenset({"NORS"})
    assert narrowed.masked_documents == frozenset({BLOCKED.unique_id})
    assert narrowed.shown_classes is None


def test_restrict_masks_nothing_with_elevated_consent() -> None:
    narrowed = decide(access_basis=AccessBasis.FORHOYET_SAMTYKKE).restrict(QUERY)
    assert not narrowed.masked_labels and not narrowed.masked_documents


def test_restrict_keeps_masking_under_an_emergency_grant() -> None:
    """The registry still masks all blocked entries; the grant opens its scope per entry."""
    narrowed = decide(purpose="ETREAT").restrict(QUERY)
    assert narrowed.masked_labels == frozenset({"NORS"})


def test_restrict_carries_the_kjernejournalforskriften_windows() -> None:
    kj = decide(scope=frozenset({KJ_FORSKRIFT_SCOPE}), access_basis=AccessBasis.AKUTT)
    assert kj.restrict(QUERY).shown_classes == kj_forskrift_windows(pf.TODAY)
    windows = {w.code: w.since for w in kj_forskrift_windows(pf.TODAY)}
    assert windows["A00-1"] is None
    assert windows["C00-1"] is not None and windows["C00-1"].date() == pf.TODAY.replace(
        year=pf.TODAY.year - 1
    )


def test_wrong_patient_and_hidden_entries_are_concealed_blocked_ones_are_not() -> None:
    other = pf.entry(patient=pf.synthetic_nin(pf.years_ago(30), start=7))
    search = decide()
    assert retrieve_policy(search, pf.PATIENT, other).conceals
    assert retrieve_policy(search, pf.PATIENT, other).reason is DenialReason.WRONG_PATIENT
    blocked = retrieve_policy(search, pf.PATIENT, BLOCKED)
    assert blocked.reason is DenialReason.DOCUMENT_BLOCKED and not blocked.conceals
    own_v = retrieve_policy(decide(nin=pf.PATIENT), pf.PATIENT, pf.entry(labels=("V",)))
    assert own_v.reason is DenialReason.DOCUMENT_RESTRICTED and own_v.conceals
    assert CONCEALING_REASONS == {DenialReason.WRONG_PATIENT, DenialReason.DOCUMENT_RESTRICTED}
    assert retrieve_policy(search, pf.PATIENT, pf.entry()).allowed
