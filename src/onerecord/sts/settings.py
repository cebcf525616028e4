"""Settings of the development token service, from arguments or ONERECORD_STS_* variables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["ClientConfig", "StsSettings"]


class ClientConfig(BaseModel):
    """A registered client: its public key (private_key_jwt) and redirect URIs."""

    model_config = {"frozen": True}

    jwk: dict[str, Any]
    redirect_uris: tuple[str, ...] = ()
    name: str | None = None


class StsSettings(BaseSettings):
    """Everything the STS needs; passed to `create_sts_app`, never global."""

    model_config = SettingsConfigDict(env_prefix="ONERECORD_STS_", frozen=True)

    issuer: str = "http://127.0.0.1:8100"
    dev_mode: bool = False
    key_dir: Path = Path("var/sts/keys")
    key_file: Path | None = Field(default=None, description="private JWK of a production key")
    clients: dict[str, ClientConfig] = Field(default_factory=dict)
    default_audience: str = "nhn:phr"
    allowed_audiences: tuple[str, ...] = (
        "nhn:phr",
        "onerecord:hub",
        "onerecord:source",
        "onerecord:pdqm",
    )
    dialogue_audiences: tuple[str, ...] = Field(
        default=("urn:onerecord:dialogue",),
        description=(
            "audiences of the dialogue with the GP office: a citizen's token for one also lists"
            " the children of 12-15 at a parent's address (sts.representation)"
        ),
    )
    pdqm_audience: str = Field(
        default="onerecord:pdqm", description="audience of tokens for the patient lookup"
    )
    register_audit_db: str | None = Field(
        default=None,
        description="sqlite:///FILE or postgresql://… for the patient lookup's audit chain",
    )
    token_lifetime: int = 600
    assertion_max_lifetime: int = 60
    skew: int = 5
    code_lifetime: int = 60
    login_lifetime: int = Field(default=600, description="seconds the login page stays valid")
    refresh_token_lifetime: int = Field(
        default=8 * 3600, description="seconds a login lasts through refresh tokens (absolute)"
    )
    population: Path | None = None

    @field_validator("issuer")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @property
    def token_endpoint(self) -> str:
        return f"{self.issuer}/token"

    @property
    def userinfo_endpoint(self) -> str:
        return f"{self.issuer}/userinfo"
