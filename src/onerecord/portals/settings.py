"""Settings of the portals, from arguments, ONERECORD_PORTAL_* variables or the demo manifest."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["DEV_SESSION_SECRET", "PortalSettings"]

DEV_SESSION_SECRET = "onerecord-dev-portal-session-secret"
"""The development session secret; `PortalSettings` refuses it unless dev_mode is on."""


class PortalSettings(BaseSettings):
    """Everything a portal needs; passed to `create_portal_app`, never global."""

    model_config = SettingsConfigDict(env_prefix="ONERECORD_PORTAL_", frozen=True)

    public_url: str = "http://127.0.0.1:8200"
    hub_fhir: str = "http://127.0.0.1:8000/fhir"
    hub_audience: str = "onerecord:hub"
    # The patient lookup (IHE PDQm ITI-78) beside the token service; None: no lookup, no header.
    register_fhir: str | None = None
    register_audience: str = "onerecord:pdqm"
    sts_url: str = "http://127.0.0.1:8005"
    client_id: str = "onerecord-portal"
    client_key_file: Path = Path("var/portal/dev-client.jwk.json")
    session_secret: SecretStr = SecretStr(DEV_SESSION_SECRET)
    session_idle_s: int = 1800
    # One deadline for every hub call of both portals (ONERECORD_PORTAL_HUB_DEADLINE_S): a page
    # waits at most this long for the hub, whatever a region does (issue 11 defect 5). Keep it
    # above the hub's request deadline (5 s), so that the hub's answer naming a region that did
    # not answer arrives first.
    hub_deadline_s: float = Field(default=6.0, gt=0, le=120)
    # The HTTP client's timeout per exchange: a document (the hub's retrieve timeout is 10 s),
    # a token refresh, the patient lookup. Above the hub's retrieve timeout, so that the hub's
    # 504 naming the region arrives first.
    hub_timeout_s: float = Field(default=15.0, gt=0, le=300)
    # Documents are rendered in worker processes (render_pool.py): how many at once, for how
    # long, and up to what size; beyond either limit the page offers the document for download.
    render_workers: int = Field(default=2, ge=1, le=32)
    render_timeout_s: float = Field(default=5.0, gt=0, le=60)
    render_max_bytes: int = Field(default=5 * 1024 * 1024, ge=0, le=50 * 1024 * 1024)
    dev_mode: bool = False
    override_log_file: Path = Path("var/portal/emergency-overrides.jsonl")
    # «Ny» since the last visit (visits.py): None keeps it beside the override log.
    visits_file: Path | None = None
    # How long a fetched overview serves sorting, paging and back links (listing_cache.py).
    listing_max_age_s: float = Field(default=120.0, ge=0, le=3600)
    # The emergency override (issue 11, defect 7): how long it lasts (docs/portals.md), and the
    # e-mail that tells the citizen (off while `smtp_host` is None).
    emergency_minutes: int = Field(default=30, ge=5, le=60)
    smtp_host: str | None = None
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_from: str = "ikke-svar@onerecord.example"
    smtp_starttls: bool = False
    smtp_timeout_s: float = Field(default=10.0, gt=0, le=60)
    notice_outbox_dir: Path = Path("var/portal/notice-outbox")
    # The dialogue service with the GP office (issue 15; `onerecord dialogue serve`): its base
    # URL (None: no dialogue pages) and the audience of its tokens.
    dialogue_url: str | None = None
    dialogue_audience: str = "urn:onerecord:dialogue"
    # From the demo manifest: the synthetic staff to log in as, and the regions by name.
    staff: dict[str, dict[str, Any]] = Field(default_factory=dict)
    regions: tuple[dict[str, str], ...] = ()

    @property
    def hub_dicomweb(self) -> str:
        """The hub's DICOMweb root (`{hub}/dicomweb`, beside its FHIR base `{hub}/fhir`)."""
        return f"{self.hub_fhir.rstrip('/').removesuffix('/fhir')}/dicomweb"

    @field_validator("public_url", "hub_fhir", "sts_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("register_fhir", "dialogue_url")
    @classmethod
    def _register_no_trailing_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else None

    @model_validator(mode="after")
    def _refuse_dev_secret(self) -> PortalSettings:
        secret = self.session_secret.get_secret_value()
        if secret == DEV_SESSION_SECRET and not self.dev_mode:
            raise ValueError("the development session secret is refused outside dev mode")
        if len(secret) < 16:
            raise ValueError("the session secret must have at least 16 characters")
        return self

    @property
    def visits_path(self) -> Path:
        """Where the last-visit times are kept (`visits.py`)."""
        return self.visits_file or self.override_log_file.parent / "visits.sqlite3"

    @property
    def secure_cookies(self) -> bool:
        """Mark cookies Secure except for plain http on the loopback address in dev mode."""
        loopback = self.public_url.startswith(("http://127.0.0.1", "http://localhost"))
        return not (self.dev_mode and loopback)

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any], **overrides: Any) -> PortalSettings:
        """Return settings for the network a demo manifest describes."""
        client = manifest.get("portal_client") or manifest["client"]
        values: dict[str, Any] = {
            "hub_fhir": manifest["hub"]["fhir_base"],
            "hub_audience": manifest["hub"].get("audience", "onerecord:hub"),
            "sts_url": manifest["sts"]["issuer"],
            "client_id": client["client_id"],
            "client_key_file": Path(client["key_file"]),
            "staff": dict(manifest.get("staff", {})),
            "regions": tuple(
                {"name": r["name"], "home_community_id": r["home_community_id"]}
                for r in manifest.get("regions", [])
            ),
        }
        register = manifest.get("register")
        if isinstance(register, dict) and register.get("fhir_base"):
            values["register_fhir"] = register["fhir_base"]
            values["register_audience"] = register.get("audience", "onerecord:pdqm")
        dialogue = manifest.get("dialogue")
        if isinstance(dialogue, dict) and dialogue.get("url"):
            # The demo's GP offices (demo_dialogue.py): the citizen's and the clinic's pages.
            values["dialogue_url"] = dialogue["url"]
            values["dialogue_audience"] = dialogue.get("audience", "urn:onerecord:dialogue")
        if manifest.get("workdir"):
            values["override_log_file"] = (
                Path(manifest["workdir"]) / "portal" / "emergency-overrides.jsonl"
            )
            values["notice_outbox_dir"] = Path(manifest["workdir"]) / "portal" / "notice-outbox"
        mail = manifest.get("mail")
        if isinstance(mail, dict) and mail.get("smtp_host"):
            # The demo's mail sink (onerecord.demo_mail): the citizen's emergency notices.
            values["smtp_host"] = str(mail["smtp_host"])
            values["smtp_port"] = int(mail.get("smtp_port", 25))
        return cls(**(values | overrides))

    @classmethod
    def from_manifest_file(cls, path: Path, **overrides: Any) -> PortalSettings:
        """Read a demo manifest file and return settings for its network."""
        return cls.from_manifest(json.loads(path.read_text(encoding="utf-8")), **overrides)
