"""Locator events: what a region tells the network about its registry, shared by source and hub.

The event schema, subjects and the patient's keyed digest (registry_events.py), and the bus
behind two small protocols with a NATS JetStream and an in-memory implementation (bus.py). Of
onerecord it imports only `domain`, so source and hub share it without importing each other.
"""

from __future__ import annotations

from onerecord.events.bus import (
    BusUnavailable,
    EventFeed,
    EventPublisher,
    MemoryEventBus,
    NatsEventBus,
    StoredEvent,
    StreamPosition,
    WrongLastEvent,
)
from onerecord.events.registry_events import (
    DEFAULT_SUBJECT_PREFIX,
    DEV_PATIENT_KEY_PREFIX,
    MAX_CHANGES,
    MAX_HOLDINGS_BYTES,
    BackfillBegin,
    BackfillEnd,
    EntryStatus,
    Holdings,
    InvalidEvent,
    RegionHeartbeat,
    RegionStreamStart,
    RegistryChanges,
    RegistryEvent,
    SequencedEvent,
    backfill_request_subject,
    check_patient_key_setting,
    decode_event,
    decode_heartbeat,
    event_subject,
    event_subjects,
    heartbeat_subject,
    heartbeat_subjects,
    holdings_subject,
    is_development_key,
    patient_key,
)

__all__ = [
    "BusUnavailable",
    "EventFeed",
    "EventPublisher",
    "MemoryEventBus",
    "NatsEventBus",
    "StoredEvent",
    "StreamPosition",
    "WrongLastEvent",
    "DEFAULT_SUBJECT_PREFIX",
    "DEV_PATIENT_KEY_PREFIX",
    "MAX_CHANGES",
    "MAX_HOLDINGS_BYTES",
    "BackfillBegin",
    "BackfillEnd",
    "Holdings",
    "SequencedEvent",
    "backfill_request_subject",
    "holdings_subject",
    "check_patient_key_setting",
    "is_development_key",
    "EntryStatus",
    "InvalidEvent",
    "RegionHeartbeat",
    "RegionStreamStart",
    "RegistryChanges",
    "RegistryEvent",
    "decode_event",
    "decode_heartbeat",
    "event_subject",
    "event_subjects",
    "heartbeat_subject",
    "heartbeat_subjects",
    "patient_key",
]
