"""The archive's metadata store: the `MetadataStore` protocol and its SQL implementation.

`SqlMetadataStore` runs the same SQLAlchemy Core statements on SQLite and on PostgreSQL.
`register` records one instance and whatever of its patient, study and series is new in one
transaction, after the bytes are durable in the content store (content.py), so a failure at any
point leaves either the whole instance registered or none of it.

The same SOP Instance UID stored twice is one instance: the first registration wins and a
re-send is acknowledged and ignored (`register` returns False), whatever its bytes; replacing an
instance is a correction workflow (IHE IOCM) that this archive does not do yet. An instance
whose study belongs to another patient, or whose series belongs to another study, is refused
(InstanceConflict) rather than silently re-parented.

Invariant: an instance row exists only if its bytes are in the content store and its series,
study and patient rows exist; and its study's outbox row (media_manifest) counts it, written in
the same transaction, so a crash between store and publication still publishes the study.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

import anyio.to_thread
from sqlalchemy import ColumnElement, Select, and_, bindparam, func, literal, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from onerecord.audit import AuditRecord, SqlAuditSink
from onerecord.group_commit import GroupCommitQueue
from onerecord.media.content import ContentKey
from onerecord.media.errors import InstanceConflict
from onerecord.media.instance import ReceivedInstance
from onerecord.media.query import Condition, FindQuery, KeyKind, Level, QueryKey
from onerecord.media.schema import (
    media_instance,
    media_manifest,
    media_patient,
    media_series,
    media_study,
)
from onerecord.sqldb import sqlite_sync_twin

__all__ = ["MetadataStore", "SqlMetadataStore", "StoredInstance"]


@dataclass(frozen=True, slots=True)
class StoredInstance:
    """Where a registered instance's bytes are, and what it is (for C-MOVE, C-GET, WADO)."""

    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    study_instance_uid: str
    patient_id: str
    content_key: str
    size: int


class MetadataStore(Protocol):
    """Patients, studies, series and instances of one archive."""

    async def register(
        self,
        instance: ReceivedInstance,
        content: ContentKey,
        *,
        calling_ae_title: str,
        stored: datetime,
        audit: Callable[[bool], AuditRecord] | None = None,
    ) -> bool:
        """Register an instance whose bytes are stored; False if it was registered before.

        `audit`: the store's audit record for the outcome (True: registered, False: a
        duplicate), written in the registration's own transaction if `audits_registrations`
        is this sink; otherwise the caller appends it after."""

    def audits_registrations(self, sink: object) -> bool:
        """True if `register` writes its audit record to `sink` in its own transaction."""

    async def find(self, query: FindQuery, *, limit: int) -> list[dict[str, Any]]:
        """The matches of a C-FIND query (keyword → value), at most `limit`."""

    async def locate(self, query: FindQuery, *, limit: int) -> list[StoredInstance]:
        """The instances under the matches of a retrieve identifier, at most `limit`."""

    async def is_referenced(self, sha256: str) -> bool:
        """True if an instance's bytes are stored under this SHA-256."""

    async def metadata(self, sop_instance_uid: str) -> dict[str, Any] | None:
        """The instance's DICOM JSON without bulk data, or None."""


def _lookup(key: Any, value: Any) -> Select[Any]:
    return select(key, value).where(key.in_(bindparam("keys", expanding=True)))


@dataclass(frozen=True, slots=True)
class _Statements:
    patient: Any
    study: Any
    series: Any
    instance: Any
    manifest: Any
    registered: Select[Any]
    owners: Select[Any]
    parents: Select[Any]


@dataclass(frozen=True, slots=True)
class _Registration:
    """One instance to register, as queued for a batch."""

    instance: ReceivedInstance
    content: ContentKey
    calling_ae_title: str
    stored: datetime
    audit: Callable[[bool], AuditRecord] | None = None


class _LostRace(Exception):
    """Another process wrote a row of the batch's hierarchy between check and insert."""


_RACE_RETRIES = 3
_pat, _stu, _ser, _ins = media_patient.c, media_study.c, media_series.c, media_instance.c


def _like_pattern(pattern: str) -> str:
    """A DICOM wildcard (* ?) as a LIKE pattern with `\\` as the escape character."""
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


class SqlMetadataStore:
    """The metadata of one archive in SQLite or PostgreSQL."""

    def __init__(
        self, engine: AsyncEngine, *, audit: SqlAuditSink | None = None, max_batch: int = 200
    ) -> None:
        self._engine = engine
        self._audit = audit
        self._twin: Engine | Literal[False] | None = None  # SQLite's sync twin, made on first use
        self._dialect = engine.dialect.name
        # Concurrent registrations share one transaction (group_commit.py's invariant: each
        # caller is answered only after the transaction holding its item has committed).
        self._group: GroupCommitQueue[_Registration, bool] = GroupCommitQueue(
            self._commit, max_size=max_batch, name="media registration group commit"
        )

    async def wait_idle(self) -> None:
        """Wait for the registrations in flight (at shutdown)."""
        await self._group.wait_idle()

    async def close(self) -> None:
        """Finish the registrations in flight and close the SQLite twin's connections."""
        await self._group.wait_idle()
        if self._twin:
            self._twin.dispose()
        self._twin = None

    @functools.cached_property
    def _statements(self) -> _Statements:
        """The registration's statements, built once (SQLAlchemy caches their compiled form;
        building them anew per call costs more CPU than executing them on SQLite)."""
        upsert = self._insert(media_manifest)
        return _Statements(
            patient=self._insert(media_patient).on_conflict_do_nothing(
                index_elements=["patient_key"]
            ),
            study=self._insert(media_study).on_conflict_do_nothing(
                index_elements=["study_instance_uid"]
            ),
            series=self._insert(media_series).on_conflict_do_nothing(
                index_elements=["series_instance_uid"]
            ),
            instance=self._insert(media_instance)
            .on_conflict_do_nothing(index_elements=["sop_instance_uid"])
            .returning(_ins.sop_instance_uid),
            manifest=upsert.on_conflict_do_update(
                index_elements=["study_instance_uid"],
                set_={
                    "changes": media_manifest.c.changes + upsert.excluded.changes,
                    "changed": upsert.excluded.changed,
                },
            ),
            registered=_lookup(_ins.sop_instance_uid, _ins.sop_instance_uid),
            owners=_lookup(_stu.study_instance_uid, _stu.patient_key),
            parents=_lookup(_ser.series_instance_uid, _ser.study_instance_uid),
        )

    def _insert(self, table: Any) -> Any:
        return (postgresql.insert if self._dialect == "postgresql" else sqlite.insert)(table)

    async def register(
        self,
        instance: ReceivedInstance,
        content: ContentKey,
        *,
        calling_ae_title: str,
        stored: datetime,
        audit: Callable[[bool], AuditRecord] | None = None,
    ) -> bool:
        return await self._group.submit(
            _Registration(instance, content, calling_ae_title, stored, audit)
        )

    def audits_registrations(self, sink: object) -> bool:
        return self._audit is not None and sink is self._audit

    async def _commit(self, batch: Sequence[_Registration]) -> list[bool | Exception]:
        """Register a batch in one transaction; an outcome per item (its conflict its own).

        Conflicts are decided before anything is written, against the stored rows and the
        batch's earlier items, so a refused item writes nothing and the others still commit.
        Another process may write the same study or series between that check and the
        inserts (PostgreSQL): the check after the inserts then fails, the whole transaction
        rolls back, and the batch is decided again against what that process committed.
        """
        for attempt in range(_RACE_RETRIES):
            try:
                return await self._commit_once(batch)
            except _LostRace:
                if attempt == _RACE_RETRIES - 1:
                    raise InstanceConflict("the hierarchy changed while registering") from None
        raise AssertionError("unreachable")

    async def _commit_once(self, batch: Sequence[_Registration]) -> list[bool | Exception]:
        if self._dialect == "sqlite" and self._twin is None:
            self._twin = sqlite_sync_twin(self._engine) or False
        if self._twin:
            # SQLite: the whole transaction in one worker thread (sqldb.sqlite_sync_twin).
            outcomes, written = await anyio.to_thread.run_sync(self._commit_on_twin, batch)
        else:
            options = {"sqlite_begin": "IMMEDIATE"} if self._dialect == "sqlite" else {}
            async with self._engine.connect() as conn:
                conn = await conn.execution_options(**options)
                async with conn.begin():
                    outcomes, written = await conn.run_sync(self._commit_in, batch)
        if written is not None and self._audit is not None:
            await self._audit.appended(written)
        return outcomes

    def _commit_on_twin(
        self, batch: Sequence[_Registration]
    ) -> tuple[list[bool | Exception], tuple[int, str, int] | None]:
        assert self._twin
        with self._twin.connect() as conn:
            conn.execution_options(sqlite_begin="IMMEDIATE")
            with conn.begin():
                return self._commit_in(conn, batch)

    def _commit_in(
        self, conn: Connection, batch: Sequence[_Registration]
    ) -> tuple[list[bool | Exception], tuple[int, str, int] | None]:
        """Decide and write a batch inside the open transaction; the audit chain's append."""
        outcomes: list[bool | Exception] = []
        q = self._statements
        sops = [r.instance.sop_instance_uid for r in batch]
        registered = self._known(conn, q.registered, sops)
        owners = self._known(
            conn,
            q.owners,
            [r.instance.study_instance_uid for r in batch],
        )
        parents = self._known(
            conn,
            q.parents,
            [r.instance.series_instance_uid for r in batch],
        )
        new: list[_Registration] = []
        for r in batch:
            i = r.instance
            if i.sop_instance_uid in registered:
                outcomes.append(False)  # registered before, or earlier in this batch
                continue
            if owners.setdefault(i.study_instance_uid, i.patient_key) != i.patient_key:
                outcomes.append(InstanceConflict("the study belongs to another patient"))
                continue
            parent = parents.setdefault(i.series_instance_uid, i.study_instance_uid)
            if parent != i.study_instance_uid:
                outcomes.append(InstanceConflict("the series belongs to another study"))
                continue
            registered[i.sop_instance_uid] = i.sop_instance_uid
            new.append(r)
            outcomes.append(True)
        if new:
            self._insert_batch(conn, new)
        records = [
            r.audit(outcome)
            for r, outcome in zip(batch, outcomes, strict=True)
            if r.audit is not None and isinstance(outcome, bool)
        ]
        written = None
        if records and self._audit is not None:
            # Every registration and its audit record commit together, or neither.
            written = self._audit.append_in(conn, records)
        return outcomes, written

    def _known(self, conn: Connection, lookup: Select[Any], keys: Sequence[str]) -> dict[str, str]:
        """`key → value` of the stored rows among `keys` (a prebuilt `_lookup`)."""
        found: dict[str, str] = {}
        for chunk in _chunks(sorted(set(keys))):
            rows = conn.execute(lookup, {"keys": list(chunk)})
            found.update({str(k): str(v) for k, v in rows})
        return found

    def _recheck(
        self,
        conn: Connection,
        studies: dict[str, _Registration],
        series: dict[str, ReceivedInstance],
    ) -> None:
        """_LostRace if a study or series of the batch now has another parent than checked."""
        owners = self._known(conn, self._statements.owners, list(studies))
        parents = self._known(conn, self._statements.parents, list(series))
        if any(owners.get(uid) != r.instance.patient_key for uid, r in studies.items()) or any(
            parents.get(uid) != i.study_instance_uid for uid, i in series.items()
        ):
            raise _LostRace

    def _insert_batch(self, conn: Connection, new: Sequence[_Registration]) -> None:
        """Insert the checked items' rows (and their studies' outbox rows); one statement per
        table, each row once."""
        q = self._statements
        patients = {r.instance.patient_key: r.instance for r in reversed(new)}
        studies = {r.instance.study_instance_uid: r for r in reversed(new)}
        series = {r.instance.series_instance_uid: r.instance for r in reversed(new)}
        conn.execute(
            q.patient,
            [
                {
                    "patient_key": key,
                    "patient_id": i.patient_id,
                    "issuer_of_patient_id": i.issuer_of_patient_id,
                    "patient_name": i.patient_name,
                    "patient_birth_date": i.patient_birth_date,
                    "patient_sex": i.patient_sex,
                }
                for key, i in patients.items()
            ],
        )
        conn.execute(
            q.study,
            [
                {
                    "study_instance_uid": uid,
                    "patient_key": r.instance.patient_key,
                    "study_date": r.instance.study_date,
                    "study_time": r.instance.study_time,
                    "accession_number": r.instance.accession_number,
                    "study_id": r.instance.study_id,
                    "study_description": r.instance.study_description,
                    "referring_physician_name": r.instance.referring_physician_name,
                    "created": r.stored,
                }
                for uid, r in studies.items()
            ],
        )
        conn.execute(
            q.series,
            [
                {
                    "series_instance_uid": uid,
                    "study_instance_uid": i.study_instance_uid,
                    "modality": i.modality,
                    "series_number": i.series_number,
                    "series_description": i.series_description,
                    "body_part_examined": i.body_part_examined,
                }
                for uid, i in series.items()
            ],
        )
        # Written by another process since the check (PostgreSQL; SQLite's BEGIN IMMEDIATE
        # holds the database's write lock from the check on): decide again.
        if self._dialect == "postgresql":
            self._recheck(conn, studies, series)
        inserted = conn.execute(
            q.instance,
            [
                {
                    "sop_instance_uid": r.instance.sop_instance_uid,
                    "series_instance_uid": r.instance.series_instance_uid,
                    "study_instance_uid": r.instance.study_instance_uid,
                    "sop_class_uid": r.instance.sop_class_uid,
                    "instance_number": r.instance.instance_number,
                    "transfer_syntax_uid": r.instance.transfer_syntax_uid,
                    "size": r.content.size,
                    "content_key": r.content.sha256,
                    "metadata": r.instance.metadata,
                    "calling_ae_title": r.calling_ae_title,
                    "stored": r.stored,
                }
                for r in new
            ],
        )
        if len(inserted.all()) != len(new):
            raise _LostRace  # another process registered one of them since the check
        # The national overview's outbox, in the same transaction (docs/media.md
        # "In the national overview"): each study is due again after its quiet period.
        changes: dict[str, int] = {}
        for r in new:
            changes[r.instance.study_instance_uid] = (
                changes.get(r.instance.study_instance_uid, 0) + 1
            )
        conn.execute(
            q.manifest,
            [
                {
                    "study_instance_uid": uid,
                    "changes": n,
                    "changed": studies[uid].stored,
                    "published_changes": 0,
                    "attempts": 0,
                }
                for uid, n in changes.items()
            ],
        )

    # --- queries -----------------------------------------------------------------------

    def _column(self, key: QueryKey) -> Any:
        table = {
            Level.PATIENT: _pat,
            Level.STUDY: _stu,
            Level.SERIES: _ser,
            Level.IMAGE: _ins,
        }[key.level]
        return getattr(table, key.column)

    def _where(self, condition: Condition) -> ColumnElement[bool]:
        key = condition.key
        if key.kind is KeyKind.MODALITIES:
            return (
                select(literal(1))
                .where(
                    _ser.study_instance_uid == _stu.study_instance_uid,
                    _ser.modality.in_(condition.values),
                )
                .exists()
            )
        column = self._column(key)
        if condition.pattern is not None:
            pattern = _like_pattern(condition.pattern)
            if key.kind is KeyKind.PERSON_NAME:
                return func.lower(column).like(pattern.lower(), escape="\\")
            return column.like(pattern, escape="\\")  # type: ignore[no-any-return]
        if condition.low is not None or condition.high is not None:
            parts = [column != ""]
            if condition.low is not None:
                parts.append(column >= condition.low)
            if condition.high is not None:
                # A date range's end takes the whole day; a time's end its whole second.
                parts.append(column <= condition.high + "\uffff")
            return and_(*parts)
        if key.kind is KeyKind.INTEGER:
            return column.in_([int(v) for v in condition.values])  # type: ignore[no-any-return]
        if key.kind is KeyKind.PERSON_NAME:
            return func.lower(column).in_([v.lower() for v in condition.values])
        if len(condition.values) == 1:
            return column == condition.values[0]  # type: ignore[no-any-return]
        return column.in_(condition.values)  # type: ignore[no-any-return]

    def _select(self, query: FindQuery) -> Select[Any]:
        """The rows of the query's level, joined to the levels above, filtered."""
        level = query.level
        columns: list[Any] = [_pat.patient_key]
        source: Any = media_patient
        if level >= Level.STUDY:
            source = media_study.join(media_patient, _stu.patient_key == _pat.patient_key)
            columns.append(_stu.study_instance_uid)
        if level >= Level.SERIES:
            source = media_series.join(
                media_study, _ser.study_instance_uid == _stu.study_instance_uid
            ).join(media_patient, _stu.patient_key == _pat.patient_key)
            columns.append(_ser.series_instance_uid)
        if level is Level.IMAGE:
            source = (
                media_instance.join(
                    media_series, _ins.series_instance_uid == _ser.series_instance_uid
                )
                .join(media_study, _ser.study_instance_uid == _stu.study_instance_uid)
                .join(media_patient, _stu.patient_key == _pat.patient_key)
            )
            columns.append(_ins.sop_instance_uid)
        for key in query.return_keys:
            if key.kind not in {KeyKind.COUNT, KeyKind.MODALITIES}:
                columns.append(self._column(key).label(key.keyword))
        statement = select(*columns).select_from(source)
        conditions = [self._where(c) for c in query.conditions if c.key.level <= level]
        if conditions:
            statement = statement.where(*conditions)
        order = {
            Level.PATIENT: [_pat.patient_key],
            Level.STUDY: [_stu.study_date, _stu.study_time, _stu.study_instance_uid],
            Level.SERIES: [_ser.series_number, _ser.series_instance_uid],
            Level.IMAGE: [_ins.instance_number, _ins.sop_instance_uid],
        }[level]
        return statement.order_by(*order)

    async def find(self, query: FindQuery, *, limit: int) -> list[dict[str, Any]]:
        async with self._engine.connect() as conn:
            rows = (await conn.execute(self._select(query).limit(limit))).mappings().all()
            matches = [dict(row) for row in rows]
            if any(k.kind in {KeyKind.COUNT, KeyKind.MODALITIES} for k in query.return_keys):
                await self._aggregates(conn, query, matches)
        hidden = ("patient_key", "study_instance_uid", "series_instance_uid", "sop_instance_uid")
        for match in matches:
            for column in hidden:
                match.pop(column, None)
        return matches

    async def _aggregates(
        self, conn: AsyncConnection, query: FindQuery, matches: list[dict[str, Any]]
    ) -> None:
        """Fill ModalitiesInStudy and the Number of … Related … keys that were asked for."""
        wanted = {k.keyword for k in query.return_keys}
        if query.level is Level.PATIENT:
            keys = [m["patient_key"] for m in matches]
            counts = await self._counts(conn, _stu.patient_key, keys)
            for m in matches:
                studies, series, instances = counts.get(m["patient_key"], (0, 0, 0))
                m.update(
                    NumberOfPatientRelatedStudies=studies,
                    NumberOfPatientRelatedSeries=series,
                    NumberOfPatientRelatedInstances=instances,
                )
        elif query.level is Level.STUDY:
            uids = [m["study_instance_uid"] for m in matches]
            counts = await self._counts(conn, _stu.study_instance_uid, uids)
            modalities: dict[str, set[str]] = {}
            for chunk in _chunks(uids):
                rows = await conn.execute(
                    select(_ser.study_instance_uid, _ser.modality)
                    .where(_ser.study_instance_uid.in_(chunk))
                    .distinct()
                )
                for uid, modality in rows:
                    modalities.setdefault(uid, set()).add(modality)
            for m in matches:
                _, series, instances = counts.get(m["study_instance_uid"], (0, 0, 0))
                m.update(
                    NumberOfStudyRelatedSeries=series,
                    NumberOfStudyRelatedInstances=instances,
                    ModalitiesInStudy=sorted(modalities.get(m["study_instance_uid"], ())),
                )
        elif query.level is Level.SERIES:
            uids = [m["series_instance_uid"] for m in matches]
            per_series: dict[str, int] = {}
            for chunk in _chunks(uids):
                rows = await conn.execute(
                    select(_ins.series_instance_uid, func.count())
                    .where(_ins.series_instance_uid.in_(chunk))
                    .group_by(_ins.series_instance_uid)
                )
                per_series.update({uid: int(n) for uid, n in rows})
            for m in matches:
                m["NumberOfSeriesRelatedInstances"] = per_series.get(m["series_instance_uid"], 0)
        for m in matches:
            for keyword in list(m):
                if keyword[0].isupper() and keyword not in wanted:
                    del m[keyword]

    async def _counts(
        self, conn: AsyncConnection, group: Any, keys: Sequence[str]
    ) -> dict[str, tuple[int, int, int]]:
        """Studies, series and instances under each patient or study key."""
        result: dict[str, tuple[int, int, int]] = {}
        for chunk in _chunks(keys):
            rows = await conn.execute(
                select(
                    group,
                    func.count(func.distinct(_stu.study_instance_uid)),
                    func.count(func.distinct(_ser.series_instance_uid)),
                    func.count(_ins.sop_instance_uid),
                )
                .select_from(
                    media_study.join(
                        media_series, _ser.study_instance_uid == _stu.study_instance_uid
                    ).join(media_instance, _ins.series_instance_uid == _ser.series_instance_uid)
                )
                .where(group.in_(chunk))
                .group_by(group)
            )
            result.update({key: (int(a), int(b), int(c)) for key, a, b, c in rows})
        return result

    async def locate(self, query: FindQuery, *, limit: int) -> list[StoredInstance]:
        image = FindQuery(query.root, Level.IMAGE, query.conditions, ())
        inner = self._select(image).with_only_columns(_ins.sop_instance_uid).subquery()
        statement = (
            select(
                _ins.sop_instance_uid,
                _ins.sop_class_uid,
                _ins.transfer_syntax_uid,
                _ins.study_instance_uid,
                _pat.patient_id,
                _ins.content_key,
                _ins.size,
            )
            .select_from(
                media_instance.join(
                    media_study, _ins.study_instance_uid == _stu.study_instance_uid
                ).join(media_patient, _stu.patient_key == _pat.patient_key)
            )
            .where(_ins.sop_instance_uid.in_(select(inner.c.sop_instance_uid)))
            .order_by(_ins.study_instance_uid, _ins.series_instance_uid, _ins.instance_number)
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            rows = await conn.execute(statement)
            return [StoredInstance(*row) for row in rows]

    async def is_referenced(self, sha256: str) -> bool:
        async with self._engine.connect() as conn:
            found = await conn.scalar(select(literal(1)).where(_ins.content_key == sha256))
        return found is not None

    async def metadata(self, sop_instance_uid: str) -> dict[str, Any] | None:
        async with self._engine.connect() as conn:
            value = await conn.scalar(
                select(_ins.metadata).where(_ins.sop_instance_uid == sop_instance_uid)
            )
        return value if isinstance(value, dict) else None


def _chunks(values: Sequence[str], size: int = 500) -> list[Sequence[str]]:
    return [values[i : i + size] for i in range(0, len(values), size)]
