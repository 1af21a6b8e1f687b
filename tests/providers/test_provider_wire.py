"""The HTTP/1.1 exchange under the adapters: framing, connection reuse, proxies and TLS.

The framing tests feed a response through a scripted socket, cut at every byte;
the others go through real sockets: a forwarding proxy and a TLS front in threads
before a mock upstream.
"""

from __future__ import annotations

import contextlib
import datetime
import gzip
import itertools
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flask_ai_sse.errors import ProviderConnectionError
from flask_ai_sse.providers._http1 import Headers, UpstreamBroken, UpstreamResponse, _read_head
from flask_ai_sse.testing.upstream import MockReply, MockUpstream

from .provider_kit import make_provider, request_for

# -- framing, through a scripted socket ----------------------------------------------------------


class ScriptedSocket:
    """``recv`` hands out the scripted pieces in order, then EOF."""

    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = list(pieces)

    def recv(self, _size: int) -> bytes:
        return self.pieces.pop(0) if self.pieces else b""


class RecordingPool:
    def __init__(self) -> None:
        self.returned: list[Any] = []

    def _put_conn(self, conn: Any) -> None:
        self.returned.append(conn)


class Connection:
    closed = False

    def close(self) -> None:
        self.closed = True


def respond(raw: bytes, cuts: list[int] | None = None) -> tuple[UpstreamResponse, RecordingPool]:
    """A response read from ``raw`` arriving in pieces cut at ``cuts``."""
    cuts = [0, *(cuts or []), len(raw)]
    sock = ScriptedSocket([raw[a:b] for a, b in itertools.pairwise(cuts) if b > a])
    pool = RecordingPool()
    status, http11, headers, rest = _read_head(sock)
    response = UpstreamResponse(pool, Connection(), sock, status, headers, rest, http11=http11)
    return response, pool


def body(response: UpstreamResponse) -> bytes:
    pieces = []
    while piece := response.read():
        pieces.append(piece)
    return b"".join(pieces)


HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
CHUNKED = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: yes\r\n\r\n"


def test_chunked_body_cut_at_every_byte_is_read_whole_and_pooled() -> None:
    raw = HEAD + CHUNKED
    for cut in range(1, len(raw)):
        response, pool = respond(raw, [cut])
        assert body(response) == b"hello, world", cut
        assert response.complete
        response.close()
        assert len(pool.returned) == 1 and isinstance(pool.returned[0], Connection), cut


def test_chunked_body_byte_by_byte() -> None:
    raw = HEAD + CHUNKED
    response, pool = respond(raw, list(range(1, len(raw))))
    assert body(response) == b"hello, world"
    response.close()
    assert isinstance(pool.returned[0], Connection)


def test_eof_inside_a_chunked_body_is_a_break() -> None:
    response, pool = respond(HEAD + b"5\r\nhello\r\n7\r\n, wo")
    with pytest.raises(UpstreamBroken):
        body(response)
    response.close()
    assert pool.returned == [None]  # the connection closed, its slot given back


def test_malformed_chunk_size_is_a_break() -> None:
    response, _ = respond(HEAD + b"zz\r\nhello\r\n")
    with pytest.raises(UpstreamBroken):
        body(response)


def test_eof_inside_a_content_length_body_is_a_break() -> None:
    response, _ = respond(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel", [20])
    assert response.read() == b"hel"
    with pytest.raises(UpstreamBroken):
        response.read()  # EOF after 3 of 5 bytes
    assert not response.complete


def test_content_length_body_complete_is_pooled() -> None:
    response, pool = respond(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", [20])
    assert body(response) == b"hello"
    response.close()
    assert isinstance(pool.returned[0], Connection)


def test_close_delimited_body_ends_at_eof_and_is_not_pooled() -> None:
    response, pool = respond(b"HTTP/1.1 200 OK\r\n\r\ndata: a\n\ndata: b\n\n", [25])
    assert body(response) == b"data: a\n\ndata: b\n\n"
    response.close()
    assert pool.returned == [None] and response.complete


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n",
    ],
)
def test_connections_the_server_closes_are_not_pooled(head: bytes) -> None:
    response, pool = respond(head + b"ok")
    assert body(response) == b"ok"
    response.close()
    assert pool.returned == [None]


def test_gzip_content_encoding_is_decoded() -> None:
    compressed = gzip.compress(b"data: zipped\n\n")
    raw = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"
    raw += b"%x\r\n%s\r\n0\r\n\r\n" % (len(compressed), compressed)
    response, _ = respond(raw, [len(raw) - 9])
    assert body(response) == b"data: zipped\n\n"


def test_head_interim_answers_folded_and_repeated_headers() -> None:
    raw = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\nX-Long: a\r\n  b\r\n"
        b"Vary: one\r\nvary: two\r\nContent-Length: 0\r\n\r\n"
    )
    response, _ = respond(raw, [10, 30])
    assert response.status_code == 429
    headers = response.headers
    assert isinstance(headers, Headers)
    assert headers["retry-after"] == headers.get("Retry-After") == "7"
    assert "RETRY-AFTER" in headers
    assert headers["x-long"] == "a b" and headers["vary"] == "one, two"
    assert body(response) == b""


@pytest.mark.parametrize("raw", [b"", b"HTTP/1.1 200", b"SSH-2.0-OpenSSH\r\n\r\n"])
def test_no_valid_head_is_a_break(raw: bytes) -> None:
    with pytest.raises(UpstreamBroken):
        _read_head(ScriptedSocket([raw]))


# -- a forwarding proxy -------------------------------------------------------------------------


def pipe(source: socket.socket, sink: socket.socket) -> None:
    """Copy until EOF or an error, then half-close the sink."""
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


class Front:
    """A one-port server in threads that hands each accepted socket to ``serve``."""

    def __init__(self, serve: Any) -> None:
        self.serve = serve
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.seen: list[bytes] = []
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(self, client), daemon=True).start()

    def close(self) -> None:
        self.listener.close()


def relay(front: Front, client: socket.socket, upstream_port: int, first: bytes) -> None:
    upstream = socket.create_connection(("127.0.0.1", upstream_port), timeout=10)
    upstream.sendall(first)
    back = threading.Thread(target=pipe, args=(upstream, client), daemon=True)
    back.start()
    pipe(client, upstream)
    back.join(10)
    client.close()
    upstream.close()


@pytest.fixture
def forward_proxy(openai_mock: MockUpstream) -> Iterator[Front]:
    """An HTTP forward proxy that sends every request to the mock, in origin form."""

    def serve(front: Front, client: socket.socket) -> None:
        client.settimeout(10)
        head = b""
        while b"\r\n" not in head:
            head += client.recv(65536)
        line, rest = head.split(b"\r\n", 1)
        front.seen.append(line)
        method, target, version = line.split(b" ")
        path = b"/" + target.split(b"/", 3)[3]  # http://host/path -> /path
        relay(front, client, openai_mock.port, b" ".join([method, path, version]) + b"\r\n" + rest)

    front = Front(serve)
    yield front
    front.close()


def test_requests_go_through_the_environment_proxy(
    openai_mock: MockUpstream, forward_proxy: Front, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{forward_proxy.port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    provider = make_provider(openai_mock, base_url="http://upstream.invalid:8080/v1")
    openai_mock.script(MockReply(text="via the proxy"))
    with provider.open(request_for(provider)) as stream:
        text = "".join(chunk.text for chunk in stream if chunk.kind == "text")
    assert text == "via the proxy"
    # Absolute form to a forwarding proxy, with the origin's Host.
    assert forward_proxy.seen == [b"POST http://upstream.invalid:8080/v1/chat/completions HTTP/1.1"]
    assert openai_mock.last_request.headers["host"] == "upstream.invalid:8080"
    provider.close()


# -- TLS ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for ``localhost`` and its key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
def tls_front(openai_mock: MockUpstream, certificate: tuple[Path, Path]) -> Iterator[Front]:
    """TLS terminated in front of the mock, as a provider's HTTPS endpoint."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)

    def serve(front: Front, client: socket.socket) -> None:
        try:
            secure = context.wrap_socket(client, server_side=True)
        except (OSError, ssl.SSLError):
            client.close()
            return
        secure.settimeout(10)
        relay(front, secure, openai_mock.port, b"")

    front = Front(serve)
    yield front
    front.close()


def test_https_with_the_configured_ca_bundle(
    openai_mock: MockUpstream,
    tls_front: Front,
    certificate: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certificate[0]))
    provider = make_provider(openai_mock, base_url=f"https://localhost:{tls_front.port}/v1")
    openai_mock.script(MockReply(text="over TLS"))
    for _ in range(2):  # the second on the pooled TLS connection
        with provider.open(request_for(provider)) as stream:
            assert "".join(c.text for c in stream if c.kind == "text") == "over TLS"
    assert openai_mock.stats()["connections_total"] == 1
    assert openai_mock.last_request.headers["host"] == f"localhost:{tls_front.port}"
    provider.close()


def test_https_refuses_an_unknown_certificate(
    openai_mock: MockUpstream, tls_front: Front, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    provider = make_provider(
        openai_mock, base_url=f"https://localhost:{tls_front.port}/v1", max_retries=0
    )
    with pytest.raises(ProviderConnectionError, match="Could not reach"):
        provider.open(request_for(provider))
    assert openai_mock.requests == []
    provider.close()
