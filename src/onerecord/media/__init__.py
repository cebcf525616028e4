"""The regional media archive: DICOM over DIMSE and DICOMweb, photos and video (WIC), its studies in
the overview."""

from __future__ import annotations

from onerecord.media.content import (
    ContentKey,
    FolderInstanceStore,
    InstanceContentStore,
    MemoryInstanceStore,
    ObstoreInstanceStore,
    StagedContent,
)
from onerecord.media.errors import (
    ContentWriteFailed,
    InstanceConflict,
    InvalidInstance,
    InvalidQuery,
    MediaError,
    TooManyMatches,
)
from onerecord.media.instance import ReceivedInstance, read_dataset, read_instance
from onerecord.media.manifest import (
    ArchiveIdentity,
    ManifestStudy,
    ManifestVersion,
    NotPublishable,
    imaging_study,
    manifest_bundle,
)
from onerecord.media.manifest_store import ManifestOutbox, SqlManifestOutbox
from onerecord.media.mp4 import MalformedMp4, Mp4Video, UnsupportedVideo, read_mp4
from onerecord.media.photo import Photo, PhotoError, PhotoLimits, read_photo
from onerecord.media.publisher import ManifestPublisher
from onerecord.media.query import FindQuery, Level, QueryRoot, parse_find
from onerecord.media.service import MediaService, StoreOutcome, StoreResult
from onerecord.media.settings import MediaSettings, RemoteAE
from onerecord.media.store import MetadataStore, SqlMetadataStore, StoredInstance

__all__ = [
    "ArchiveIdentity",
    "ContentKey",
    "ContentWriteFailed",
    "FindQuery",
    "FolderInstanceStore",
    "InstanceConflict",
    "InstanceContentStore",
    "InvalidInstance",
    "InvalidQuery",
    "Level",
    "MalformedMp4",
    "ManifestOutbox",
    "ManifestPublisher",
    "ManifestStudy",
    "ManifestVersion",
    "MediaError",
    "MediaService",
    "MediaSettings",
    "MemoryInstanceStore",
    "MetadataStore",
    "Mp4Video",
    "NotPublishable",
    "ObstoreInstanceStore",
    "Photo",
    "PhotoError",
    "PhotoLimits",
    "QueryRoot",
    "ReceivedInstance",
    "RemoteAE",
    "SqlManifestOutbox",
    "SqlMetadataStore",
    "StagedContent",
    "StoreOutcome",
    "StoreResult",
    "StoredInstance",
    "TooManyMatches",
    "UnsupportedVideo",
    "imaging_study",
    "manifest_bundle",
    "parse_find",
    "read_dataset",
    "read_instance",
    "read_mp4",
    "read_photo",
]
