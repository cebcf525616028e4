"""Settings of one regional document source, read from arguments or ONERECORD_SOURCE_* variables."""

from __future__ import annotations

from pathlib import Path
from typing import Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from onerecord.domain import HomeCommunityId, RepositoryUniqueId
from onerecord.events import DEFAULT_SUBJECT_PREFIX, check_patient_key_setting
from onerecord.trust.caller_limits import CallerQuota
from onerecord.trust.policy import RegionPolicy
from onerecord.trust.principal import PurposeOfUse
from onerecord.xca.addressing import ReplyEndpoint

__all__ = ["SourceSettings"]

_DEFAULT_POLICY = RegionPolicy()


class SourceSettings(BaseSettings):
    """Everything a document source needs; passed to `create_app`, never global."""

    model_config = SettingsConfigDict(env_prefix="ONERECORD_SOURCE_", frozen=True)

    region: str = "Helse Sør-Øst"
    home_community_id: str = "urn:oid:2.16.578.1.12.4.5.100.1"
    repository_unique_id: str = "2.16.578.1.12.4.5.100.1.2"
    db_url: str = "sqlite:///var/source/registry.db"
    db_schema: str | None = None
    content_dir: Path = Path("var/source/content")
    s3_url: str | None = Field(
        default=None, description="s3://bucket/prefix; when set, content goes to S3 via obstore"
    )
    content_sweep_grace_s: float = Field(
        default=3600.0,
        gt=0,
        description="the orphan sweep removes only unreferenced content older than this",
    )
    content_sweep_interval_s: float = Field(
        default=3600.0, gt=0, description="seconds between orphan sweeps (one runs at start-up)"
    )
    public_base_url: str = "http://127.0.0.1:8001"
    max_body_bytes: int = 64 * 1024 * 1024
    max_page_size: int = 200
    max_documents_per_bundle: int = 1000

    # Trust framework (docs/trust.md "At the document source").
    dev_mode: bool = Field(default=False, description="allow development-only settings")
    dev_open_access: bool = Field(
        default=False,
        description="no authentication, policy or audit: development and storage benchmarks only",
    )
    issuer: str | None = Field(default=None, description="the trusted token issuer (iss)")
    jwks_url: str | None = Field(default=None, description="JWKS of the trusted token issuer")
    audience: str | None = Field(
        default=None,
        description="the aud this source accepts; default: its homeCommunityId URN",
    )
    hub_issuer: str | None = Field(default=None, description="iss of trusted hub assertions")
    hub_jwks_url: str | None = Field(default=None, description="JWKS of the trusted hub")
    redis_url: str | None = Field(
        default=None, description="redis://… for a DPoP/assertion replay cache shared by replicas"
    )
    allowed_roles: tuple[str, ...] = tuple(sorted(_DEFAULT_POLICY.allowed_roles))
    allowed_purposes: tuple[PurposeOfUse, ...] = tuple(sorted(_DEFAULT_POLICY.allowed_purposes))
    clock_skew: int = 300
    publisher_jwks_file: Path | None = Field(
        default=None,
        description="JWKS file of the systems allowed to publish (ITI-65), see trust/publish_proof",
    )
    # XCA responding gateway (docs/xca.md): the SAML issuers trusted for ITI-38/39, each with
    # its certificate files (PEM; several during a rollover), and the audiences accepted.
    xca_issuers: dict[str, tuple[Path, ...]] = Field(
        default_factory=dict,
        description="SAML issuer → certificate files; none: every ITI-38/39 is refused",
    )
    xca_audiences: tuple[str, ...] = Field(
        default=(), description="SAML audiences accepted; default: the token audience"
    )
    xca_max_results: int = Field(
        default=5000, ge=1, description="most entries one ITI-38 answers (XDSTooManyResults)"
    )
    xca_written_entries: int = Field(
        default=4096,
        ge=0,
        description="ExtrinsicObjects kept written per process for ITI-38 (≈ 5 kB each; 0: off)",
    )
    # Asynchronous ITI-38/39 (docs/xca.md "Asynchronous answers"): the reply endpoints
    # (wsa:ReplyTo, wsa:FaultTo) this region may send an answer to. An entry ending in "/" is a
    # prefix, any other an exact URL; empty: every non-anonymous ReplyTo is a Sender fault.
    xca_reply_to: tuple[str, ...] = Field(
        default=(), description="http(s) reply endpoints (exact, or prefixes ending in /)"
    )
    xca_reply_attempts: int = Field(
        default=5, ge=1, le=20, description="tries of one asynchronous answer before giving up"
    )
    xca_reply_backoff_s: float = Field(
        default=1.0, gt=0, le=600, description="wait before the second try; doubled per try"
    )
    xca_reply_timeout_s: float = Field(
        default=60.0, gt=0, description="connect/read/write timeout of one try"
    )
    xca_reply_max_pending: int = Field(
        default=64, ge=1, description="asynchronous answers under way at once; more: 503"
    )
    xca_reply_proxy: str | None = Field(
        default=None, description="http(s) proxy for the asynchronous answers (egress)"
    )

    # Per-caller limits (docs/source.md "Limits"); 0 switches a limit off.
    caller_concurrency: int = Field(default=16, description="requests in flight per caller")
    caller_rate_per_s: float = Field(default=20.0, description="sustained requests/s per caller")
    caller_burst: int = Field(default=200, description="requests at once per caller (bucket)")
    caller_via_hub_factor: float = Field(
        default=4.0, gt=0, description="multiplier for end users' calls relayed by the hub"
    )

    # Audit checkpoints (docs/operations.md "Audit checkpoints"): signed chain heads kept
    # outside the database, so that `onerecord audit verify` notices a rewritten or cut chain.
    audit_checkpoint_file: Path | None = Field(
        default=None, description="append-only JSON lines of signed audit chain heads"
    )
    audit_checkpoint_key_file: Path | None = Field(
        default=None, description="private JWK that signs the audit checkpoints"
    )
    audit_checkpoint_every: int = Field(default=100, ge=1, description="appends per checkpoint")
    audit_checkpoint_interval_s: float = Field(
        default=10.0, gt=0, description="longest wait before an append is checkpointed"
    )
    audit_group_commit: bool = Field(
        default=True,
        description="write concurrent audit appends in one transaction (off: one per append)",
    )
    registry_group_commit: bool = Field(
        default=True,
        description="register concurrent ITI-65 bundles in one transaction (off: one per bundle)",
    )
    registry_group_max_documents: int = Field(
        default=500, ge=1, description="most documents one group-committed transaction registers"
    )

    # The locator (docs/hub.md "Locator"): off unless a NATS URL is set. The region publishes an
    # event per registry change to the JetStream stream; the patient key names patients there.
    locator_nats_url: str | None = Field(
        default=None, description="nats://… to publish registry events to (off when unset)"
    )
    locator_stream: str = Field(default="ONERECORD_LOCATOR", description="JetStream stream")
    locator_subject_prefix: str = Field(
        default=DEFAULT_SUBJECT_PREFIX, description="subjects of the locator's events"
    )
    locator_patient_key: SecretStr | None = Field(
        default=None,
        description="HMAC key (≥ 16 bytes) that names patients on the bus; shared with the hub",
    )
    locator_heartbeat_s: float = Field(default=1.0, gt=0, description="seconds between beats")
    locator_backfill_pause_s: float = Field(
        default=10.0, ge=0, description="least seconds between two backfills of the registry"
    )

    @field_validator("home_community_id")
    @classmethod
    def _valid_hcid(cls, value: str) -> str:
        return HomeCommunityId.parse(value).urn

    @field_validator("repository_unique_id")
    @classmethod
    def _valid_repository(cls, value: str) -> str:
        return str(RepositoryUniqueId.parse(value))

    @field_validator("xca_reply_to")
    @classmethod
    def _reply_endpoints(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for entry in value:
            ReplyEndpoint.parse(entry)  # refuses what is not an absolute http(s) URL
        return value

    @field_validator("public_base_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @model_validator(mode="after")
    def _trust_configured(self) -> Self:
        if self.dev_open_access and not self.dev_mode:
            raise ValueError("dev_open_access is allowed only together with dev_mode")
        if not self.dev_open_access and not (self.issuer and self.jwks_url):
            raise ValueError(
                "configure a trusted token issuer (issuer + jwks_url) or, in development, "
                "dev_open_access with dev_mode"
            )
        if (self.audit_checkpoint_file is None) != (self.audit_checkpoint_key_file is None):
            raise ValueError("audit checkpoints need both a checkpoint file and a key file")
        if bool(self.hub_issuer) != bool(self.hub_jwks_url):
            raise ValueError("a trusted hub needs both hub_issuer and hub_jwks_url")
        self.caller_quota  # noqa: B018 - validates the per-caller limits
        key = self.locator_patient_key
        check_patient_key_setting(
            self.locator_nats_url,
            key.get_secret_value() if key is not None else None,
            dev_mode=self.dev_mode,
        )
        return self

    @property
    def caller_quota(self) -> CallerQuota:
        """What one direct caller may use at once and per second."""
        return CallerQuota(
            concurrency=self.caller_concurrency,
            rate_per_s=self.caller_rate_per_s,
            burst=self.caller_burst,
        )

    @property
    def fhir_base(self) -> str:
        return f"{self.public_base_url}/fhir"

    @property
    def token_audience(self) -> str:
        """The single aud accepted in access tokens and hub assertions (the homeCommunityId)."""
        return self.audience or self.home_community_id

    @property
    def region_policy(self) -> RegionPolicy:
        """The region's permit policy for health personnel (roles, purposes; §4.7)."""
        return RegionPolicy(
            allowed_roles=frozenset(self.allowed_roles),
            allowed_purposes=frozenset(self.allowed_purposes),
        )
