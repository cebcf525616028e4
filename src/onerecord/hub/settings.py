"""Settings of the national hub, read from arguments or ONERECORD_HUB_* variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from onerecord.events import DEFAULT_SUBJECT_PREFIX, check_patient_key_setting
from onerecord.hub.fanout import DEFAULT_FORWARDED_HEADERS, DEFAULT_MAX_PAGES, Deadlines
from onerecord.trust.caller_limits import CallerQuota

__all__ = ["HubSettings"]


class HubSettings(BaseSettings):
    """Everything the hub needs; passed to `create_hub_app`, never global."""

    model_config = SettingsConfigDict(env_prefix="ONERECORD_HUB_", frozen=True)

    directory_file: Path = Path("etc/regions.json")
    public_base_url: str = "http://127.0.0.1:8000"
    per_region_timeout_s: float = 4.0
    aggregation_deadline_s: float = 4.5
    request_deadline_s: float = 5.0
    retrieve_timeout_s: float = 10.0
    retry_delay_s: float = 0.005  # the whole search waits for a retry: keep it short
    max_entries_per_region: int = 5000
    region_page_size: int = 200
    # A region's `next` links are followed at most this many times per search (issue 10 C).
    max_pages_per_region: int = Field(default=DEFAULT_MAX_PAGES, ge=1, le=1000)
    # One region answer (one page) larger than this is refused and reported `too-large`.
    max_region_answer_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    default_page_size: int = 20
    max_page_size: int = 200
    snapshot_ttl_s: float = 600.0
    snapshot_max_bytes: int = 256 * 1024 * 1024
    breaker_failure_threshold: int = 5
    breaker_cooldown_s: float = 30.0
    forwarded_headers: frozenset[str] = DEFAULT_FORWARDED_HEADERS
    # Trust framework (docs/hub.md "Security"): the issuer whose DPoP-bound tokens the hub
    # accepts, where its keys are, and the hub's own audience (its id in tokens).
    issuer: str | None = None
    jwks_url: str | None = None
    audience: str = "onerecord:hub"
    dev_mode: bool = False
    dev_open_access: bool = False
    key_file: Path | None = None
    key_dir: Path = Path("var/hub/keys")
    redis_url: str | None = None
    assertion_lifetime_s: int = 60
    # The hub's SAML issuer for ITI-38/39 to regions whose directory entry says `xca`
    # (docs/xca.md "Initiating gateway"): an RSA key and its certificate (PEM). Unset in dev
    # mode: a development issuer is made in key_dir; unset outside dev: XCA regions fail.
    saml_key_file: Path | None = None
    saml_certificate_file: Path | None = None
    saml_issuer: str | None = None
    """The assertion's Issuer (default: the hub's public base URL), as regions list it."""
    saml_assertion_lifetime_s: int = Field(default=300, ge=10, le=3600)
    # ITI-18/43 at the hub for XDS.b clinical systems (docs/xca.md "The hub as the national
    # registry"): the SAML issuers the hub trusts, each with its certificate files (PEM;
    # none: every ITI-18/43 request is refused), and the audiences it accepts. The assertion
    # is relayed to the regions, which must trust the same issuer and audience.
    xds_issuers: dict[str, tuple[Path, ...]] = Field(default_factory=dict)
    xds_audiences: tuple[str, ...] = ("onerecord:hub",)
    xds_home_community_id: str = "urn:oid:2.16.578.1.12.4.5.100"
    """The hub's own homeCommunityId: the location of the RegistryErrors that concern no region
    (a refused assertion or patient, a query the hub cannot serve)."""
    audit_db_url: str | None = None
    audit_db_schema: str | None = None
    hub_id: str = "onerecord-hub"
    # Pending control changes (docs/hub.md "Pending control changes"): kept in this database
    # (default: the audit database; neither set: in memory, lost on restart), re-sent after
    # base, 2·base, 4·base … seconds up to the cap, looked for every poll seconds.
    outbox_db_url: str | None = None
    outbox_retry_base_s: float = Field(default=2.0, gt=0, le=3600)
    outbox_retry_cap_s: float = Field(default=300.0, gt=0, le=86400)
    outbox_poll_s: float = Field(default=1.0, gt=0, le=60)
    # Signed heads of the audit chain, kept outside the audit database (audit/checkpoint.py).
    audit_checkpoint_file: Path | None = None
    audit_checkpoint_key_file: Path | None = None
    audit_checkpoint_every: int = 100
    audit_checkpoint_interval_s: float = 10.0
    # Concurrent audit appends written in one transaction (audit/group_commit.py); off: one each.
    audit_group_commit: bool = True
    # Per-caller limits (docs/hub.md "Limits"): requests in flight, sustained requests per
    # second and burst of one caller (sub + client_id of its verified token); 0 = no limit.
    caller_concurrency: int = 16
    caller_rate_per_s: float = 20.0
    caller_burst: int = 200

    # The locator (docs/hub.md "Locator"): off unless a NATS URL is set; then a search asks
    # only the regions the index trusts to hold the patient (and every region it cannot trust).
    locator_nats_url: str | None = None
    locator_stream: str = "ONERECORD_LOCATOR"
    locator_subject_prefix: str = DEFAULT_SUBJECT_PREFIX
    locator_patient_key: SecretStr | None = None
    # A region not heard from (event or heartbeat) for this long is asked again.
    locator_max_silence_s: float = Field(default=3.0, gt=0)
    locator_backfill_request_s: float = Field(default=5.0, gt=0)
    """Least seconds between two requests to one region to backfill."""
    locator_stream_check_s: float = Field(default=2.0, gt=0)
    """Seconds between two looks at the stream for a purge or a re-creation."""

    @field_validator("public_base_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @model_validator(mode="after")
    def _budget(self) -> HubSettings:
        self.deadlines  # noqa: B018 - validates the ordering of the three deadlines
        if not 0 < self.default_page_size <= self.max_page_size:
            raise ValueError("default_page_size must be between 1 and max_page_size")
        if self.dev_open_access and not self.dev_mode:
            raise ValueError("dev_open_access needs dev_mode (never in production)")
        if (self.saml_key_file is None) != (self.saml_certificate_file is None):
            raise ValueError("the hub's SAML issuer needs both saml_key_file and its certificate")
        if (self.audit_checkpoint_file is None) != (self.audit_checkpoint_key_file is None):
            raise ValueError("audit checkpoints need both a checkpoint file and a key file")
        self.caller_quota  # noqa: B018 - validates the per-caller limits
        key = self.locator_patient_key
        check_patient_key_setting(
            self.locator_nats_url,
            key.get_secret_value() if key is not None else None,
            dev_mode=self.dev_mode,
        )
        return self

    @property
    def deadlines(self) -> Deadlines:
        return Deadlines(
            per_region_s=self.per_region_timeout_s,
            aggregation_s=self.aggregation_deadline_s,
            request_s=self.request_deadline_s,
        )

    @property
    def caller_quota(self) -> CallerQuota:
        """What one caller may use at once and per second."""
        return CallerQuota(
            concurrency=self.caller_concurrency,
            rate_per_s=self.caller_rate_per_s,
            burst=self.caller_burst,
        )

    @property
    def assertion_issuer(self) -> str:
        """The `iss` of the hub's assertions: its public base URL (where /jwks is served)."""
        return self.public_base_url

    @property
    def fhir_base(self) -> str:
        return f"{self.public_base_url}/fhir"
