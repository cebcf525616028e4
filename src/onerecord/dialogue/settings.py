"""Settings of the dialogue service, from arguments or ONERECORD_DIALOGUE_* variables."""

from __future__ import annotations

from pathlib import Path
from typing import Self

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["DialogueSettings"]


class DialogueSettings(BaseSettings):
    """Everything the dialogue service needs; passed to `create_app`, never global."""

    model_config = SettingsConfigDict(env_prefix="ONERECORD_DIALOGUE_", frozen=True)

    db_url: str = "sqlite:///var/dialogue/dialogue.db"
    db_schema: str | None = None
    public_base_url: str = "http://127.0.0.1:8107"
    source_id: str = Field(
        default="onerecord-dialogue", max_length=64, description="the audit chain's source id"
    )
    issuer: str | None = Field(default=None, description="the trusted token issuer (iss)")
    jwks_url: str | None = Field(default=None, description="JWKS of the trusted token issuer")
    audience: str = Field(
        default="urn:onerecord:dialogue", description="the aud this service accepts"
    )
    clock_skew: int = 300
    # Room for a message with photos (base64): dialogue.images takes up to 8 MB a photo.
    max_body_bytes: int = Field(default=12 * 1024 * 1024, gt=0)
    # The service as a party of KITH messages (MsgHead Sender/Receiver); synthetic defaults.
    kith_name: str = Field(default="onerecord dialogue", max_length=200)
    kith_orgnr: str = Field(default="999999999", pattern=r"^\d{9}$")
    kith_her_id: str | None = Field(default=None, pattern=r"^\d{1,9}$")
    dev_mode: bool = False
    dev_clock: bool = Field(
        default=False,
        description="development only: POST /dev/clock moves the service's clock (the demo's "
        "browser journeys); refused outside dev mode",
    )
    # E-mail notices (dialogue.notify): off while smtp_host is None.
    smtp_host: str | None = None
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_from: str = "ikke-svar@onerecord.example"
    smtp_starttls: bool = False
    smtp_timeout_s: float = Field(default=10.0, gt=0, le=60)
    notify_attempts: int = Field(default=8, ge=1, le=20)
    notify_backoff_s: float = Field(default=2.0, gt=0, le=3600)
    notify_poll_s: float = Field(default=1.0, gt=0, le=60)
    portal_url: str = Field(
        default="http://127.0.0.1:8106/innbygger/fastlege",
        description="the page a notice points to (the citizen's GP page)",
    )
    # Idempotency keys (docs/dialogue.md "Idempotent creation"): how long a key names what it
    # made, and how often the expired ones are deleted.
    idempotency_retention_s: int = Field(default=24 * 3600, ge=60, le=30 * 24 * 3600)
    idempotency_purge_s: float = Field(default=3600.0, gt=0, le=24 * 3600)
    contacts_file: Path | None = Field(
        default=None,
        description="the contact register's extract: e-mail and language by national id "
        "(dialogue.contacts)",
    )

    @field_validator("public_base_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @model_validator(mode="after")
    def _trust_configured(self) -> Self:
        if not self.issuer or not self.jwks_url:
            raise ValueError("the dialogue service needs the token issuer and its JWKS URL")
        if self.dev_clock and not self.dev_mode:
            raise ValueError("refusing the development clock outside dev mode (--dev)")
        return self
