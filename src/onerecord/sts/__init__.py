"""The development token service: stands in for HelseID (health personnel) and the citizen login."""

from __future__ import annotations

from onerecord.sts.app import create_sts_app, load_signing_key
from onerecord.sts.client_auth import (
    CLIENT_ASSERTION_TYP,
    CLIENT_ASSERTION_TYPE,
    verify_client_assertion,
    verify_request_object,
)
from onerecord.sts.representation import (
    CitizenRegisters,
    PersonRecord,
    representation_claim,
    representations_for,
)
from onerecord.sts.service import TEST_USER_GRANT, StsRegisters, TokenService, pkce_challenge
from onerecord.sts.settings import ClientConfig, StsSettings

__all__ = [
    "CLIENT_ASSERTION_TYP",
    "CLIENT_ASSERTION_TYPE",
    "TEST_USER_GRANT",
    "CitizenRegisters",
    "ClientConfig",
    "PersonRecord",
    "StsRegisters",
    "StsSettings",
    "TokenService",
    "create_sts_app",
    "load_signing_key",
    "pkce_challenge",
    "representation_claim",
    "representations_for",
    "verify_client_assertion",
    "verify_request_object",
]
