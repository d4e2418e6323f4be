"""Real peers for the outbox tests: the back office (with the submissions router) as a
subprocess, optionally behind TLS; a fault-injecting HTTP proxy in front of it; and read-only
access to its database to count what it really holds."""

from __future__ import annotations

import collections
import datetime as dt
import hashlib
import json
import random
import socket
import ssl
import struct
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from backoffice.db import normalise_url
from kiosk.launcher import HOST, EmbeddedBackOffice, EmbeddedBackOfficeError

REPO = Path(__file__).resolve().parents[2]


class SubmissionsBackOffice(EmbeddedBackOffice):
    """``EmbeddedBackOffice`` (the real ``kiosk-backoffice``), optionally with TLS:
    ``tls=(certfile, keyfile, client_ca or None, ca_for_health)``."""

    def __init__(self, *args: Any, tls: tuple[Path, Path, Path | None, Path] | None = None,
                 **kwargs: Any) -> None:
        kwargs.setdefault("cwd", REPO)
        super().__init__(*args, **kwargs)
        self.tls = tls

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{HOST}:{self.port}"

    def command(self) -> list[str]:
        cmd = super().command()
        if self.tls is not None:
            certfile, keyfile, client_ca, _ca = self.tls
            cmd += ["--tls-cert", str(certfile), "--tls-key", str(keyfile)]
            if client_ca is not None:
                cmd += ["--client-ca", str(client_ca)]
        return cmd

    def _wait_healthy(self) -> None:
        if self.tls is None:
            super()._wait_healthy()
            return
        # Over TLS the health check needs the CA, and under mutual TLS any certificate the
        # server trusts; a plain TCP accept is enough to know uvicorn is listening.
        deadline = time.monotonic() + self.startup_timeout_s
        while True:
            assert self._process is not None
            if self._process.poll() is not None:
                raise EmbeddedBackOfficeError(f"TLS back office exited:\n{self.output_tail()}")
            with socket.socket() as sock:
                sock.settimeout(0.5)
                if sock.connect_ex((HOST, self.port)) == 0:
                    return
            if time.monotonic() > deadline:
                raise EmbeddedBackOfficeError(f"TLS back office not up:\n{self.output_tail()}")
            time.sleep(0.05)


# --- what the back office holds --------------------------------------------------------------

@dataclass(frozen=True)
class StoredApplication:
    tracking_number: str
    local_tracking_number: str
    marker: str | None
    material_digests: tuple[str, ...]


def stored_applications(db_url: str, kiosk_id: str) -> list[StoredApplication]:
    """Every application the back office stored from ``kiosk_id``, read straight from its
    database (SQLite file or PostgreSQL), with the form's ``marker`` and the materials' digests."""
    engine = sqlalchemy.create_engine(normalise_url(db_url))
    try:
        with engine.connect() as connection:
            rows = connection.execute(sqlalchemy.text(
                "SELECT tracking_number, local_tracking_number, form FROM applications "
                "WHERE kiosk_id = :kiosk ORDER BY tracking_number"), {"kiosk": kiosk_id}).all()
            digests: dict[str, list[str]] = collections.defaultdict(list)
            for number, digest in connection.execute(sqlalchemy.text(
                    "SELECT m.tracking_number, m.sha256 FROM application_materials m "
                    "JOIN applications a ON a.tracking_number = m.tracking_number "
                    "WHERE a.kiosk_id = :kiosk ORDER BY m.tracking_number, m.position"),
                    {"kiosk": kiosk_id}):
                digests[number].append(digest)
    finally:
        engine.dispose()
    # SQLite hands JSON columns back as text through text(), PostgreSQL as a dict.
    forms = [form if isinstance(form, dict) else json.loads(form) for _t, _l, form in rows]
    return [StoredApplication(t, local, form.get("marker"), tuple(digests[t]))
            for (t, local, _f), form in zip(rows, forms, strict=True)]


def material_bytes(marker: str, position: int, size: int) -> bytes:
    """The deterministic content of a test material, so the test can recompute its digest."""
    return random.Random(f"{marker}/{position}").randbytes(size)


def material_digest(marker: str, position: int, size: int) -> str:
    return hashlib.sha256(material_bytes(marker, position, size)).hexdigest()


# --- a proxy that misbehaves on purpose ------------------------------------------------------

FAULTS = ("pass", "reset", "slow_before", "slow_after", "500", "500_after", "garbage",
          "garbage_after", "html_404")
BATCH_PATH_SUFFIX = ":batch"


class FaultProxy:
    """HTTP proxy to ``upstream`` that applies one fault per request, from a script then the
    default mode:

    - ``pass``: forward and relay the answer;
    - ``reset``: drop the connection without forwarding (back office down);
    - ``slow_before``: hold ``hold_s`` (past the client's timeout), then forward anyway: the
      back office stores it after the kiosk gave up, possibly after the kiosk's resend;
    - ``slow_after``: forward, then hold the answer past the client's timeout (answer lost);
    - ``500`` / ``500_after``: answer 500 without / after forwarding;
    - ``garbage`` / ``garbage_after``: answer 200 with random bytes without / after forwarding;
    - ``html_404``: a foreign 404 page (a misconfigured gateway);
    - ``refuse_batch``: the contract's 404 for ``/applications:batch``, as a back office from
      before batches answers it; everything else passes;
    - ``hold``: forward only once :meth:`release` is called (a hung back office).

    ``paths`` lists the path of every request, in arrival order.
    """

    def __init__(self, upstream: str, hold_s: float = 1.0, seed: int = 0) -> None:
        self.upstream = upstream.rstrip("/")
        self.hold_s = hold_s
        self.default = "pass"
        self.applied: list[str] = []
        self.paths: list[str] = []
        self.forwarded = 0
        self.holding = threading.Event()
        self._script: collections.deque[str] = collections.deque()
        self._released = threading.Event()
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._http = httpx.Client(base_url=self.upstream, timeout=30, trust_env=False)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def do_GET(self) -> None:  # noqa: N802
                proxy._handle(self)

            def do_POST(self) -> None:  # noqa: N802
                proxy._handle(self)

        self._server = ThreadingHTTPServer((HOST, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self._server.server_address[1]}"

    def script(self, modes: Iterable[str]) -> None:
        with self._lock:
            self._script.extend(modes)

    def release(self) -> None:
        self._released.set()

    def close(self) -> None:
        self._closing.set()
        self._released.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
        self._http.close()

    def _next_mode(self) -> str:
        with self._lock:
            mode = self._script.popleft() if self._script else self.default
            self.applied.append(mode)
            return mode

    def _forward(self, handler: BaseHTTPRequestHandler, body: bytes) -> httpx.Response:
        headers = {k: v for k, v in handler.headers.items()
                   if k.lower() in ("content-type", "idempotency-key", "accept", "user-agent")}
        try:
            response = self._http.request(handler.command, handler.path, content=body,
                                          headers=headers)
        except httpx.HTTPError:
            return httpx.Response(502, content=b"bad gateway")
        with self._lock:
            self.forwarded += 1
        return response

    def _send(self, handler: BaseHTTPRequestHandler, status: int, body: bytes,
              headers: dict[str, str] | None = None) -> None:
        try:
            handler.send_response(status)
            for name, value in (headers or {}).items():
                handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
        except OSError:
            handler.close_connection = True  # the client gave up; that is the point

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        with self._lock:
            self.paths.append(handler.path)
        mode = self._next_mode()
        if mode == "refuse_batch":
            if handler.path.endswith(BATCH_PATH_SUFFIX):
                self._send(handler, 404, b'{"error":"not_found","message":"Not Found"}',
                           {"Content-Type": "application/json"})
                handler.close_connection = True
                return
            mode = "pass"
        if mode == "reset":
            # RST instead of FIN: what a client sees when the server vanished mid-request.
            handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                          struct.pack("ii", 1, 0))
            handler.close_connection = True
            return
        if mode == "hold":
            self.holding.set()
            self._released.wait()
            self.holding.clear()
        if mode == "slow_before":
            self._closing.wait(self.hold_s)
        response = None
        if mode in ("pass", "hold", "slow_before", "slow_after", "500_after", "garbage_after"):
            response = self._forward(handler, body)
        if mode == "slow_after":
            self._closing.wait(self.hold_s)
        if mode in ("500", "500_after"):
            self._send(handler, 500, b"Internal Server Error", {"Content-Type": "text/plain"})
        elif mode in ("garbage", "garbage_after"):
            self._send(handler, 200, self._rng.randbytes(self._rng.randint(0, 64)),
                       {"Content-Type": "application/json"})
        elif mode == "html_404":
            self._send(handler, 404, b"<html>Not Found</html>", {"Content-Type": "text/html"})
        else:
            assert response is not None
            keep = {k: v for k, v in response.headers.items()
                    if k.lower() in ("content-type", "idempotent-replayed")}
            self._send(handler, response.status_code, response.content, keep)
        handler.close_connection = True


# --- certificates ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path  # a CA that signed nothing here: trusting it must refuse the server
    other_client_cert: Path  # signed by other_ca: the server must refuse it
    other_client_key: Path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> Path:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)
    return path


def _write_cert(path: Path, cert: x509.Certificate) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _ca(common_name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(_name(common_name))
            .issuer_name(_name(common_name)).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                         crl_sign=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return cert, key


def _leaf(common_name: str, ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey,
          server: bool) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateBuilder().subject_name(_name(common_name))
               .issuer_name(ca.subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(days=1))
               .not_valid_after(now + dt.timedelta(days=30))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                   ca_key.public_key()), critical=False)
               .add_extension(x509.ExtendedKeyUsage(
                   [ExtendedKeyUsageOID.SERVER_AUTH if server
                    else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False))
    if server:
        import ipaddress

        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address(HOST)), x509.DNSName("localhost")]),
            critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def make_pki(folder: Path) -> Pki:
    folder.mkdir(parents=True, exist_ok=True)
    ca, ca_key = _ca("Zizhu test back-office CA")
    other, other_key = _ca("Somebody else's CA")
    server, server_key = _leaf(HOST, ca, ca_key, server=True)
    client, client_key = _leaf("KIOSK-TEST-01", ca, ca_key, server=False)
    stranger, stranger_key = _leaf("KIOSK-STRANGER", other, other_key, server=False)
    return Pki(
        ca=_write_cert(folder / "ca.pem", ca),
        server_cert=_write_cert(folder / "server.pem", server),
        server_key=_write_key(folder / "server.key", server_key),
        client_cert=_write_cert(folder / "client.pem", client),
        client_key=_write_key(folder / "client.key", client_key),
        other_ca=_write_cert(folder / "other-ca.pem", other),
        other_client_cert=_write_cert(folder / "stranger.pem", stranger),
        other_client_key=_write_key(folder / "stranger.key", stranger_key))


def tls_context_for(ca: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca))
