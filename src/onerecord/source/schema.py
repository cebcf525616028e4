"""The registry's tables: one row per DocumentEntry, its labels and codes, submission sets.

`document_entry.metadata` holds the whole entry as JSON so reading never needs the side tables;
`rendered` its DocumentReference, ready to splice into a search answer, and the columns hold
what the access rules read of an entry, so a search decodes no metadata (docs/source.md);
`document_label` and `document_code` exist only for WHERE clauses on multi-valued attributes.
`seq` is the registry sequence number: it only grows, and paging snapshots are taken on it.
`patient_control` (blocks, citizen rules) belongs to the trust framework and is not defined here.

References: IHE ITI TF-3 4.2.3.2 (DocumentEntry), 4.2.3.3 (SubmissionSet);
IHE MHD ITI-67 2:3.67.4.1.2 (query parameters that need an index).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects import postgresql, sqlite

from onerecord.sqldb import UtcDateTime

__all__ = [
    "CODE_KINDS",
    "NO_PERIOD",
    "UtcDateTime",
    "document_code",
    "document_entry",
    "document_label",
    "metadata",
    "submission_set",
]

CODE_KINDS = ("event", "related", "identifier")
"""Kinds of rows in `document_code`: eventCodeList, referenceIdList, identifiers."""

NO_PERIOD = datetime(1, 1, 1, tzinfo=UTC)
"""`period_sort` of an entry without a service period: it sorts as the earliest of all."""

# Constraint and index names are fixed so that migrations can name them on every database.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


# Byte-wise (codepoint) order for titles on PostgreSQL too, so both databases and the hub's
# merge in Python sort titles the same way.
_Title = String(512).with_variant(postgresql.VARCHAR(512, collation="C"), "postgresql")
_Json = JSON().with_variant(postgresql.JSONB(), "postgresql").with_variant(sqlite.JSON(), "sqlite")
_Seq = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements INTEGER PK only

document_entry = Table(
    "document_entry",
    metadata,
    Column("seq", _Seq, primary_key=True, autoincrement=True),
    Column("unique_id", String(128), nullable=False, unique=True),
    Column("entry_uuid", String(36), nullable=False, unique=True),
    Column("patient_id", String(11), nullable=False),
    Column("patient_system", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("class_system", String(128), nullable=False),
    Column("class_code", String(64), nullable=False),
    Column("type_system", String(128), nullable=False),
    Column("type_code", String(64), nullable=False),
    Column("format_system", String(128), nullable=False),
    Column("format_code", String(256), nullable=False),
    Column("mime_type", String(128), nullable=False),
    Column("hash_sha256", String(64), nullable=False),
    Column("hash_sha1", String(40), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("creation_time", UtcDateTime, nullable=False),
    Column("service_start_time", UtcDateTime, nullable=True),
    Column("service_stop_time", UtcDateTime, nullable=True),
    # coalesce(service_start_time, service_stop_time, NO_PERIOD): a NOT NULL sort key for
    # `_sort=period`, so keyset paging never has to compare with NULL.
    Column("period_sort", UtcDateTime, nullable=False),
    Column("title", _Title, nullable=False),
    Column("language_code", String(35), nullable=False),
    Column("facility_system", String(128), nullable=False),
    Column("facility_type", String(64), nullable=False),
    Column("setting_system", String(128), nullable=False),
    Column("practice_setting", String(64), nullable=False),
    Column("citizen_release_time", UtcDateTime, nullable=True),
    Column("replaces", String(128), nullable=True),
    Column("submission_time", UtcDateTime, nullable=True),
    Column("home_community_id", String(72), nullable=True),
    Column("repository_unique_id", String(64), nullable=True),
    Column("author_search", Text, nullable=False),
    Column("metadata", _Json, nullable=False),
    # The bare confidentiality codes as a JSON array: what the access rules read of the labels.
    Column("confidentiality_codes", Text, nullable=True),
    # The DocumentReference JSON rendered once (onerecord.mhd.docref.document_reference_template),
    # status and retrieve URL left as slots; NULL: render from `metadata` per answer.
    Column("rendered", LargeBinary, nullable=True),
    CheckConstraint("status IN ('current', 'superseded', 'entered-in-error')", name="status_known"),
    CheckConstraint("size >= 0", name="size_not_negative"),
)

# One patient's list, in each sort order, stays an index range scan at millions of entries.
Index(
    "ix_document_entry_patient_creation",
    document_entry.c.patient_id,
    document_entry.c.status,
    document_entry.c.creation_time.desc(),
    document_entry.c.seq.desc(),
)
Index(
    "ix_document_entry_patient_period",
    document_entry.c.patient_id,
    document_entry.c.status,
    document_entry.c.period_sort.desc(),
    document_entry.c.seq.desc(),
)
Index(
    "ix_document_entry_patient_title",
    document_entry.c.patient_id,
    document_entry.c.status,
    document_entry.c.title,
    document_entry.c.seq,
)
Index("ix_document_entry_hash_sha256", document_entry.c.hash_sha256)

document_label = Table(
    "document_label",
    metadata,
    Column(
        "entry_seq",
        _Seq,
        ForeignKey("document_entry.seq", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("system", String(128), primary_key=True),
    Column("code", String(64), primary_key=True),
)
Index(
    "ix_document_label_code",
    document_label.c.system,
    document_label.c.code,
    document_label.c.entry_seq,
)

document_code = Table(
    "document_code",
    metadata,
    Column(
        "entry_seq",
        _Seq,
        ForeignKey("document_entry.seq", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("kind", String(16), primary_key=True),
    Column("system", String(256), primary_key=True),
    Column("code", String(256), primary_key=True),
    CheckConstraint("kind IN ('event', 'related', 'identifier')", name="kind_known"),
)
Index(
    "ix_document_code_code",
    document_code.c.kind,
    document_code.c.system,
    document_code.c.code,
    document_code.c.entry_seq,
)

submission_set = Table(
    "submission_set",
    metadata,
    Column("unique_id", String(128), primary_key=True),
    Column("source_id", String(128), nullable=False),
    Column("submission_time", UtcDateTime, nullable=False),
    Column("entry_count", Integer, nullable=False),
)
