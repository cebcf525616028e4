"""The development token service: stands in for HelseID (health personnel) and the citizen login,
and beside its registers the patient lookup (IHE PDQm ITI-78, docs/pdqm.md)."""

from __future__ import annotations

from onerecord.sts.app import create_sts_app, load_signing_key
from onerecord.sts.client_auth import (
    CLIENT_ASSERTION_TYP,
    CLIENT_ASSERTION_TYPE,
    verify_client_assertion,
    verify_request_object,
)
from onerecord.sts.login import AuthorizationRedirect, LoginProblem, LoginPrompt
from onerecord.sts.pdqm_query import InvalidPatientQuery, PatientQuery, parse_patient_query
from onerecord.sts.pdqm_service import PDQM_AUDIENCE, PatientLookup, PatientRegister
from onerecord.sts.representation import (
    CitizenRegisters,
    PersonRecord,
    RefusalReason,
    RefusedRepresentation,
    RepresentationAssessment,
    assess_representation,
    representation_claim,
    representations_for,
)
from onerecord.sts.service import (
    REFRESH_TOKEN_GRANT,
    TEST_USER_GRANT,
    StsRegisters,
    TokenService,
    pkce_challenge,
)
from onerecord.sts.settings import ClientConfig, StsSettings
from onerecord.sts.users import SyntheticUser, UserDirectory, UserKind

__all__ = [
    "CLIENT_ASSERTION_TYP",
    "CLIENT_ASSERTION_TYPE",
    "PDQM_AUDIENCE",
    "REFRESH_TOKEN_GRANT",
    "TEST_USER_GRANT",
    "AuthorizationRedirect",
    "CitizenRegisters",
    "ClientConfig",
    "InvalidPatientQuery",
    "LoginProblem",
    "LoginPrompt",
    "PatientLookup",
    "PatientQuery",
    "PatientRegister",
    "PersonRecord",
    "RefusalReason",
    "RefusedRepresentation",
    "RepresentationAssessment",
    "StsRegisters",
    "StsSettings",
    "SyntheticUser",
    "TokenService",
    "UserDirectory",
    "UserKind",
    "assess_representation",
    "create_sts_app",
    "load_signing_key",
    "parse_patient_query",
    "pkce_challenge",
    "representation_claim",
    "representations_for",
    "verify_client_assertion",
    "verify_request_object",
]
