"""The reply endpoints a gateway may answer to: strict reading, exact and prefix matching."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from onerecord.xca.addressing import (
    MAX_MESSAGE_ID_LENGTH,
    ReplyAllowList,
    ReplyEndpoint,
    check_message_id,
)
from onerecord.xca.errors import XcaParseError

ALLOWED = ReplyAllowList(
    [
        "https://gw.vest.example/xca/receiver/",
        "http://192.168.2.4:9080/XcaService/InitiatingGatewayReceiver.svc",
    ]
)


@pytest.mark.parametrize(
    ("address", "sent_to"),
    [
        (
            "https://gw.vest.example/xca/receiver/iti38",
            "https://gw.vest.example:443/xca/receiver/iti38",
        ),
        ("HTTPS://GW.Vest.Example/xca/receiver/", "https://gw.vest.example:443/xca/receiver/"),
        (
            "https://gw.vest.example:443/xca/receiver/x?y=1",
            "https://gw.vest.example:443/xca/receiver/x?y=1",
        ),
        (
            "http://192.168.2.4:9080/XcaService/InitiatingGatewayReceiver.svc",
            "http://192.168.2.4:9080/XcaService/InitiatingGatewayReceiver.svc",
        ),
    ],
)
def test_an_address_on_the_list_is_sent_to_as_checked(address: str, sent_to: str) -> None:
    assert ALLOWED.check(address) == sent_to


@pytest.mark.parametrize(
    "address",
    [
        "https://gw.vest.example/xca/receiverX",  # not under the prefix
        "https://gw.vest.example/xca/",  # above it
        "http://gw.vest.example/xca/receiver/",  # another scheme
        "https://gw.vest.example:8443/xca/receiver/",  # another port
        "https://gw.vest.example.evil.test/xca/receiver/",  # another host
        "https://evil.test@gw.vest.example/xca/receiver/",  # user information
        "https://gw.vest.example@evil.test/xca/receiver/",
        "https://gw.vest.example/xca/receiver/../../admin",  # dot segments
        "https://gw.vest.example/xca/receiver/%2e%2e/admin",  # encoded dots
        "https://gw.vest.example/xca/receiver/..%2Fadmin",
        "https://gw.vest.example/xca/receiver/\\..\\admin",
        "https://gw.vest.example/xca/receiver/#frag",
        "http://192.168.2.4:9080/XcaService/InitiatingGatewayReceiver.svc/more",  # exact only
        "http://192.168.2.4:9080/XcaService/InitiatingGatewayReceiver.svc?x=1",
        "http://192.168.2.4:0/XcaService/InitiatingGatewayReceiver.svc",
        "file:///etc/passwd",
        "gopher://gw.vest.example/xca/receiver/",
        "https://gw.vest.example/xca/receiver/ x",
        "https://gw.vest.éxample/xca/receiver/",
        "//gw.vest.example/xca/receiver/",
        "",
        "x" * 3000,
        "http://www.w3.org/2005/08/addressing/anonymous",
    ],
)
def test_any_other_address_is_refused_as_the_callers_fault(address: str) -> None:
    with pytest.raises(XcaParseError):
        ALLOWED.check(address)


def test_an_empty_list_refuses_every_address() -> None:
    empty = ReplyAllowList([])
    assert not empty
    with pytest.raises(XcaParseError, match="no address"):
        empty.check("https://gw.vest.example/xca/receiver/")


@pytest.mark.parametrize(
    "entry",
    [
        "https://gw.vest.example",  # no path: ambiguous, refused
        "ftp://gw.vest.example/x/",
        "https://user@gw.vest.example/x/",
        "gw.vest.example/x/",
        "https://gw.vest.example/x/../y/",
    ],
)
def test_an_entry_that_is_not_an_absolute_http_url_with_a_path_is_refused(entry: str) -> None:
    with pytest.raises(ValueError, match="reply endpoint"):
        ReplyEndpoint.parse(entry)


@given(st.text(max_size=300))
def test_any_text_is_an_allowed_address_or_a_sender_fault(address: str) -> None:
    try:
        sent_to = ALLOWED.check(address)
    except XcaParseError:
        return
    assert sent_to.startswith(("https://gw.vest.example:443/xca/receiver/", "http://192.168."))


@given(st.text(alphabet=st.characters(codec="ascii"), max_size=120))
def test_an_address_under_the_prefix_is_allowed_only_in_plain_form(suffix: str) -> None:
    address = f"https://gw.vest.example/xca/receiver/{suffix}"
    try:
        sent_to = ALLOWED.check(address)
    except XcaParseError:
        return
    expected = f"https://gw.vest.example:443/xca/receiver/{suffix}"
    assert sent_to in (expected, expected.removesuffix("?"))  # an empty query is no query
    assert ".." not in sent_to.split("?")[0].split("/") and "@" not in sent_to


@pytest.mark.parametrize(
    "message_id", ["urn:uuid:c6fda90e-a5ec-4f8d-aa1b-14802f4bf68d", "uuid:1", "http://x/y"]
)
def test_an_absolute_uri_is_a_message_id(message_id: str) -> None:
    assert check_message_id(message_id) == message_id


@pytest.mark.parametrize(
    "message_id",
    [None, "", "no-scheme", "urn:uuid:a b", "urn:é", "u:" + "x" * MAX_MESSAGE_ID_LENGTH],
)
def test_an_asynchronous_request_needs_a_plain_message_id(message_id: str | None) -> None:
    with pytest.raises(XcaParseError, match="MessageID"):
        check_message_id(message_id)
