"""Server-side TLS for `turns:` listeners: modern settings, clear load errors, hot certificate reload.

Policy: TLS 1.2 minimum (`tls_min_version="TLSv1.3"` to raise it); for TLS 1.2 only ECDHE key exchange
with AEAD ciphers (AES-GCM, CHACHA20-POLY1305), server cipher preference, no compression, no
renegotiation, no session tickets (forward secrecy over long-lived ticket keys; TURN connections are
long-lived, so resumption buys nothing). TLS 1.3 suites are OpenSSL's (all AEAD). ALPN offers
"stun.turn" (RFC 7443) and lets clients that send no or other ALPN values through.

How the server uses it:

    tls = ServerTls(config.cert_file, config.key_file, config.tls_min_version, config.tls_ciphers)
    server = await loop.create_server(factory, host, 443, ssl=tls.listener_context)
    # or, after reading a PROXY header first: await loop.start_tls(transport, proto, tls.context, server_side=True)
    ...
    tls.reload()            # on SIGHUP: re-reads the same files; raises TlsConfigError and keeps the old
                            # certificate if the new files are bad

`listener_context` is one stable SSLContext whose SNI callback (run for every ClientHello, with or
without SNI) switches the handshake to the newest loaded context, so a listener created once serves
the renewed certificate to new connections while established connections keep theirs. Protocol
settings (minimum version, ciphers) are fixed when `ServerTls` is built; changing them needs a restart.

`select_tls12_ciphers(text)` narrows an operator's `cipher-list` to the allowed suites without needing
a certificate (the config loader uses it to warn about dropped suites and to reject useless lists).
"""

from __future__ import annotations

import ssl
from typing import Literal

DEFAULT_TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"
ALPN_PROTOCOLS = ["stun.turn"]
TlsVersion = Literal["TLSv1.2", "TLSv1.3"]
_VERSIONS = {"TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}


class TlsConfigError(ValueError):
    """The certificate, key or TLS settings cannot be used; the message says which and why."""


def select_tls12_ciphers(ciphers: str) -> tuple[str, list[str]]:
    """Keep the acceptable TLS 1.2 suites of an OpenSSL cipher string.

    Returns (cipher string to use, names that were dropped). Only ECDHE key exchange with an AEAD
    cipher and real authentication passes, so an operator's coturn `cipher-list` can never weaken the
    policy; it can only narrow it. Raises TlsConfigError when the string is invalid or nothing is left.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.set_ciphers(ciphers)
    except ssl.SSLError:
        raise TlsConfigError(f"OpenSSL accepts no cipher from {ciphers!r}") from None
    kept: list[str] = []
    dropped: list[str] = []
    for cipher in context.get_ciphers():
        if cipher["protocol"] == "TLSv1.3":
            continue  # TLS 1.3 suites are all AEAD with (EC)DHE; set_ciphers does not control them
        good = cipher.get("kea") == "kx-ecdhe" and cipher.get("aead") and cipher.get("auth") != "auth-null"
        (kept if good else dropped).append(cipher["name"])
    if not kept:
        raise TlsConfigError(
            f"no acceptable TLS 1.2 cipher in {ciphers!r}; allowed: ECDHE key exchange with AES-GCM or "
            f"CHACHA20-POLY1305, e.g. {DEFAULT_TLS12_CIPHERS!r}"
        )
    return ":".join(kept), dropped


def build_server_context(
    cert_file: str, key_file: str, min_version: TlsVersion = "TLSv1.2", ciphers: str | None = None
) -> ssl.SSLContext:
    """A fresh server context with the certificate loaded; raises TlsConfigError with the reason."""
    if min_version not in _VERSIONS:
        raise TlsConfigError(f"tls-min-version {min_version!r} is not one of {', '.join(_VERSIONS)}")
    try:
        tls12_ciphers = select_tls12_ciphers(ciphers)[0] if ciphers else DEFAULT_TLS12_CIPHERS
    except TlsConfigError as exc:
        raise TlsConfigError(f"cipher-list: {exc}") from None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = _VERSIONS[min_version]
    context.set_ciphers(tls12_ciphers)
    context.options |= (
        ssl.OP_NO_COMPRESSION
        | ssl.OP_CIPHER_SERVER_PREFERENCE
        | ssl.OP_NO_RENEGOTIATION
        | ssl.OP_SINGLE_ECDH_USE
        | ssl.OP_NO_TICKET
    )
    context.set_alpn_protocols(ALPN_PROTOCOLS)
    _load_certificate(context, cert_file, key_file)
    return context


def _load_certificate(context: ssl.SSLContext, cert_file: str, key_file: str) -> None:
    cert_text = _read_pem("cert", cert_file)
    key_text = _read_pem("pkey", key_file)
    if "-----BEGIN CERTIFICATE-----" not in cert_text:
        raise TlsConfigError(f"cert: {cert_file} contains no PEM certificate ('-----BEGIN CERTIFICATE-----')")
    if "ENCRYPTED" in key_text:
        raise TlsConfigError(
            f"pkey: {key_file} is encrypted; give the relay an unencrypted key readable only by its user"
        )
    if "PRIVATE KEY-----" not in key_text:
        raise TlsConfigError(f"pkey: {key_file} contains no PEM private key")

    def no_password() -> str:
        raise TlsConfigError(f"pkey: {key_file} asks for a password; use an unencrypted key")

    try:
        context.load_cert_chain(cert_file, key_file, password=no_password)
    except TlsConfigError:
        raise
    except ssl.SSLError as exc:
        reason = exc.reason or str(exc)
        if reason in ("KEY_VALUES_MISMATCH", "NO_CERTIFICATE_ASSIGNED") or "mismatch" in str(exc).lower():
            raise TlsConfigError(f"pkey: {key_file} does not belong to the certificate in {cert_file}") from None
        raise TlsConfigError(f"cert/pkey: OpenSSL cannot load {cert_file} with {key_file}: {reason}") from None


def _read_pem(key: str, path: str) -> str:
    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            return handle.read(1_000_000)
    except FileNotFoundError:
        raise TlsConfigError(f"{key}: {path}: no such file") from None
    except PermissionError:
        raise TlsConfigError(f"{key}: {path}: permission denied for the relay's user") from None
    except IsADirectoryError:
        raise TlsConfigError(f"{key}: {path} is a directory, expected a PEM file") from None
    except OSError as exc:
        raise TlsConfigError(f"{key}: {path}: {exc.strerror or exc}") from None


class ServerTls:
    """The current certificate context plus a stable listener context that follows reloads."""

    def __init__(
        self, cert_file: str, key_file: str, min_version: TlsVersion = "TLSv1.2", ciphers: str | None = None
    ) -> None:
        self.cert_file, self.key_file = cert_file, key_file
        self._min_version, self._ciphers = min_version, ciphers
        self._current = build_server_context(cert_file, key_file, min_version, ciphers)
        self.generation = 1
        self.listener_context = build_server_context(cert_file, key_file, min_version, ciphers)
        self.listener_context.sni_callback = self._select_current

    @property
    def context(self) -> ssl.SSLContext:
        """The newest context: use it for `start_tls` on each new connection."""
        return self._current

    def reload(self, cert_file: str | None = None, key_file: str | None = None) -> ssl.SSLContext:
        """Load the (possibly new) files into a new context; on error keep the old one and raise."""
        cert_file = cert_file or self.cert_file
        key_file = key_file or self.key_file
        context = build_server_context(cert_file, key_file, self._min_version, self._ciphers)
        self._current, self.cert_file, self.key_file = context, cert_file, key_file
        self.generation += 1
        return context

    def _select_current(self, ssl_object: ssl.SSLObject, server_name: str | None, _: ssl.SSLContext) -> None:
        if ssl_object.context is not self._current:
            ssl_object.context = self._current
