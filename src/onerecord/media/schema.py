"""The archive's tables: patient → study → series → instance, with the main query keys.

Each level holds the attributes C-FIND (and later QIDO-RS) match on, as columns with indexes;
an instance also holds its DICOM JSON metadata without bulk data (PS3.18 F.2), so metadata is
answered from the database without reading the file, and the key of its bytes in the content
store. Study-level aggregates (ModalitiesInStudy, the counts) are computed from the lower levels
when queried.

References: PS3.4 C.6.1.1 (Patient Root keys), C.6.2.1 (Study Root keys); PS3.18 F.2.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)

__all__ = [
    "media_instance",
    "media_manifest",
    "media_manifest_version",
    "media_metadata",
    "media_patient",
    "media_series",
    "media_study",
]

media_metadata = MetaData()

media_patient = Table(
    "media_patient",
    media_metadata,
    # PatientID and its issuer, joined: a patient is one identifier in one namespace.
    Column("patient_key", String(200), primary_key=True),
    Column("patient_id", String(64), nullable=False),
    Column("issuer_of_patient_id", String(64), nullable=False),
    Column("patient_name", String(324), nullable=False),
    Column("patient_birth_date", String(8), nullable=False),
    Column("patient_sex", String(16), nullable=False),
    Index("ix_media_patient_id", "patient_id"),
)

media_study = Table(
    "media_study",
    media_metadata,
    Column("study_instance_uid", String(64), primary_key=True),
    Column("patient_key", String(200), ForeignKey("media_patient.patient_key"), nullable=False),
    Column("study_date", String(8), nullable=False),
    Column("study_time", String(16), nullable=False),
    Column("accession_number", String(16), nullable=False),
    Column("study_id", String(16), nullable=False),
    Column("study_description", String(64), nullable=False),
    Column("referring_physician_name", String(324), nullable=False),
    Column("created", DateTime(timezone=True), nullable=False),
    Index("ix_media_study_patient", "patient_key"),
    Index("ix_media_study_date", "study_date"),
    Index("ix_media_study_accession", "accession_number"),
)

media_series = Table(
    "media_series",
    media_metadata,
    Column("series_instance_uid", String(64), primary_key=True),
    Column(
        "study_instance_uid",
        String(64),
        ForeignKey("media_study.study_instance_uid"),
        nullable=False,
    ),
    Column("modality", String(16), nullable=False),
    Column("series_number", Integer, nullable=True),
    Column("series_description", String(64), nullable=False),
    Column("body_part_examined", String(16), nullable=False),
    Index("ix_media_series_study", "study_instance_uid"),
    Index("ix_media_series_modality", "modality"),
)

media_instance = Table(
    "media_instance",
    media_metadata,
    Column("sop_instance_uid", String(64), primary_key=True),
    Column(
        "series_instance_uid",
        String(64),
        ForeignKey("media_series.series_instance_uid"),
        nullable=False,
    ),
    Column("study_instance_uid", String(64), nullable=False),
    Column("sop_class_uid", String(64), nullable=False),
    Column("instance_number", Integer, nullable=True),
    Column("transfer_syntax_uid", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("content_key", String(64), nullable=False),
    Column("metadata", JSON, nullable=False),
    Column("calling_ae_title", String(16), nullable=False),
    Column("stored", DateTime(timezone=True), nullable=False),
    Index("ix_media_instance_series", "series_instance_uid"),
    Index("ix_media_instance_study", "study_instance_uid"),
    Index("ix_media_instance_content", "content_key"),
)

# The national overview (manifest.py, publisher.py): one outbox row per study, written in the
# transaction that registers an instance, and every manifest version prepared for the study.
media_manifest = Table(
    "media_manifest",
    media_metadata,
    Column(
        "study_instance_uid",
        String(64),
        ForeignKey("media_study.study_instance_uid"),
        primary_key=True,
    ),
    # Instances registered in the study so far, and the count the last finished version covers:
    # the study is due while changes > published_changes (after `changed` + the quiet period).
    Column("changes", Integer, nullable=False),
    Column("changed", DateTime(timezone=True), nullable=False),
    Column("published_changes", Integer, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt", DateTime(timezone=True), nullable=True),
    Column("outcome", String(64), nullable=True),
    # The worker publishing the study now, until when (manifest_store.claim): another worker
    # (a second archive process, or a restart while the old one runs) leaves it alone till then.
    Column("claimed_by", String(64), nullable=True),
    Column("lease_until", DateTime(timezone=True), nullable=True),
    Index("ix_media_manifest_changed", "changed"),
)

media_manifest_version = Table(
    "media_manifest_version",
    media_metadata,
    Column("unique_id", String(64), primary_key=True),
    Column("study_instance_uid", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("entry_uuid", String(36), nullable=False),
    Column("replaces", String(64), nullable=True),
    Column("changes", Integer, nullable=False),
    # The ITI-65 bundle exactly as first sent: a retry sends the same bytes, which the source
    # answers as success if the first try was registered (same uniqueId, same content).
    Column("body", LargeBinary, nullable=False),
    Column("prepared", DateTime(timezone=True), nullable=False),
    Column("published", DateTime(timezone=True), nullable=True),
    Column("refused", String(200), nullable=True),
    UniqueConstraint("study_instance_uid", "version", name="uq_media_manifest_version"),
    Index("ix_media_manifest_version_study", "study_instance_uid"),
)
