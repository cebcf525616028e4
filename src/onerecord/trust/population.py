"""A citizen's population facts as the access policy needs them, read from the validated token.

Shared by every service that applies the citizen rules (the document source, the media
archive): the STS applied Folkeregisteret and the proxy register at login and signed the result
into `onerecord:representation`; the age rules are applied again on today's date by the policy.

References: TRUST-FRAMEWORK §5.2.
"""

from __future__ import annotations

from onerecord.domain import NationalIdentityNumber
from onerecord.trust.policy import PopulationFacts
from onerecord.trust.principal import CitizenContext, RelationKind

__all__ = ["population_facts"]


def population_facts(citizen: CitizenContext, patient: NationalIdentityNumber) -> PopulationFacts:
    """Return the population facts the citizen policy needs, read from the validated token.

    Where each fact comes from:
    - `patient_birth_date`: the patient's identity number (fødselsnummer/D-number);
    - `parental_responsibility`, `a_parent_at_child_address`: the STS lists a `parent`
      representation only for a child in the parent's care with a parent at the child's address
      (Folkeregisteret at login), so both hold exactly when that representation is present;
    - `power_of_attorney_registered`: a `proxy` / `proxy-unable-to-consent` representation
      (the proxy register at login);
    - `patient_deceased`, `*_address_protected`: the STS issues no representation of or by a
      deceased or protected (kode 6/7) person, so a representation present means False; for
      the citizen's own documents they do not apply.
    The age rules (child under 12, giver 16, holder 18) are applied again by the policy.
    """
    rep = citizen.representation_of(patient)
    relation = rep.relation if rep is not None else None
    parent = relation is RelationKind.PARENT
    return PopulationFacts(
        patient_birth_date=patient.birth_date,
        parental_responsibility=parent,
        a_parent_at_child_address=parent,
        power_of_attorney_registered=relation
        in (RelationKind.PROXY, RelationKind.PROXY_UNABLE_TO_CONSENT),
    )
