"""Settings of one regional media archive, read from arguments or ONERECORD_MEDIA_* variables."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from onerecord.domain import OrganisationNumber
from onerecord.objectstore import check_url

__all__ = ["MediaSettings", "RemoteAE", "check_ae_title"]

# PS3.5 6.2, VR AE: at most 16 characters of the default repertoire, no backslash, no control
# characters, not only spaces; leading and trailing spaces are not significant.
_AE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")


def check_ae_title(value: str) -> str:
    """Return the AE title without its padding, or raise ValueError (PS3.5 6.2)."""
    if not _AE.match(value) or not value.strip():
        raise ValueError("an AE title is 1 to 16 printable characters, no backslash")
    return value.strip()


class RemoteAE(BaseModel):
    """A known modality (or other peer): where to reach it for C-MOVE."""

    model_config = ConfigDict(frozen=True)

    host: str = Field(min_length=1, max_length=253)
    port: int = Field(ge=1, le=65535)


class MediaSettings(BaseSettings):
    """Everything a media archive needs; passed to `create_app`, never global."""

    model_config = SettingsConfigDict(env_prefix="ONERECORD_MEDIA_", frozen=True)

    region: str = "Helse Nord"
    home_community_id: str = "urn:oid:2.16.578.1.12.4.5.100.4"
    db_url: str = "sqlite:///var/media/archive.db"
    db_schema: str | None = None
    content_dir: Path = Path("var/media/content")
    content_url: str | None = Field(
        default=None,
        max_length=2048,
        description="s3://bucket/prefix for instance bytes (credentials from the environment); "
        "unset: the folder content_dir. STOW-RS still spools clips to content_dir/.staging",
    )
    ae_title: str = "ONERECORD"
    dimse_host: str = "127.0.0.1"
    dimse_port: int = Field(default=11112, ge=0, le=65535)
    modalities: dict[str, RemoteAE] = Field(
        default_factory=dict,
        description="calling AE title → host and port; an AE title not here is refused",
    )
    max_pdu: int = Field(default=1 << 20, ge=4096, le=1 << 26)
    max_associations: int = Field(default=16, ge=1, le=512)
    max_find_results: int = Field(default=10_000, ge=1)
    max_retrieve_instances: int = Field(default=100_000, ge=1)
    audit_group_commit: bool = True
    orphan_grace_s: float = Field(
        default=3600.0, gt=0, description="unreferenced bytes older than this are swept"
    )
    orphan_sweep_interval_s: float = Field(
        default=3600.0,
        gt=0,
        le=7 * 86400,
        description="seconds between orphan sweeps while running (one runs at start-up too)",
    )
    # DICOMweb (docs/media.md "DICOMweb"): served only when a token issuer is configured.
    public_base_url: str = Field(
        default="http://127.0.0.1:8042", description="the URL clients address (DPoP htu, URLs)"
    )
    issuer: str | None = Field(default=None, description="the STS whose access tokens count")
    jwks_url: str | None = None
    token_audience: str | None = Field(
        default=None, description="the audience tokens must name; the homeCommunityId if unset"
    )
    hub_issuer: str | None = None
    hub_jwks_url: str | None = None
    clock_skew: float = Field(default=300.0, ge=0, le=3600)
    qido_max_limit: int = Field(default=1000, ge=1, le=100_000)
    max_stow_part_bytes: int = Field(
        default=256 * 1024 * 1024, ge=1024, description="a part held in memory (not a video)"
    )
    # Photos and video (IHE WIC, docs/media.md "Photos and video (WIC)").
    max_video_bytes: int = Field(
        default=4_000_000_000,
        ge=1024,
        le=0xFFFFFFFC,
        description="an MP4 part, spooled to the content folder (one DICOM fragment: < 4 GiB)",
    )
    max_stow_body_bytes: int = Field(
        default=4_200_000_000, ge=1024, description="a whole STOW-RS request body"
    )
    max_photo_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    max_photo_pixels: int = Field(default=64_000_000, ge=1)
    # The patient's own controls (docs/media.md "Access rules"): read from the region's document
    # source, as a system of the region that signs a publish proof with its own key.
    source_url: str | None = Field(
        default=None, description="the region's document source (base URL, no /fhir)"
    )
    source_audience: str | None = Field(
        default=None, description="the audience of the source; the homeCommunityId if unset"
    )
    publisher_issuer: str | None = Field(
        default=None, description="this archive's iss in its publish proofs", max_length=256
    )
    publisher_key_file: Path | None = Field(
        default=None, description="this archive's private signing key (a JWK file)"
    )
    controls_ttl_s: float = Field(default=5.0, ge=0, le=300)
    controls_cache_size: int = Field(default=10_000, ge=1, le=1_000_000)
    controls_timeout_s: float = Field(default=2.0, gt=0, le=60)
    without_patient_controls: bool = Field(
        default=False,
        description="serve DICOMweb without asking the source (development and tests only)",
    )
    # The national overview (docs/media.md "In the national overview"): with the three settings
    # above, each study's manifest is published to the source (ITI-65) under this organisation.
    organisation_name: str = Field(
        default="Universitetssykehuset Nord-Norge HF", min_length=1, max_length=256
    )
    organisation_number: str = Field(
        default="998123453", description="the archive's organisation (orgnr): manifest author"
    )
    manifest_quiet_s: float = Field(
        default=5.0, ge=0, description="a study is published this long after its last instance"
    )
    manifest_retry_s: float = Field(default=1.0, gt=0, description="first retry's wait")
    manifest_retry_max_s: float = Field(default=300.0, gt=0, description="longest retry wait")
    manifest_timeout_s: float = Field(default=30.0, gt=0, description="one ITI-65 request")
    manifest_lease_s: float = Field(
        default=120.0,
        gt=0,
        le=3600,
        description="a worker holds a study this long while it publishes (longer than a request)",
    )

    @property
    def audience(self) -> str:
        """The audience this archive's access tokens and hub assertions must name."""
        return self.token_audience or self.home_community_id

    @property
    def dicomweb_enabled(self) -> bool:
        """DICOMweb is served only behind the trust framework: issuer and JWKS configured."""
        return self.issuer is not None and self.jwks_url is not None

    @property
    def publishing_enabled(self) -> bool:
        """Manifests are published only with a source, an issuer and a key configured."""
        return (
            self.source_url is not None
            and self.publisher_issuer is not None
            and self.publisher_key_file is not None
        )

    @property
    def controls_audience(self) -> str:
        """The audience this archive's proofs to the document source name."""
        return self.source_audience or self.home_community_id

    @model_validator(mode="after")
    def _patient_controls(self) -> MediaSettings:
        # Fail closed by configuration too: DICOMweb never runs silently without the controls.
        if self.manifest_lease_s <= self.manifest_timeout_s:
            raise ValueError("manifest_lease_s must be longer than manifest_timeout_s")
        wired = (self.source_url, self.publisher_issuer, self.publisher_key_file)
        if any(v is not None for v in wired) and any(v is None for v in wired):
            raise ValueError("source_url, publisher_issuer and publisher_key_file go together")
        if self.dicomweb_enabled and self.source_url is None and not self.without_patient_controls:
            raise ValueError(
                "DICOMweb needs the region's source for the patient's controls: set source_url, "
                "publisher_issuer and publisher_key_file (or without_patient_controls in "
                "development)"
            )
        return self

    @field_validator("content_url")
    @classmethod
    def _content_url(cls, value: str | None) -> str | None:
        return None if value is None else check_url(value)

    @field_validator("organisation_number")
    @classmethod
    def _orgnr(cls, value: str) -> str:
        return OrganisationNumber(value).value

    @field_validator("ae_title")
    @classmethod
    def _ae_title(cls, value: str) -> str:
        return check_ae_title(value)

    @field_validator("modalities")
    @classmethod
    def _modalities(cls, value: dict[str, RemoteAE]) -> dict[str, RemoteAE]:
        return {check_ae_title(title): peer for title, peer in value.items()}
