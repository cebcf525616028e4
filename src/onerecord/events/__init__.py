"""Locator events: what a region tells the network about its registry, shared by source and hub.

The wire only (schema, subjects, the patient's keyed digest); imports nothing but `domain`, so
source and hub share it without importing each other.
"""

from __future__ import annotations

from onerecord.events.registry_events import (
    EVENT_SUBJECTS,
    HEARTBEAT_SUBJECTS,
    EntryStatus,
    InvalidEvent,
    RegionHeartbeat,
    RegistryEvent,
    decode_event,
    decode_heartbeat,
    event_subject,
    heartbeat_subject,
    patient_key,
)

__all__ = [
    "EVENT_SUBJECTS",
    "HEARTBEAT_SUBJECTS",
    "EntryStatus",
    "InvalidEvent",
    "RegionHeartbeat",
    "RegistryEvent",
    "decode_event",
    "decode_heartbeat",
    "event_subject",
    "heartbeat_subject",
    "patient_key",
]
