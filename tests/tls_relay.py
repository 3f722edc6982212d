"""Servers that speak TLS, for tests: a real server behind a relay that ends TLS in front of it.

Tansu 0.6.0 and the tests' Redis listen in plaintext only. The relay takes TLS connections on its
own port with a certificate signed by a CA made here and passes the bytes both ways to the server.
Tansu advertises the relay's port, so every connection a Kafka client makes (bootstrap, then the
brokers the metadata names) is TLS.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ingest import broker, kafka
from tests.conftest import free_port


@dataclass(frozen=True)
class TlsKafka:
    """Where the TLS Kafka listens and the CA file that verifies its certificate."""

    bootstrap: str
    ca: Path


def _certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate it signed for 127.0.0.1: (ca.pem, server.pem, server.key)."""
    now = datetime.datetime.now(datetime.UTC)
    valid = {
        "not_valid_before": now - datetime.timedelta(hours=1),
        "not_valid_after": now + datetime.timedelta(days=1),
    }
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tickstore test CA")])
    ca = (
        x509.CertificateBuilder(subject_name=ca_name, issuer_name=ca_name, **valid)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder(
            subject_name=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]),
            issuer_name=ca_name,
            **valid,
        )
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return paths


def _pump(source: socket.socket, target: socket.socket) -> None:
    """Bytes from ``source`` to ``target`` until either side closes; then both are shut."""
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass
    finally:
        for side in (source, target):
            with suppress(OSError):
                side.shutdown(socket.SHUT_RDWR)


def _relay(listener: socket.socket, context: ssl.SSLContext, upstream: int) -> None:
    """Accept TLS connections on ``listener`` and pass each through to 127.0.0.1:``upstream``."""

    def handle(conn: socket.socket) -> None:
        try:
            secure = context.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError):  # a client that does not trust the certificate, or no TLS
            conn.close()
            return
        with secure:
            try:
                plain = socket.create_connection(("127.0.0.1", upstream))
            except OSError:  # the server is gone: so is the client's connection
                return
            with plain:
                back = threading.Thread(target=_pump, args=(secure, plain), daemon=True)
                back.start()
                _pump(plain, secure)
                back.join()  # both directions done (each shuts both sides as it ends): then closed

    while True:
        try:
            conn, _ = listener.accept()
        except OSError:  # closed: the fixture is done
            return
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


@dataclass(frozen=True)
class Relay:
    """Where the relay takes TLS connections, and the CA file that verifies its certificate."""

    port: int
    ca: Path


@contextmanager
def tls_relay(folder: Path, upstream: int) -> Iterator[Relay]:
    """TLS on a port of its own in front of the plaintext server at 127.0.0.1:``upstream``."""
    ca, cert, key = _certificates(folder)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    threading.Thread(target=_relay, args=(listener, context, upstream), daemon=True).start()
    try:
        yield Relay(listener.getsockname()[1], ca)
    finally:
        listener.close()


@contextmanager
def tls_kafka(folder: Path) -> Iterator[TlsKafka]:
    """A Tansu broker reached only over TLS, for as long as the context lasts."""
    plain = free_port()
    with tls_relay(folder, plain) as relay, (folder / "tansu.log").open("wb") as log:
        tansu = subprocess.Popen(
            [str(broker.tansu_binary()), "broker", "--listener-url", f"tcp://127.0.0.1:{plain}"]
            + ["--advertised-listener-url", f"tcp://127.0.0.1:{relay.port}"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 10
            while kafka._refused(f"127.0.0.1:{plain}", 0.2) and time.monotonic() < deadline:
                time.sleep(0.05)
            yield TlsKafka(f"127.0.0.1:{relay.port}", relay.ca)
        finally:
            tansu.kill()
            tansu.wait()
