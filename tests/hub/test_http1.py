"""The hub's HTTP/1.1 client for whole answers: real sockets on 127.0.0.1, servers that answer
as a region does and as a broken one might (hub/http1.py)."""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from onerecord.hub.exchange import RegionConnectError, RegionTransportError, ResponseTooLarge
from onerecord.hub.http1 import Http1Pool
from tests.support.servers import free_port

pytestmark = pytest.mark.anyio

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[tuple[str, list[int]]]:
    """Serve `handler` on a free port; yield the base URL and a list of connections accepted."""
    accepted: list[int] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        try:
            await handler(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", accepted
    finally:
        server.close()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


def answer(body: bytes, *, status: str = "200 OK", extra: str = "") -> bytes:
    head = f"HTTP/1.1 {status}\r\ncontent-type: application/fhir+json\r\n{extra}"
    return head.encode() + f"content-length: {len(body)}\r\n\r\n".encode() + body


async def keep_answering(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        try:
            request = await read_request(reader)
        except asyncio.IncompleteReadError:
            return
        writer.write(answer(b'{"seen":' + str(len(request)).encode() + b"}"))
        await writer.drain()


async def test_answers_are_read_whole_and_the_connection_is_kept_alive() -> None:
    pool = Http1Pool()
    async with serving(keep_answering) as (base, accepted):
        for _ in range(3):
            got = await pool.request(
                "GET", f"{base}/fhir/x?a=1", headers={"x-a": "b"}, timeout_s=2, max_body_bytes=999
            )
            assert got.status == 200 and got.body.startswith(b'{"seen":')
            assert got.headers["content-type"] == "application/fhir+json"
        assert len(accepted) == 1
    await pool.aclose()


async def test_the_request_carries_host_target_and_headers_as_given() -> None:
    seen: list[bytes] = []

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await read_request(reader))
        writer.write(answer(b"{}"))
        await writer.drain()

    pool = Http1Pool()
    async with serving(record) as (base, _):
        await pool.request(
            "DELETE",
            f"{base}/controls/reservation?patient=1%7C2",
            headers={"onerecord-hub-assertion": "e.y.z"},
            timeout_s=2,
            max_body_bytes=999,
        )
    request = seen[0].decode()
    assert request.startswith("DELETE /controls/reservation?patient=1%7C2 HTTP/1.1\r\n")
    assert f"host: {base.removeprefix('http://')}\r\n" in request
    assert "onerecord-hub-assertion: e.y.z\r\n" in request
    assert "content-length: 0\r\n" in request
    await pool.aclose()


async def test_a_chunked_answer_is_joined() -> None:
    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        writer.write(b'3\r\n{"a\r\n4\r\n":1}\r\n0\r\n\r\n')
        await writer.drain()

    pool = Http1Pool()
    async with serving(chunked) as (base, _):
        got = await pool.request("GET", f"{base}/x", headers={}, timeout_s=2, max_body_bytes=99)
    assert got.body == b'{"a":1}'
    await pool.aclose()


async def test_an_answer_ended_by_closing_the_connection_is_whole() -> None:
    async def until_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b'HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n{"all":true}')
        await writer.drain()

    pool = Http1Pool()
    async with serving(until_close) as (base, _):
        got = await pool.request("GET", f"{base}/x", headers={}, timeout_s=2, max_body_bytes=99)
    assert got.body == b'{"all":true}'
    await pool.aclose()


@pytest.mark.parametrize("declared", [True, False])
async def test_an_answer_over_the_limit_is_too_large(declared: bool) -> None:
    big = b"x" * 5000

    async def large(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        if declared:
            writer.write(answer(big))
        else:
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
            for _ in range(5):
                writer.write(b"3e8\r\n" + b"x" * 1000 + b"\r\n")
            writer.write(b"0\r\n\r\n")
        await writer.drain()

    pool = Http1Pool()
    async with serving(large) as (base, _):
        with pytest.raises(ResponseTooLarge):
            await pool.request("GET", f"{base}/x", headers={}, timeout_s=2, max_body_bytes=4096)
    await pool.aclose()


async def test_nothing_listening_is_a_connect_error() -> None:
    pool = Http1Pool()
    with pytest.raises(RegionConnectError):
        await pool.request(
            "GET", f"http://127.0.0.1:{free_port()}/x", headers={}, timeout_s=2, max_body_bytes=9
        )


async def test_a_kept_alive_connection_the_region_closed_is_replaced_once() -> None:
    """The region closes an idle connection; the next request goes out on a new one."""

    async def one_answer_then_close(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await read_request(reader)
        writer.write(answer(b"{}"))
        await writer.drain()
        # and the connection closes (keep-alive announced, then withdrawn while idle)

    pool = Http1Pool()
    async with serving(one_answer_then_close) as (base, accepted):
        for _ in range(3):
            got = await pool.request("GET", f"{base}/x", headers={}, timeout_s=2, max_body_bytes=9)
            assert got.status == 200
            await asyncio.sleep(0.05)  # the close reaches the idle connection, or races it
        assert len(accepted) == 3
    await pool.aclose()


async def test_a_connection_broken_mid_answer_is_a_transport_error_and_not_sent_again() -> None:
    async def half(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b'HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{"half')
        await writer.drain()

    pool = Http1Pool()
    async with serving(half) as (base, accepted):
        with pytest.raises(RegionTransportError):
            await pool.request("GET", f"{base}/x", headers={}, timeout_s=2, max_body_bytes=999)
        assert len(accepted) == 1
    await pool.aclose()


async def test_a_slow_answer_times_out_and_its_connection_is_not_reused() -> None:
    connections = 0

    async def slow_then_fast(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        if connections == 1:  # the first connection answers late, then would go on answering
            await read_request(reader)
            await asyncio.sleep(0.5)
            writer.write(answer(b'{"late":1}'))
        await keep_answering(reader, writer)

    pool = Http1Pool()
    async with serving(slow_then_fast) as (base, accepted):
        with pytest.raises(TimeoutError):
            await pool.request("GET", f"{base}/x", headers={}, timeout_s=0.1, max_body_bytes=99)
        got = await pool.request("GET", f"{base}/y", headers={}, timeout_s=2, max_body_bytes=99)
        assert b"late" not in got.body  # never the answer meant for the request that gave up
        assert len(accepted) == 2
    await pool.aclose()


@pytest.mark.parametrize(
    "headers", [{"x-a": "b\r\nx-injected: 1"}, {"x-a\r\n": "b"}, {"x:a": "b"}, {"": "b"}]
)
async def test_a_header_that_would_change_the_request_is_refused(headers: dict[str, str]) -> None:
    pool = Http1Pool()
    async with serving(keep_answering) as (base, accepted):
        with pytest.raises(RegionTransportError):
            await pool.request("GET", f"{base}/x", headers=headers, timeout_s=2, max_body_bytes=9)
        assert not accepted
    await pool.aclose()


async def test_an_unreadable_answer_is_a_transport_error() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        await writer.drain()

    pool = Http1Pool()
    async with serving(garbage) as (base, _):
        with pytest.raises(RegionTransportError):
            await pool.request("GET", f"{base}/x", headers={}, timeout_s=2, max_body_bytes=99)
    await pool.aclose()


def _self_signed(tmp_path: Path) -> tuple[ssl.SSLContext, Path]:
    """A server TLS context for 127.0.0.1 with a fresh self-signed certificate, and its file."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    return server, cert_file


async def test_tls_to_a_trusted_region_works_and_an_untrusted_certificate_is_a_tls_failure(
    tmp_path: Path,
) -> None:
    server_tls, cert_file = _self_signed(tmp_path)
    server = await asyncio.start_server(keep_answering, "127.0.0.1", 0, ssl=server_tls)
    port = server.sockets[0].getsockname()[1]
    url = f"https://127.0.0.1:{port}/fhir/x"
    try:
        untrusting = Http1Pool()  # the system's CAs: the self-signed certificate is refused
        with pytest.raises(RegionTransportError, match="TLS failure"):
            await untrusting.request("GET", url, headers={}, timeout_s=2, max_body_bytes=99)
        await untrusting.aclose()
        trusting = Http1Pool(ssl_context=ssl.create_default_context(cafile=str(cert_file)))
        for _ in range(2):
            got = await trusting.request("GET", url, headers={}, timeout_s=2, max_body_bytes=99)
            assert got.status == 200 and got.body.startswith(b'{"seen":')
        await trusting.aclose()
    finally:
        server.close()
