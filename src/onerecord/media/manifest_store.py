"""The national overview's outbox in the archive's database (SQLite or PostgreSQL).

`media_manifest` holds one row per study, written by `SqlMetadataStore.register` in the
transaction that registers an instance (`changes` + 1, `changed` = now). A study is due when
`changes > published_changes`, its quiet period has passed and its back-off (`next_attempt`)
too. `media_manifest_version` holds every manifest prepared for a study, with the exact bundle
bytes: a version is prepared once (from rows read in one transaction; the bundle built in a
thread; the version inserted in a second transaction), then sent until the source answers; it
is never rebuilt, so a retry after a crash sends the same uniqueId and content, which the
source registers at most once.

Several workers may share one database (two archive processes, or a restart while the old
process still runs): a worker publishes a study only while it holds the study's lease
(`claimed_by`, `lease_until`), taken by one conditional UPDATE that re-checks the lease and that
the study is still due, so on SQLite (one writer at a time) and on PostgreSQL (the second
UPDATE waits for the first's row lock and re-reads the row) exactly one worker wins. The lease
is let go when the worker is done with the study (published, refused, put off or failed); a
worker that dies holding it delays the study until `lease_until`. The lease outlasts one send
(settings: manifest_lease_s > manifest_timeout_s); should a stalled worker outlive it anyway,
the next holder sends the same stored version, which the source registers at most once.

Invariant: at most one version of a study is unfinished (neither published nor refused), and a
new one is prepared only when none is; while a lease is live, only its holder sends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from onerecord.media.manifest import (
    EarlierVersion,
    ManifestInstance,
    ManifestSeries,
    ManifestStudy,
    ManifestVersion,
    NotPublishable,
)
from onerecord.media.schema import (
    media_instance,
    media_manifest,
    media_manifest_version,
    media_patient,
    media_series,
    media_study,
)

__all__ = ["Build", "ManifestOutbox", "PreparedVersion", "SqlManifestOutbox"]

_m, _v = media_manifest.c, media_manifest_version.c
_pat, _stu, _ser, _ins = media_patient.c, media_study.c, media_series.c, media_instance.c


@dataclass(frozen=True, slots=True)
class PreparedVersion:
    """A version to send: which study, its uniqueId, the changes it covers and the bundle."""

    study_instance_uid: str
    unique_id: str
    version: int
    changes: int
    body: bytes


Build = Callable[[ManifestStudy, list[EarlierVersion]], tuple[ManifestVersion, bytes]]
"""Build the next version of a study from its rows and its earlier versions (or NotPublishable)."""


class ManifestOutbox(Protocol):
    """What the publisher needs of the outbox."""

    async def due(self, now: datetime, *, quiet: timedelta, limit: int) -> list[str]: ...

    async def claim(
        self,
        study_instance_uid: str,
        *,
        worker: str,
        now: datetime,
        quiet: timedelta,
        lease: timedelta,
    ) -> bool: ...

    async def release(self, study_instance_uid: str, *, worker: str) -> None: ...

    async def next_version(
        self, study_instance_uid: str, *, now: datetime, build: Build
    ) -> PreparedVersion | None: ...

    async def published(self, version: PreparedVersion, *, now: datetime) -> None: ...

    async def refused(self, version: PreparedVersion, *, reason: str) -> None: ...

    async def retry_later(
        self, study_instance_uid: str, *, attempts: int, at: datetime, outcome: str
    ) -> None: ...

    async def attempts(self, study_instance_uid: str) -> int: ...

    async def pending(self) -> int: ...


def _due(now: datetime, quiet: timedelta) -> tuple[Any, ...]:
    """The conditions of a study that is due and free: unpublished instances, quiet period,
    back-off and any other worker's lease over."""
    return (
        _m.changes > _m.published_changes,
        _m.changed <= now - quiet,
        or_(_m.next_attempt.is_(None), _m.next_attempt <= now),
        or_(_m.lease_until.is_(None), _m.lease_until <= now),
    )


class SqlManifestOutbox:
    """The outbox over the archive's engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._dialect = engine.dialect.name

    async def due(self, now: datetime, *, quiet: timedelta, limit: int) -> list[str]:
        """Studies with unpublished instances whose quiet period, back-off and lease have passed.

        A hint only: another worker may take one first; `claim` decides.
        """
        statement = (
            select(_m.study_instance_uid)
            .where(*_due(now, quiet))
            .order_by(_m.changed, _m.study_instance_uid)
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            return list((await conn.scalars(statement)).all())

    async def claim(
        self,
        study_instance_uid: str,
        *,
        worker: str,
        now: datetime,
        quiet: timedelta,
        lease: timedelta,
    ) -> bool:
        """Take the study for `worker` until now + `lease` if it is still due and nobody holds
        a live lease on it; return whether this worker has it.

        One UPDATE whose WHERE re-checks everything `due` did: a second worker's UPDATE of the
        same row runs after the first committed (SQLite: one writer; PostgreSQL: it waits for
        the row lock and re-evaluates the WHERE on the new row) and so changes nothing.
        """
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(media_manifest)
                .where(_m.study_instance_uid == study_instance_uid, *_due(now, quiet))
                .values(claimed_by=worker[:64], lease_until=now + lease)
            )
        return bool(result.rowcount == 1)

    async def release(self, study_instance_uid: str, *, worker: str) -> None:
        """Let go of the study's lease, if `worker` still holds it."""
        async with self._engine.begin() as conn:
            await conn.execute(
                update(media_manifest)
                .where(_m.study_instance_uid == study_instance_uid, _m.claimed_by == worker[:64])
                .values(claimed_by=None, lease_until=None)
            )

    async def next_version(
        self, study_instance_uid: str, *, now: datetime, build: Build
    ) -> PreparedVersion | None:
        """The unfinished version of the study, or a new one built now; None if nothing to do.

        The study is read in one transaction (the count first, then the rows, so the rows hold
        at least what is counted), built outside it in a thread (a large study takes 0.1 s),
        and the version inserted in a second one; the unique (study, version) pair refuses a
        second preparation of the same version. A study that cannot be published
        (NotPublishable) is marked done up to the changes read, with the reason as its outcome,
        and None is returned.
        """
        async with self._engine.connect() as conn, conn.begin():
            unfinished = (
                await conn.execute(
                    select(_v.unique_id, _v.version, _v.changes, _v.body).where(
                        _v.study_instance_uid == study_instance_uid,
                        _v.published.is_(None),
                        _v.refused.is_(None),
                    )
                )
            ).first()
            if unfinished is not None:
                return PreparedVersion(study_instance_uid, *unfinished)
            row = (
                await conn.execute(
                    select(_m.changes, _m.published_changes).where(
                        _m.study_instance_uid == study_instance_uid
                    )
                )
            ).first()
            if row is None or row.changes <= row.published_changes:
                return None
            study = await self._study(conn, study_instance_uid)
            earlier = [
                EarlierVersion(uid, published is not None)
                for uid, published in await conn.execute(
                    select(_v.unique_id, _v.published)
                    .where(_v.study_instance_uid == study_instance_uid)
                    .order_by(_v.version)
                )
            ]
        changes = int(row.changes)
        try:
            if study is None:
                raise NotPublishable("the study has no instances", reason="no-instances")
            version, body = await asyncio.to_thread(build, study, earlier)
        except NotPublishable as exc:
            async with self._engine.begin() as conn:
                await conn.execute(
                    update(media_manifest)
                    .where(
                        _m.study_instance_uid == study_instance_uid,
                        _m.published_changes < changes,
                    )
                    .values(
                        published_changes=changes, attempts=0, next_attempt=None, outcome=exc.reason
                    )
                )
            return None
        number = len(earlier) + 1
        try:
            async with self._engine.begin() as conn:
                await conn.execute(
                    media_manifest_version.insert().values(
                        unique_id=version.unique_id,
                        study_instance_uid=study_instance_uid,
                        version=number,
                        entry_uuid=str(version.entry_uuid),
                        replaces=version.replaces,
                        changes=changes,
                        body=body,
                        prepared=now,
                    )
                )
        except IntegrityError:
            return None  # prepared meanwhile by another round: it is sent from the table
        return PreparedVersion(study_instance_uid, version.unique_id, number, changes, body)

    async def _study(self, conn: AsyncConnection, study_instance_uid: str) -> ManifestStudy | None:
        head = (
            await conn.execute(
                select(
                    _pat.patient_id,
                    _pat.issuer_of_patient_id,
                    _stu.study_date,
                    _stu.study_time,
                    _stu.accession_number,
                    _stu.study_description,
                    _stu.created,
                )
                .select_from(media_study.join(media_patient, _stu.patient_key == _pat.patient_key))
                .where(_stu.study_instance_uid == study_instance_uid)
            )
        ).first()
        if head is None:
            return None
        series: dict[str, tuple[Any, list[ManifestInstance]]] = {}
        rows = await conn.execute(
            select(
                _ser.series_instance_uid,
                _ser.modality,
                _ser.series_number,
                _ser.series_description,
                _ser.body_part_examined,
                _ins.sop_instance_uid,
                _ins.sop_class_uid,
                _ins.instance_number,
            )
            .select_from(
                media_series.join(
                    media_instance, _ins.series_instance_uid == _ser.series_instance_uid
                )
            )
            .where(_ser.study_instance_uid == study_instance_uid)
            .order_by(
                _ser.series_number,
                _ser.series_instance_uid,
                _ins.instance_number,
                _ins.sop_instance_uid,
            )
        )
        for r in rows:
            _, members = series.setdefault(r.series_instance_uid, (r, []))
            members.append(ManifestInstance(r.sop_instance_uid, r.sop_class_uid, r.instance_number))
        if not series:
            return None
        created = head.created
        return ManifestStudy(
            study_instance_uid=study_instance_uid,
            patient_id=head.patient_id,
            issuer_of_patient_id=head.issuer_of_patient_id,
            study_date=head.study_date,
            study_time=head.study_time,
            accession_number=head.accession_number,
            study_description=head.study_description,
            created=created,
            series=tuple(
                ManifestSeries(
                    first.series_instance_uid,
                    first.modality,
                    first.series_number,
                    first.series_description,
                    first.body_part_examined,
                    tuple(members),
                )
                for first, members in series.values()
            ),
        )

    async def published(self, version: PreparedVersion, *, now: datetime) -> None:
        """The source registered the version: the study is done up to its changes."""
        async with self._engine.begin() as conn:
            await conn.execute(
                update(media_manifest_version)
                .where(_v.unique_id == version.unique_id)
                .values(published=now)
            )
            await self._finish(conn, version, "published")

    async def refused(self, version: PreparedVersion, *, reason: str) -> None:
        """The source refused the version for good: recorded, and not sent again."""
        async with self._engine.begin() as conn:
            await conn.execute(
                update(media_manifest_version)
                .where(_v.unique_id == version.unique_id)
                .values(refused=reason[:200])
            )
            await self._finish(conn, version, "refused")

    async def _finish(self, conn: AsyncConnection, version: PreparedVersion, outcome: str) -> None:
        await conn.execute(
            update(media_manifest)
            .where(
                _m.study_instance_uid == version.study_instance_uid,
                _m.published_changes < version.changes,
            )
            .values(published_changes=version.changes)
        )
        await conn.execute(
            update(media_manifest)
            .where(_m.study_instance_uid == version.study_instance_uid)
            .values(attempts=0, next_attempt=None, outcome=outcome)
        )

    async def retry_later(
        self, study_instance_uid: str, *, attempts: int, at: datetime, outcome: str
    ) -> None:
        """The source could not be reached or was busy: try again at `at`."""
        async with self._engine.begin() as conn:
            await conn.execute(
                update(media_manifest)
                .where(_m.study_instance_uid == study_instance_uid)
                .values(attempts=attempts, next_attempt=at, outcome=outcome[:64])
            )

    async def pending(self) -> int:
        """How many studies have instances no finished version covers yet (not yet published,
        retrying, or in their quiet period): /healthz says it, for a loader to wait on."""
        async with self._engine.connect() as conn:
            value = await conn.scalar(
                select(func.count())
                .select_from(media_manifest)
                .where(_m.changes > _m.published_changes)
            )
        return int(value or 0)

    async def attempts(self, study_instance_uid: str) -> int:
        async with self._engine.connect() as conn:
            value = await conn.scalar(
                select(_m.attempts).where(_m.study_instance_uid == study_instance_uid)
            )
        return int(value or 0)

    async def versions(self, study_instance_uid: str) -> list[dict[str, Any]]:
        """Every version of a study, oldest first (uniqueId, replaces, published, refused)."""
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(_v.unique_id, _v.version, _v.replaces, _v.changes, _v.published, _v.refused)
                .where(_v.study_instance_uid == study_instance_uid)
                .order_by(_v.version)
            )
            return [dict(r._mapping) for r in rows]

    async def studies_named(self, unique_ids: frozenset[str]) -> frozenset[str]:
        """The StudyInstanceUIDs any of `unique_ids` is a manifest of (region_controls hook).

        A study's first manifest has its StudyInstanceUID as uniqueId, so every id is kept as a
        study UID too; a replacement's 2.25 uniqueId is looked up in the versions' table.
        """
        bare = {u.removeprefix("urn:oid:") for u in unique_ids}
        studies = set(unique_ids) | bare
        wanted = sorted(u for u in bare if len(u) <= 64)
        async with self._engine.connect() as conn:
            for start in range(0, len(wanted), 500):
                rows = await conn.scalars(
                    select(_v.study_instance_uid).where(
                        _v.unique_id.in_(wanted[start : start + 500])
                    )
                )
                studies.update(rows.all())
        return frozenset(studies)

    async def unique_ids(self, study_instance_uid: str) -> list[str]:
        """Every manifest uniqueId of a study, oldest first (a block names any of them)."""
        async with self._engine.connect() as conn:
            found = await conn.scalars(
                select(_v.unique_id)
                .where(_v.study_instance_uid == study_instance_uid)
                .order_by(_v.version)
            )
            return list(found.all())

    async def state(self, study_instance_uid: str) -> dict[str, Any] | None:
        """The study's outbox row, or None."""
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(media_manifest).where(_m.study_instance_uid == study_instance_uid)
                )
            ).first()
        return None if row is None else dict(row._mapping)
