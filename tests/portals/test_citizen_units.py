"""The citizen portal's pure parts: the access log, whom the citizen acts for, controls."""

from __future__ import annotations

from typing import Any

import pytest

from onerecord.portals.access_log import (
    EXT_EMERGENCY_ACCESS,
    EXT_HOME_COMMUNITY_ID,
    build_access_log,
    region_message_key,
)
from onerecord.portals.citizen_gateway import (
    ControlChange,
    InvalidControl,
    hub_root,
    parse_controls,
)
from onerecord.portals.citizen_view import (
    BlockState,
    Notice,
    Person,
    acting_person,
    block_state,
    citizen_row,
    find_person,
    is_level_four_citizen,
    may_change_document_block,
    practitioner_names,
    read_people,
)
from onerecord.portals.i18n import catalog
from onerecord.portals.overview import DocumentRow, RegionNotice

PARENT = "14928301045"
CHILD11 = "02861569910"
CHILD13 = "23841357663"
READER_HPR = "6926956"
READER_NIN = "15037840022"
"""The reader's fødselsnummer: a region writes it as the identifier of a worker without an
HPR number (audit/balp.py) and may carry it as `altId`; it must never reach the citizen."""
FNR = "urn:oid:2.16.578.1.12.4.1.4.1"
HSO = "urn:oid:2.16.578.1.12.4.5.100.1"
VEST = "urn:oid:2.16.578.1.12.4.5.100.2"
REGIONS = (
    {"name": "Helse Sør-Øst", "home_community_id": HSO},
    {"name": "Helse Vest", "home_community_id": VEST},
)
_STATUS = "https://onerecord.no/fhir/StructureDefinition/region-status"
_HCID = "https://profiles.ihe.net/ITI/MHD/StructureDefinition/ihe-HomeCommunityId"


def audit_event(**changes: Any) -> dict[str, Any]:
    """An AuditEvent in the shape a region writes, with reader identifiers it must not show."""
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "subtype": [{"code": "search"}],
        "action": "E",
        "recorded": "2026-03-02T13:05:00+00:00",
        "agent": [
            {
                "requestor": True,
                "who": {
                    "display": "Ane Aasen",
                    "identifier": {"system": "urn:oid:2.16.578.1.12.4.1.4.4", "value": READER_HPR},
                },
                "altId": READER_NIN,
            },
            {"requestor": False, "who": {"display": "Oslo universitetssykehus HF"}},
            {"requestor": False, "who": {"display": "Medisinsk klinikk"}},
        ],
        "purposeOfEvent": [{"text": "Behandling"}, {"text": "Spesialisthelsetjeneste"}],
        "extension": [{"url": EXT_HOME_COMMUNITY_ID, "valueString": HSO}],
    }
    return event | changes


def bundle(*events: dict[str, Any], failed: tuple[str, ...] = ()) -> dict[str, Any]:
    entries: list[dict[str, Any]] = [{"resource": e} for e in events]
    if failed:
        issues = [
            {
                "severity": "warning",
                "code": "timeout",
                "extension": [
                    {"url": _STATUS, "valueCode": "timeout"},
                    {"url": _HCID, "valueUri": hcid},
                ],
            }
            for hcid in failed
        ]
        entries.append({"resource": {"resourceType": "OperationOutcome", "issue": issues}})
    return {"resourceType": "Bundle", "type": "searchset", "entry": entries}


# --- the access log -----------------------------------------------------------------------


def test_access_log_row_has_who_where_why_and_what_but_no_identifier() -> None:
    log = build_access_log(bundle(audit_event()), REGIONS)
    (row,) = log.rows
    assert row.who == "Ane Aasen"
    assert row.organisation == "Oslo universitetssykehus HF"
    assert row.department == "Medisinsk klinikk"
    assert row.reason == "Behandling – Spesialisthelsetjeneste"
    assert row.opened is False and row.emergency is False
    assert row.region == "Helse Sør-Øst"
    assert row.recorded == "2026-03-02T13:05:00+00:00"
    assert READER_HPR not in repr(row) and READER_NIN not in repr(row)
    # A worker without an HPR number is identified by their fødselsnummer: not shown either.
    agents = audit_event()["agent"]
    by_nin = {"display": "Ane Aasen", "identifier": {"system": FNR, "value": READER_NIN}}
    no_hpr = {**agents[0], "who": by_nin}
    (unnumbered,) = build_access_log(bundle(audit_event(agent=[no_hpr, *agents[1:]])), REGIONS).rows
    assert unnumbered.who == "Ane Aasen"
    assert READER_NIN not in repr(unnumbered) and READER_NIN not in repr(log)
    assert log.complete and [r.status for r in log.regions] == ["ok", "ok"]


def test_read_and_emergency_access_are_told_apart() -> None:
    opened = audit_event(
        subtype=[{"code": "read"}],
        action="R",
        extension=[
            {"url": EXT_HOME_COMMUNITY_ID, "valueString": VEST},
            {"url": EXT_EMERGENCY_ACCESS, "valueBoolean": True},
        ],
    )
    log = build_access_log(bundle(opened, audit_event()), REGIONS)
    assert [(r.opened, r.emergency, r.region) for r in log.rows] == [
        (True, True, "Helse Vest"),
        (False, False, "Helse Sør-Øst"),
    ]
    assert log.emergency_count == 1


def test_access_log_tolerates_sparse_events() -> None:
    sparse = {
        "resourceType": "AuditEvent",
        "action": "R",
        "agent": [{"requestor": True, "who": {"reference": "Practitioner/1"}}],
        "source": {"site": "Helse Nord"},
        "purposeOfEvent": [{"coding": [{"code": "TREAT", "display": "Behandling"}]}],
    }
    (row,) = build_access_log(bundle(sparse), REGIONS).rows
    assert (row.who, row.organisation, row.department) == ("", "", "")
    assert row.opened is True and row.region == "Helse Nord"
    assert row.reason == "Behandling" and row.recorded == ""


def test_failed_regions_are_named_and_an_outcome_alone_is_an_empty_log() -> None:
    log = build_access_log(bundle(audit_event(), failed=(VEST,)), REGIONS)
    assert not log.complete
    assert [(r.name, r.status) for r in log.regions] == [
        ("Helse Sør-Øst", "ok"),
        ("Helse Vest", "timeout"),
    ]
    assert region_message_key(log.regions[1]) == "citizen.log.region.timeout"
    assert region_message_key(RegionNotice("X", "strange")) == "citizen.log.region.unknown"
    outcome = bundle(failed=(HSO, VEST))["entry"][0]["resource"]
    nothing = build_access_log(outcome, REGIONS)
    assert nothing.rows == () and all(not r.ok for r in nothing.regions)


def test_access_log_pages_are_clamped() -> None:
    log = build_access_log(bundle(*(audit_event() for _ in range(5))), REGIONS)
    assert [len(log.page(n, per_page=2).rows) for n in (1, 2, 3)] == [2, 2, 1]
    assert log.page(99, per_page=2).page == 3 and log.page(0, per_page=2).page == 1
    assert build_access_log(bundle(), REGIONS).page(1).pages == 1


# --- whom the citizen acts for ------------------------------------------------------------


def userinfo(**changes: Any) -> dict[str, Any]:
    info: dict[str, Any] = {
        "sub": PARENT,
        "name": "Guro Pettersen",
        "pid": PARENT,
        "security_level": "4",
        "acr": "idporten-loa-high",
        "onerecord:representation": [
            {"nin": CHILD11, "name": "Terje Pettersen", "relation": "parent", "acp": "x"},
            {"nin": "12345678901", "name": "Not a valid number", "relation": "parent"},
            "garbage",
        ],
        "onerecord:representation_refused": [
            {"nin": CHILD13, "name": None, "relation": "parent", "reason": "child-12-15"}
        ],
    }
    return info | changes


def test_people_are_read_from_userinfo_and_malformed_entries_dropped() -> None:
    allowed, refused = read_people(userinfo())
    assert allowed == ({"nin": CHILD11, "name": "Terje Pettersen", "relation": "parent"},)
    assert refused == (
        {"nin": CHILD13, "name": CHILD13, "relation": "parent", "reason": "child-12-15"},
    )
    assert read_people({}) == ((), ())
    child = find_person(refused, CHILD13)
    assert child is not None and child.refusal_key == "citizen.refused.child-12-15"
    assert find_person(allowed, CHILD13) is None and find_person(allowed, None) is None


def test_only_a_level_four_citizen_login_is_accepted() -> None:
    assert is_level_four_citizen(userinfo())
    assert is_level_four_citizen(userinfo(acr=None))
    assert is_level_four_citizen(userinfo(security_level="3"))  # acr says high
    assert not is_level_four_citizen(userinfo(acr="idporten-loa-substantial", security_level="3"))
    practitioner = userinfo()
    del practitioner["onerecord:representation"]
    assert not is_level_four_citizen(practitioner)
    assert not is_level_four_citizen(userinfo(pid="123"))


def test_acting_person_is_self_unless_a_listed_person_is_chosen() -> None:
    allowed, _ = read_people(userinfo())
    me = acting_person(
        citizen_nin=PARENT, user_name="Guro", acting_for=None, representations=allowed
    )
    assert me.is_self and me.name == "Guro" and me.relation_key == "citizen.relation.self"
    child = acting_person(
        citizen_nin=PARENT, user_name="Guro", acting_for=CHILD11, representations=allowed
    )
    assert (child.nin, child.relation_key) == (CHILD11, "citizen.relation.parent")
    stale = acting_person(
        citizen_nin=PARENT, user_name=None, acting_for=CHILD13, representations=allowed
    )
    assert stale.is_self and stale.name == PARENT
    odd = Person(CHILD11, "X", "cousin", reason="because")
    assert odd.relation_key == "citizen.relation.other"
    assert odd.refusal_key == "citizen.refused.other"


def test_notice_survives_the_session_and_garbage_is_ignored() -> None:
    notice = Notice("citizen.change.partial", {"regions": "Helse Vest"}, problem=True)
    assert Notice.decode(notice.encode()) == notice
    assert Notice.decode(None) is None
    assert Notice.decode("not json") is None
    assert Notice.decode('["a"]') is None
    assert Notice.decode('{"key": "k", "params": [1]}') == Notice("k")


def _row(**changes: Any) -> DocumentRow:
    row = DocumentRow(
        date="2026-01-01",
        title="Epikrise",
        type="Epikrise",
        class_="Epikriser",
        author="Lege",
        organisation="Sykehus",
        region="Helse Vest",
        blocked=False,
        ref="r1",
        unique_id="2.16.578.1.99.1",
        home_community_id=VEST,
    )
    return DocumentRow(**{**{f: getattr(row, f) for f in row.__slots__}, **changes})


def test_block_state_of_each_kind_of_row() -> None:
    blocked = frozenset({"2.16.578.1.99.1"})
    assert block_state(_row(), blocked) == BlockState.BLOCKED
    assert block_state(_row(), frozenset()) == BlockState.OPEN
    assert block_state(_row(emergency=True), frozenset()) == BlockState.LABELLED
    assert block_state(_row(), None) == BlockState.UNKNOWN
    assert block_state(_row(unique_id=""), blocked) == BlockState.NOT_BLOCKABLE
    assert block_state(_row(blocked=True), blocked) == BlockState.NOT_BLOCKABLE
    assert citizen_row(_row(emergency=True)).emergency is False
    assert citizen_row(_row()) == _row()


def test_a_block_names_a_listed_document_and_an_undo_also_a_blocked_one() -> None:
    rows = [_row(), _row(unique_id="2.16.578.1.99.2", home_community_id="", ref="r2")]
    uid = "2.16.578.1.99.1"
    for on in (True, False):
        assert may_change_document_block(uid, VEST, on=on, rows=rows)
        assert may_change_document_block(f"urn:oid:{uid}", VEST.upper(), on=on, rows=rows)
        assert may_change_document_block("2.16.578.1.99.2", None, on=on, rows=rows)
        # The same uniqueId in another region, or without its region, is another document.
        assert not may_change_document_block(uid, HSO, on=on, rows=rows)
        assert not may_change_document_block(uid, None, on=on, rows=rows)
        assert not may_change_document_block("2.16.578.1.99.9", VEST, on=on, rows=rows)
        assert not may_change_document_block("<script>", VEST, on=on, rows=rows)
        assert not may_change_document_block(uid, VEST, on=on, rows=[_row(blocked=True)])
    # Lifting a block the person's controls list is allowed without the overview; setting one
    # is not.
    blocked = frozenset({"2.16.578.1.99.9"})
    other = "2.16.578.1.99.9"
    for hcid in (None, HSO):
        assert may_change_document_block(other, hcid, on=False, rows=(), blocked=blocked)
    assert not may_change_document_block(other, None, on=True, rows=(), blocked=blocked)
    unknown = "2.16.578.1.99.8"
    assert not may_change_document_block(unknown, None, on=False, rows=(), blocked=blocked)


def test_practitioner_names_come_from_the_known_staff() -> None:
    staff: dict[str, dict[str, Any]] = {
        "doctor": {"hpr": "6926956", "name": "Ane Aasen"},
        "no_hpr": {"hpr": None, "name": "Uten Nummer"},
        "nameless": {"hpr": "1234"},
    }
    assert practitioner_names(staff) == {"6926956": "Ane Aasen"}


# --- controls -----------------------------------------------------------------------------


def test_control_changes_name_the_right_hub_path() -> None:
    assert hub_root("http://hub.example/fhir/") == "http://hub.example"
    assert ControlChange.reservation(on=True).path == "reservation"
    block = ControlChange.document_block(
        "urn:oid:2.16.578.1.99.1^ab", f" {VEST} ", on=False, patient=CHILD11
    )
    assert block.method == "DELETE" and block.target == "2.16.578.1.99.1^ab"
    assert block.path == "document-blocks/2.16.578.1.99.1^ab"
    assert block.home_community_id == "urn:oid:2.16.578.1.12.4.5.100.2"
    assert block.patient == CHILD11
    anywhere = ControlChange.document_block("2.16.578.1.99.1", "", on=True)
    assert anywhere.home_community_id is None and anywhere.method == "PUT"
    hpr = ControlChange.practitioner_block(" 692 6956 ", on=True)
    assert hpr.path == "practitioner-blocks/6926956"


@pytest.mark.parametrize(
    ("make", "key"),
    [
        (lambda: ControlChange.document_block("not-an-oid", "", on=True), "citizen.block"),
        (lambda: ControlChange.document_block("1.2.3", "1.2.3", on=True), "citizen.block"),
        (lambda: ControlChange.practitioner_block("12", on=True), "citizen.privacy.hpr"),
        (lambda: ControlChange.practitioner_block("12a45", on=True), "citizen.privacy.hpr"),
        (lambda: ControlChange.practitioner_block("1234567890", on=True), "citizen.privacy.hpr"),
    ],
)
def test_bad_control_input_is_refused_with_a_message(make: Any, key: str) -> None:
    with pytest.raises(InvalidControl) as caught:
        make()
    assert caught.value.message_key.startswith(key)
    assert caught.value.message_key in catalog()


def test_controls_answer_is_read_and_failed_regions_named() -> None:
    body = {
        "patient": PARENT,
        "reserved": True,
        "blockedDocuments": ["urn:oid:1.2.3", "1.2.4"],
        "blockedPractitioners": ["9144900", "1234", "9144900"],
        "regions": [
            {"homeCommunityId": HSO, "name": "Helse Sør-Øst", "status": "ok"},
            {"homeCommunityId": VEST, "name": "Helse Vest", "status": "timeout"},
        ],
    }
    controls = parse_controls(body)
    assert controls.reserved and controls.patient == PARENT
    assert controls.blocked_documents == {"1.2.3", "1.2.4"}
    assert controls.blocked_practitioners == ("1234", "9144900")
    assert controls.failed_regions == ("Helse Vest",)
    bad: Any
    for bad in (
        [],
        {"reserved": "yes", "blockedDocuments": [], "blockedPractitioners": []},
        {"reserved": False, "blockedDocuments": [1], "blockedPractitioners": []},
        {"reserved": False, "blockedDocuments": [], "blockedPractitioners": [], "regions": 3},
    ):
        with pytest.raises(ValueError):
            parse_controls(bad)


def test_every_citizen_message_has_bokmal_nynorsk_and_english() -> None:
    citizen = {k: v for k, v in catalog().items() if k.startswith("citizen.")}
    assert len(citizen) > 100
    for key, texts in citizen.items():
        assert set(texts) == {"nb", "nn", "en"}, key
        assert all(text.strip() for text in texts.values()), key
    # Real nynorsk, not bokmål copied: most sentences differ.
    sentences = [t for t in citizen.values() if len(t["nb"]) > 40]
    assert sum(t["nn"] != t["nb"] for t in sentences) > 0.9 * len(sentences)
    assert all(t["en"] != t["nb"] for t in sentences)
