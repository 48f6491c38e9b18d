"""TLS contexts with real certificates (openssl CLI) and real loopback handshakes, incl. hot reload."""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
import threading
import warnings
from pathlib import Path

import pytest
from relay_testkit import make_cert

from relay.policy.tls import (
    DEFAULT_TLS12_CIPHERS,
    ServerTls,
    TlsConfigError,
    build_server_context,
    select_tls12_ciphers,
)

HOST = "relay.test"


def der(cert_file: str) -> bytes:
    return ssl.PEM_cert_to_DER_cert(Path(cert_file).read_text())


def client_context(cafile: str, **versions) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=cafile)
    for attribute, value in versions.items():
        setattr(context, attribute, value)
    return context


async def echo_server(context: ssl.SSLContext) -> tuple[asyncio.AbstractServer, int]:
    async def handle(reader, writer):
        try:
            while data := await reader.read(100):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    return server, server.sockets[0].getsockname()[1]


async def connect(port: int, context: ssl.SSLContext, server_hostname: str | None = HOST):
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname=server_hostname, ssl_handshake_timeout=5
    )
    return reader, writer


async def roundtrip(reader, writer, payload: bytes) -> bytes:
    writer.write(payload)
    await writer.drain()
    return await asyncio.wait_for(reader.readexactly(len(payload)), 5)


def test_handshake_policy_and_reload_without_dropping_sessions(tmp_path):
    cert1, key1 = make_cert(tmp_path, "first", "rsa")
    cert2, key2 = make_cert(tmp_path, "second", "ec")
    live_cert, live_key = tmp_path / "live.crt", tmp_path / "live.key"
    shutil.copy(cert1, live_cert)
    shutil.copy(key1, live_key)
    tls = ServerTls(str(live_cert), str(live_key))

    async def scenario():
        server, port = await echo_server(tls.listener_context)
        try:
            reader_a, writer_a = await connect(port, client_context(cert1))
            ssl_a = writer_a.get_extra_info("ssl_object")
            assert ssl_a.getpeercert(binary_form=True) == der(cert1)
            assert ssl_a.version() in ("TLSv1.2", "TLSv1.3")
            assert ssl_a.compression() is None
            assert await roundtrip(reader_a, writer_a, b"before reload") == b"before reload"

            # certbot-style renewal: new files at the same paths, then SIGHUP -> reload().
            shutil.copy(cert2, live_cert)
            shutil.copy(key2, live_key)
            tls.reload()
            assert tls.generation == 2

            # The established session keeps working on its original certificate.
            assert await roundtrip(reader_a, writer_a, b"after reload") == b"after reload"
            # New connections, with SNI and without, get the new certificate from the same listener.
            reader_b, writer_b = await connect(port, client_context(cert2))
            assert writer_b.get_extra_info("ssl_object").getpeercert(binary_form=True) == der(cert2)
            assert await roundtrip(reader_b, writer_b, b"new") == b"new"
            no_sni = client_context(cert2)
            no_sni.check_hostname = False
            _, writer_c = await connect(port, no_sni, server_hostname=None)
            assert writer_c.get_extra_info("ssl_object").getpeercert(binary_form=True) == der(cert2)

            # A broken renewal (key of another cert) is refused and the good certificate stays.
            shutil.copy(key1, live_key)
            with pytest.raises(TlsConfigError, match="does not belong to the certificate"):
                tls.reload()
            assert tls.generation == 2
            _, writer_d = await connect(port, client_context(cert2))
            assert writer_d.get_extra_info("ssl_object").getpeercert(binary_form=True) == der(cert2)
            for writer in (writer_a, writer_b, writer_c, writer_d):
                writer.close()
        finally:
            server.close()
            await server.wait_closed()

    asyncio.run(asyncio.wait_for(scenario(), 30))


def handshake(server_context: ssl.SSLContext, client: ssl.SSLContext) -> tuple[str | None, str | None]:
    """One real handshake over loopback TCP; returns (server error, negotiated cipher or None)."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    outcome: dict[str, str] = {}

    def serve() -> None:
        connection, _ = listener.accept()
        try:
            with server_context.wrap_socket(connection, server_side=True) as tls:
                outcome["cipher"] = tls.cipher()[0]
                tls.recv(1)
        except (ssl.SSLError, OSError) as exc:
            outcome["error"] = str(exc)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        raw_socket = socket.create_connection(("127.0.0.1", port), timeout=5)
        with raw_socket, client.wrap_socket(raw_socket, server_hostname=HOST) as tls:
            tls.sendall(b"x")
    except (ssl.SSLError, OSError):
        pass
    thread.join(5)
    listener.close()
    return outcome.get("error"), outcome.get("cipher")


def test_old_protocols_and_weak_ciphers_are_refused(tmp_path):
    cert, key = make_cert(tmp_path, "rsa", "rsa")
    context = build_server_context(cert, key)

    tls11 = client_context(cert)
    tls11.set_ciphers("DEFAULT:@SECLEVEL=0")  # let the client really offer TLS 1.1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        tls11.minimum_version = ssl.TLSVersion.TLSv1_1
        tls11.maximum_version = ssl.TLSVersion.TLSv1_1
    error, cipher = handshake(context, tls11)
    assert cipher is None and error is not None and "UNSUPPORTED_PROTOCOL" in error

    rsa_kx = client_context(cert, maximum_version=ssl.TLSVersion.TLSv1_2)
    rsa_kx.set_ciphers("AES128-GCM-SHA256:AES256-SHA")  # RSA key exchange: no forward secrecy
    error, cipher = handshake(context, rsa_kx)
    assert cipher is None and error is not None and "NO_SHARED_CIPHER" in error

    error, cipher = handshake(context, client_context(cert, maximum_version=ssl.TLSVersion.TLSv1_2))
    assert error is None and cipher is not None
    assert cipher.startswith("ECDHE-RSA-") and ("GCM" in cipher or "CHACHA20" in cipher)


def test_tls13_minimum(tmp_path):
    cert, key = make_cert(tmp_path, "ec")
    context = build_server_context(cert, key, "TLSv1.3")
    error, cipher = handshake(context, client_context(cert, maximum_version=ssl.TLSVersion.TLSv1_2))
    assert cipher is None and error is not None and "UNSUPPORTED_PROTOCOL" in error
    error, cipher = handshake(context, client_context(cert))
    assert error is None and cipher is not None and cipher.startswith("TLS_")


def test_context_flags_on_a_real_context(tmp_path):
    cert, key = make_cert(tmp_path, "flags")
    context = build_server_context(cert, key)
    for flag in (ssl.OP_NO_COMPRESSION, ssl.OP_CIPHER_SERVER_PREFERENCE, ssl.OP_NO_RENEGOTIATION, ssl.OP_NO_TICKET):
        assert context.options & flag, flag
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    tls12 = [c for c in context.get_ciphers() if c["protocol"] == "TLSv1.2"]
    assert tls12 and all(c["kea"] == "kx-ecdhe" and c["aead"] for c in tls12)


@pytest.mark.parametrize(
    ("ciphers", "kept", "dropped"),
    [
        (DEFAULT_TLS12_CIPHERS, "ECDHE-ECDSA-AES256-GCM-SHA384", []),
        (
            "ECDHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES128-GCM-SHA256:AES128-SHA:ECDHE-RSA-AES128-SHA",
            "ECDHE-RSA-AES128-GCM-SHA256",
            ["DHE-RSA-AES128-GCM-SHA256", "AES128-SHA", "ECDHE-RSA-AES128-SHA"],
        ),
    ],
)
def test_cipher_list_is_narrowed_never_widened(ciphers, kept, dropped):
    selected, removed = select_tls12_ciphers(ciphers)
    assert kept in selected.split(":")
    assert removed == dropped


@pytest.mark.parametrize(("ciphers", "message"), [("AES128-SHA", "no acceptable"), ("nonsense", "accepts no cipher")])
def test_unusable_cipher_lists(ciphers, message, tmp_path):
    with pytest.raises(TlsConfigError, match=message):
        select_tls12_ciphers(ciphers)
    cert, key = make_cert(tmp_path, "c")
    with pytest.raises(TlsConfigError, match="cipher-list: "):
        build_server_context(cert, key, ciphers=ciphers)


def test_weak_entries_in_cipher_list_are_not_negotiated(tmp_path):
    cert, key = make_cert(tmp_path, "rsa", "rsa")
    context = build_server_context(cert, key, ciphers="AES128-SHA:ECDHE-RSA-AES256-GCM-SHA384")
    names = {c["name"] for c in context.get_ciphers() if c["protocol"] == "TLSv1.2"}
    assert names == {"ECDHE-RSA-AES256-GCM-SHA384"}


def test_load_errors_name_the_file_and_the_fix(tmp_path):
    cert, key = make_cert(tmp_path, "good")
    _, other_key = make_cert(tmp_path, "other")
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello\n")
    encrypted = tmp_path / "enc.key"
    subprocess.run(
        [
            "openssl",
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-aes256",
            "-pass",
            "pass:secret",
            "-out",
            str(encrypted),
        ],
        check=True,
        capture_output=True,
    )
    cases = [
        ((str(tmp_path / "missing.crt"), key), "cert: .*missing.crt: no such file"),
        ((cert, str(tmp_path / "missing.key")), "pkey: .*missing.key: no such file"),
        ((str(not_pem), key), "contains no PEM certificate"),
        ((cert, str(not_pem)), "contains no PEM private key"),
        ((cert, str(encrypted)), "is encrypted"),
        ((cert, other_key), "does not belong to the certificate"),
        ((str(tmp_path), key), "is a directory"),
    ]
    for (cert_file, key_file), message in cases:
        with pytest.raises(TlsConfigError, match=message):
            build_server_context(cert_file, key_file)
    with pytest.raises(TlsConfigError, match=r"tls-min-version 'TLSv1\.1'"):
        build_server_context(cert, key, "TLSv1.1")  # type: ignore[arg-type]
