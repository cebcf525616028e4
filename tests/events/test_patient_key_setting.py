"""The locator's patient-key rule both the hub's and a region's settings apply."""

from __future__ import annotations

import pytest

from onerecord.events import check_patient_key_setting

URL = "nats://127.0.0.1:4222"


def test_with_nats_a_patient_key_of_at_least_16_bytes_is_needed() -> None:
    for key in (None, "", "fifteen-bytes!!"):
        with pytest.raises(ValueError, match="at least 16 bytes"):
            check_patient_key_setting(URL, key, dev_mode=True)
    check_patient_key_setting(URL, "sixteen-bytes!!!", dev_mode=False)
    check_patient_key_setting(None, None, dev_mode=False)  # locator off: no key needed


def test_a_development_key_only_in_development_mode() -> None:
    with pytest.raises(ValueError, match="development locator patient key"):
        check_patient_key_setting(URL, "dev-0123456789abcdef", dev_mode=False)
    check_patient_key_setting(URL, "dev-0123456789abcdef", dev_mode=True)
