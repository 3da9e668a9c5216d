"""Real HTTP(S) servers on 127.0.0.1 whose answers each test sets (pages, redirects, slow
and endless bodies), a resolver that knows made-up names, and a test CA. The function
tests of ``urls`` serve from these too."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from loom.web import AddressPolicy, Fetcher, FetchOptions, IPAddress, Resolver, system_resolve


@dataclass
class Answer:
    """What the site answers on one path: a status, headers and a body, the body either
    whole or in ``chunks`` written ``pause`` seconds apart (no Content-Length then)."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    chunks: Iterator[bytes] | list[bytes] | None = None
    pause: float = 0.0


@dataclass
class Site:
    """A real HTTP server; ``answers`` maps a path to its Answer, ``asked`` lists every
    request as {path, query, host, user_agent, sni, accept, accept_encoding}."""

    host: str
    port: int = 0
    scheme: str = "http"
    answers: dict[str, Answer] = field(default_factory=dict)
    asked: list[dict[str, Any]] = field(default_factory=list)

    def url(self, path: str = "/", host: str | None = None) -> str:
        name = host or self.host
        return f"{self.scheme}://{name}:{self.port}{path}"

    def page(self, path: str, body: bytes | str, content_type: str, status: int = 200,
             **headers: str) -> str:  # fmt: skip
        data = body.encode() if isinstance(body, str) else body
        self.answers[path] = Answer(status, {"Content-Type": content_type, **headers}, data)
        return self.url(path)

    def redirect(self, path: str, to: str, status: int = 302) -> str:
        self.answers[path] = Answer(status, {"Location": to})
        return self.url(path)

    def paths(self) -> list[str]:
        return [a["path"] for a in self.asked]


def serve(site: Site, tls: ssl.SSLContext | None = None) -> Iterator[Site]:
    """Runs ``site`` (over TLS with ``tls``) until the generator is closed."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            split = urlsplit(self.path)
            sni = getattr(self.connection, "sni", None)
            site.asked.append({"path": split.path, "query": parse_qs(split.query),
                               "host": self.headers.get("Host"), "sni": sni,
                               "user_agent": self.headers.get("User-Agent"),
                               "accept": self.headers.get("Accept"),
                               "accept_encoding": self.headers.get("Accept-Encoding")})  # fmt: skip
            answer = site.answers.get(split.path, Answer(404, {"Content-Type": "text/plain"},
                                                         b"not here"))  # fmt: skip
            try:
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                if answer.chunks is None and "Content-Length" not in answer.headers:
                    self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                if answer.chunks is None:
                    self.wfile.write(answer.body)
                    return
                for chunk in answer.chunks:
                    self.wfile.write(chunk)
                    self.wfile.flush()
                    time.sleep(answer.pause)
            except OSError:  # the client stopped reading
                pass

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((site.host, 0), Handler)
    server.daemon_threads = True
    if tls is not None:
        site.scheme = "https"

        def remember_sni(conn: ssl.SSLSocket, name: str | None, _: ssl.SSLContext) -> None:
            conn.sni = name  # type: ignore[attr-defined]

        tls.sni_callback = remember_sni
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    site.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield site
    finally:
        server.shutdown()
        server.server_close()


def serve_inner() -> Iterator[Site]:
    """A second server, on 127.0.0.2: an address a redirect must not reach."""
    try:
        yield from serve(Site("127.0.0.2"))
    except OSError as exc:  # pragma: no cover - systems without all of 127/8 on lo
        pytest.skip(f"cannot listen on 127.0.0.2: {exc}")


def hosts(names: dict[str, list[str]]) -> Resolver:
    """A resolver that knows ``names`` (each asked once more than the last: a list of
    answers, one per question, the last repeated) and asks the system for the rest."""
    asked: dict[str, int] = {}

    async def resolve(host: str, port: int) -> list[IPAddress]:
        if host not in names:
            return await system_resolve(host, port)
        n = asked[host] = asked.get(host, 0) + 1
        answers = names[host]
        return [ipaddress.ip_address(answers[min(n, len(answers)) - 1])]

    resolve.asked = asked  # type: ignore[attr-defined]
    return resolve


def closed_port() -> int:
    """A port on 127.0.0.1 where nobody listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def tls_contexts(tmp_path: Path, name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a certificate for ``name`` signed by a new CA, and a client
    context that trusts that CA (and nothing else)."""
    x509 = pytest.importorskip("cryptography.x509", reason="needs cryptography for a test CA")
    import datetime

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def issue(subject: str, key: Any, issuer: Any, signer: Any, *, ca: bool) -> Any:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            names = x509.SubjectAlternativeName([x509.DNSName(subject)])
            builder = builder.add_extension(names, critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Loom test CA")])
    ca = issue("Loom test CA", ca_key, ca_name, ca_key, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = issue(name, key, ca_name, ca_key, ca=False)
    pem = serialization.Encoding.PEM
    (tmp_path / "server.pem").write_bytes(cert.public_bytes(pem))
    (tmp_path / "server.key").write_bytes(key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))  # fmt: skip
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tmp_path / "server.pem", tmp_path / "server.key")
    client = ssl.create_default_context(cadata=ca.public_bytes(pem).decode())
    return server, client


def serve_tls(tmp_path: Path) -> Iterator[tuple[Site, ssl.SSLContext]]:
    """An HTTPS server on 127.0.0.1 with a certificate for ``archive.test``, and a client
    context that trusts it."""
    server, client = tls_contexts(tmp_path, "archive.test")
    for served in serve(Site("127.0.0.1"), server):
        yield served, client


@pytest.fixture
def site() -> Iterator[Site]:
    yield from serve(Site("127.0.0.1"))


@pytest.fixture
def inner_site() -> Iterator[Site]:
    yield from serve_inner()


@pytest.fixture
def tls_site(tmp_path: Path) -> Iterator[tuple[Site, ssl.SSLContext]]:
    yield from serve_tls(tmp_path)


Make = Callable[..., Awaitable[Fetcher]]
LOCAL = AddressPolicy(allow_private=True)  # the test servers are on loopback


@pytest.fixture
async def fetcher() -> AsyncIterator[Make]:
    """Builds fetchers (closed after the test) from FetchOptions fields, short timeouts
    unless said; ``resolve`` and ``verify`` go to the Fetcher."""
    async with AsyncExitStack() as stack:

        async def build(
            *, resolve: Resolver = system_resolve, verify: ssl.SSLContext | bool = True,
            **options: Any,
        ) -> Fetcher:  # fmt: skip
            options = {"connect_timeout_seconds": 2.0, "read_timeout_seconds": 2.0,
                       "total_timeout_seconds": 5.0, **options}  # fmt: skip
            made = Fetcher(FetchOptions(**options), resolve=resolve, verify=verify)
            stack.push_async_callback(made.aclose)
            return made

        yield build
