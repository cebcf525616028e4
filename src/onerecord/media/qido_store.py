"""QIDO-RS and WADO-RS over the archive's tables: `QidoQuery` → SQL, and metadata as stored.

`search` translates a parsed `onerecord.dicom.QidoQuery` into one SELECT at its level (study,
series, instance) joined to the levels above, always narrowed to one patient's PatientID (the
patient the caller is bound to), paged with LIMIT/OFFSET. Each match is answered from its
columns and the stored DICOM JSON of one representative instance (the first by SOP Instance
UID in the study or series; the instance itself at instance level), so `includefield` can name
any attribute the instances carry, and no file is read. Aggregates (ModalitiesInStudy, the
Number of … Related … counts) are computed from the lower levels.

Matching (PS3.4 §C.2.2.2): single value, list (`IN`), wildcard (`LIKE … ESCAPE '\\'`), date and
time ranges compared as strings (times padded by `dicom.qido`; a stored partial time compares
by its prefix), ModalitiesInStudy as "some series of the study has one of these modalities".
Person names match case-insensitively (as C-FIND does here); `fuzzymatching=true` also treats
`^` as a space and matches a prefix (PS3.18 §8.3.4.2 leaves the method to the archive).

References: PS3.18 §8.3.4, §10.6; PS3.4 §C.2.2.2, §C.6.1.1.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Select, Text, and_, cast, func, literal, select
from sqlalchemy.ext.asyncio import AsyncEngine

from onerecord.dicom import (
    InvalidRequest,
    ListMatch,
    Predicate,
    QidoLevel,
    QidoQuery,
    RangeMatch,
    SingleValueMatch,
    WildcardMatch,
)
from onerecord.media.schema import media_instance, media_patient, media_series, media_study
from onerecord.media.store import StoredInstance

__all__ = ["QidoMatch", "instance_metadata", "locate_uids", "search"]

_pat, _stu, _ser, _ins = media_patient.c, media_study.c, media_series.c, media_instance.c

_COLUMNS: dict[str, Any] = {
    "PatientName": _pat.patient_name,
    "PatientID": _pat.patient_id,
    "PatientBirthDate": _pat.patient_birth_date,
    "PatientSex": _pat.patient_sex,
    "StudyDate": _stu.study_date,
    "StudyTime": _stu.study_time,
    "AccessionNumber": _stu.accession_number,
    "StudyInstanceUID": _stu.study_instance_uid,
    "StudyID": _stu.study_id,
    "StudyDescription": _stu.study_description,
    "ReferringPhysicianName": _stu.referring_physician_name,
    "Modality": _ser.modality,
    "SeriesInstanceUID": _ser.series_instance_uid,
    "SeriesNumber": _ser.series_number,
    "SeriesDescription": _ser.series_description,
    "BodyPartExamined": _ser.body_part_examined,
    "SOPClassUID": _ins.sop_class_uid,
    "SOPInstanceUID": _ins.sop_instance_uid,
    "InstanceNumber": _ins.instance_number,
}
_PERSON_NAMES = frozenset({"PatientName", "ReferringPhysicianName"})
_INTEGERS = frozenset({"SeriesNumber", "InstanceNumber"})
_BULK_URI = re.compile(rb'"BulkDataURI":"bulk/')

# Attributes the archive computes rather than copies from an instance.
_MODALITIES, _N_STUDY_SERIES, _N_STUDY_INSTANCES = "00080061", "00201206", "00201208"
_N_SERIES_INSTANCES, _RETRIEVE_URL, _AVAILABILITY = "00201209", "00081190", "00080056"
_COMPUTED = frozenset(
    {_MODALITIES, _N_STUDY_SERIES, _N_STUDY_INSTANCES, _N_SERIES_INSTANCES, _RETRIEVE_URL}
)
_AVAILABLE = {"vr": "CS", "Value": ["ONLINE"]}


class QidoMatch(dict[str, Any]):
    """One match as a DICOM JSON object (tag → attribute)."""


def _fuzzy(text: str) -> str:
    return " ".join(text.replace("^", " ").casefold().split())


def _fuzzy_column(column: Any) -> Any:
    return func.lower(func.replace(column, "^", " "))


def _where(predicate: Predicate) -> ColumnElement[bool]:
    keyword = predicate.attribute.keyword
    if keyword == "ModalitiesInStudy":
        values = (
            list(predicate.values)
            if isinstance(predicate, ListMatch)
            else [getattr(predicate, "value", "")]
        )
        return (
            select(literal(1))
            .where(_ser.study_instance_uid == _stu.study_instance_uid, _ser.modality.in_(values))
            .exists()
        )
    column = _COLUMNS.get(keyword)
    if column is None:
        raise InvalidRequest(f"{keyword}: not indexed by this archive")
    person = keyword in _PERSON_NAMES
    if isinstance(predicate, RangeMatch):
        parts = [column != ""]
        if predicate.low is not None:
            low = predicate.low
            if predicate.attribute.vr == "TM":
                # A stored partial time ("10") compares as its prefix: trim the padded bound.
                low = low.rstrip("0").rstrip(".") or "0"
            parts.append(column >= low)
        if predicate.high is not None:
            parts.append(column <= predicate.high)
        return and_(*parts)
    if isinstance(predicate, ListMatch):
        return column.in_(list(predicate.values))  # type: ignore[no-any-return]
    if isinstance(predicate, WildcardMatch):
        if predicate.fuzzy:
            pattern = WildcardMatch(predicate.attribute, _fuzzy(predicate.pattern)).like_pattern()
            return _fuzzy_column(column).like(pattern, escape="\\")  # type: ignore[no-any-return]
        if person:
            return func.lower(column).like(predicate.like_pattern().lower(), escape="\\")
        return column.like(predicate.like_pattern(), escape="\\")  # type: ignore[no-any-return]
    assert isinstance(predicate, SingleValueMatch)
    if keyword in _INTEGERS:
        return column == int(predicate.value)  # type: ignore[no-any-return]
    if predicate.fuzzy:
        prefix = WildcardMatch(predicate.attribute, _fuzzy(predicate.value)).like_pattern()
        return _fuzzy_column(column).like(prefix + "%", escape="\\")  # type: ignore[no-any-return]
    if person:
        return func.lower(column) == predicate.value.lower()
    return column == predicate.value  # type: ignore[no-any-return]


def _select(
    query: QidoQuery, patient_id: str, hidden_studies: frozenset[str] = frozenset()
) -> Select[Any]:
    """The keys of the matches at the query's level, narrowed to one patient, one page.

    `hidden_studies`: studies never matched (the patient blocked them), at every level, so that
    paging and counts see only what the caller may.
    """
    source: Any = media_study.join(media_patient, _stu.patient_key == _pat.patient_key)
    if query.level is QidoLevel.STUDY:
        columns: list[Any] = [_stu.study_instance_uid]
        order: list[Any] = [_stu.study_date, _stu.study_time, _stu.study_instance_uid]
    elif query.level is QidoLevel.SERIES:
        source = media_series.join(source, _ser.study_instance_uid == _stu.study_instance_uid)
        columns = [_stu.study_instance_uid, _ser.series_instance_uid]
        order = [_stu.study_instance_uid, _ser.series_number, _ser.series_instance_uid]
    else:
        source = media_instance.join(
            media_series.join(source, _ser.study_instance_uid == _stu.study_instance_uid),
            _ins.series_instance_uid == _ser.series_instance_uid,
        )
        columns = [_stu.study_instance_uid, _ser.series_instance_uid, _ins.sop_instance_uid]
        order = [_ser.series_instance_uid, _ins.instance_number, _ins.sop_instance_uid]
    conditions: list[Any] = [_pat.patient_id == patient_id]
    if query.study_uid is not None:
        conditions.append(_stu.study_instance_uid == query.study_uid)
    if query.series_uid is not None:
        conditions.append(_ser.series_instance_uid == query.series_uid)
    if hidden_studies:
        conditions.append(_stu.study_instance_uid.not_in(sorted(hidden_studies)))
    conditions.extend(_where(p) for p in query.matches if p.attribute.keyword != "PatientID")
    return (
        select(*columns)
        .select_from(source)
        .where(*conditions)
        .order_by(*order)
        .limit(query.limit)
        .offset(query.offset)
    )


async def search(
    engine: AsyncEngine,
    query: QidoQuery,
    *,
    patient_id: str,
    retrieve_base: str,
    hidden_studies: frozenset[str] = frozenset(),
) -> list[dict[str, Any]]:
    """The matches of a QIDO-RS query for one patient, as DICOM JSON objects."""
    statement = _select(query, patient_id, hidden_studies)
    async with engine.connect() as conn:
        keys = [tuple(row) for row in (await conn.execute(statement)).all()]
        if not keys:
            return []
        uid_at = {QidoLevel.STUDY: 0, QidoLevel.SERIES: 1, QidoLevel.INSTANCE: 2}[query.level]
        uids = [k[uid_at] for k in keys]
        group = {
            QidoLevel.STUDY: _ins.study_instance_uid,
            QidoLevel.SERIES: _ins.series_instance_uid,
            QidoLevel.INSTANCE: _ins.sop_instance_uid,
        }[query.level]
        first = (
            select(func.min(_ins.sop_instance_uid)).where(group.in_(uids)).group_by(group)
        ).scalar_subquery()
        rows = await conn.execute(
            select(group, cast(_ins.metadata, Text)).where(_ins.sop_instance_uid.in_(first))
        )
        metadata = {uid: orjson.loads(text) for uid, text in rows}
        computed = await _computed(conn, query.level, uids)
    wanted = None if query.include_all else {f"{t:08X}" for t in query.return_tags()}
    matches: list[dict[str, Any]] = []
    for key in keys:
        uid = key[uid_at]
        source = metadata.get(uid, {})
        out: dict[str, Any] = {}
        for tag, attribute in source.items():
            if tag in _COMPUTED or (wanted is not None and tag not in wanted):
                continue
            if "BulkDataURI" in attribute or "InlineBinary" in attribute:
                continue
            out[tag] = attribute
        out.update(computed.get(uid, {}))
        out[_RETRIEVE_URL] = {"vr": "UR", "Value": [_retrieve_url(retrieve_base, key)]}
        if wanted is None or _AVAILABILITY in wanted:
            out[_AVAILABILITY] = _AVAILABLE
        if wanted is not None:
            out = {t: v for t, v in out.items() if t in wanted}
        matches.append(dict(sorted(out.items())))
    return matches


def _retrieve_url(base: str, key: tuple[str, ...]) -> str:
    names = ("studies", "series", "instances")
    return base + "".join(f"/{name}/{uid}" for name, uid in zip(names, key, strict=False))


async def _computed(conn: Any, level: QidoLevel, uids: Sequence[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {uid: {} for uid in uids}
    if level is QidoLevel.STUDY:
        rows = await conn.execute(
            select(_ser.study_instance_uid, _ser.modality)
            .where(_ser.study_instance_uid.in_(uids))
            .distinct()
        )
        modalities: dict[str, set[str]] = {}
        for uid, modality in rows:
            if modality:
                modalities.setdefault(uid, set()).add(modality)
        counts = await conn.execute(
            select(
                _ins.study_instance_uid,
                func.count(func.distinct(_ins.series_instance_uid)),
                func.count(),
            )
            .where(_ins.study_instance_uid.in_(uids))
            .group_by(_ins.study_instance_uid)
        )
        for uid, n_series, n_instances in counts:
            out[uid][_N_STUDY_SERIES] = {"vr": "IS", "Value": [int(n_series)]}
            out[uid][_N_STUDY_INSTANCES] = {"vr": "IS", "Value": [int(n_instances)]}
        for uid, found in modalities.items():
            out[uid][_MODALITIES] = {"vr": "CS", "Value": sorted(found)}
    elif level is QidoLevel.SERIES:
        counts = await conn.execute(
            select(_ins.series_instance_uid, func.count())
            .where(_ins.series_instance_uid.in_(uids))
            .group_by(_ins.series_instance_uid)
        )
        for uid, n in counts:
            out[uid][_N_SERIES_INSTANCES] = {"vr": "IS", "Value": [int(n)]}
    return out


async def locate_uids(
    engine: AsyncEngine,
    *,
    study_uid: str,
    series_uid: str | None = None,
    instance_uid: str | None = None,
    limit: int,
) -> list[StoredInstance]:
    """The instances of a study, series or instance named by UIDs (any patient's)."""
    conditions = [_ins.study_instance_uid == study_uid]
    if series_uid is not None:
        conditions.append(_ins.series_instance_uid == series_uid)
    if instance_uid is not None:
        conditions.append(_ins.sop_instance_uid == instance_uid)
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
        .where(*conditions)
        .order_by(_ins.series_instance_uid, _ins.instance_number, _ins.sop_instance_uid)
        .limit(limit)
    )
    async with engine.connect() as conn:
        return [StoredInstance(*row) for row in await conn.execute(statement)]


async def instance_metadata(
    engine: AsyncEngine, sop_instance_uids: Sequence[str], *, retrieve_base: str
) -> list[bytes]:
    """The stored DICOM JSON of each instance as bytes, BulkDataURIs made absolute.

    The stored text is spliced, never parsed: `bulk/<tag>` becomes the instance's
    `…/studies/{s}/series/{s}/instances/{i}/bulkdata/<tag>` (the stored JSON is orjson's,
    without spaces, so the splice finds every BulkDataURI and nothing else).
    """
    out: dict[str, bytes] = {}
    for start in range(0, len(sop_instance_uids), 500):
        chunk = list(sop_instance_uids[start : start + 500])
        async with engine.connect() as conn:
            rows = await conn.execute(
                select(
                    _ins.sop_instance_uid,
                    _ins.study_instance_uid,
                    _ins.series_instance_uid,
                    cast(_ins.metadata, Text),
                ).where(_ins.sop_instance_uid.in_(chunk))
            )
            for uid, study, series, text in rows:
                url = _retrieve_url(retrieve_base, (study, series, uid))
                prefix = f'"BulkDataURI":"{url}/bulkdata/'.encode()
                raw = text.encode("utf-8") if isinstance(text, str) else bytes(text)
                out[uid] = _BULK_URI.sub(prefix.replace(b"\\", b"\\\\"), raw)
    return [out[uid] for uid in sop_instance_uids if uid in out]
