"""Settings of one regional document source, read from arguments or ONERECORD_SOURCE_* variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from onerecord.domain import HomeCommunityId, RepositoryUniqueId

__all__ = ["SourceSettings"]


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
    public_base_url: str = "http://127.0.0.1:8001"
    max_body_bytes: int = 64 * 1024 * 1024
    max_page_size: int = 200
    max_documents_per_bundle: int = 1000

    @field_validator("home_community_id")
    @classmethod
    def _valid_hcid(cls, value: str) -> str:
        return HomeCommunityId.parse(value).urn

    @field_validator("repository_unique_id")
    @classmethod
    def _valid_repository(cls, value: str) -> str:
        return str(RepositoryUniqueId.parse(value))

    @field_validator("public_base_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @property
    def fhir_base(self) -> str:
        return f"{self.public_base_url}/fhir"
