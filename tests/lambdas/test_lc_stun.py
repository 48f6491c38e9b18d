"""The STUN client: RFC 5769 vector, the test responder, and coturn's turnserver (a real STUN server)."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest
from common import stun
from lc_stun_responder import StunResponder

from tests.servers import free_port

# RFC 5769 §2.2: sample IPv4 response (XOR-MAPPED-ADDRESS 192.0.2.1:32853).
RFC5769_RESPONSE = bytes.fromhex(
    "0101003c2112a442b7e7a701bc34d686fa87dfae8022000b7465737420766563746f722000200008 0001a147e112a643".replace(" ", "")
    + "000800142b91f599fd9e90c38c7489f92af9ba53f06be7d7"
    + "80280004c07d4c96"
)


@pytest.fixture
def responder() -> Iterator[StunResponder]:
    server = StunResponder().start()
    yield server
    server.stop()


def test_parses_the_rfc5769_response() -> None:
    txid = bytes.fromhex("b7e7a701bc34d686fa87dfae")
    assert stun.parse_binding_response(RFC5769_RESPONSE, txid) == ("192.0.2.1", 32853)
    with pytest.raises(stun.StunError, match="not an answer to our transaction"):
        stun.parse_binding_response(RFC5769_RESPONSE, b"\x00" * 12)


def test_binding_over_udp_and_tcp(responder: StunResponder) -> None:
    udp = stun.binding_udp("127.0.0.1", responder.port, timeout=0.5)
    tcp = stun.binding_tcp("127.0.0.1", responder.port, timeout=1)
    assert udp.mapped_address is not None and udp.mapped_address[0] == "127.0.0.1"
    assert tcp.mapped_address is not None and tcp.mapped_address[0] == "127.0.0.1"
    assert (responder.udp_requests, responder.tcp_requests) == (1, 1)


def test_silence_is_an_error_after_retransmissions(responder: StunResponder) -> None:
    responder.udp_enabled = False
    started = time.monotonic()
    with pytest.raises(stun.StunError, match="no STUN answer"):
        stun.binding_udp("127.0.0.1", responder.port, timeout=0.05, attempts=3)
    assert responder.udp_requests == 3
    assert time.monotonic() - started < 2
    responder.tcp_enabled = False
    with pytest.raises(stun.StunError, match=r"closed before|STUN over TCP"):
        stun.binding_tcp("127.0.0.1", responder.port, timeout=0.5)


def test_against_coturn() -> None:
    binary = shutil.which("turnserver")
    assert binary, "coturn's turnserver is installed on the build machine (apt coturn)"
    port = free_port()  # coturn listens on UDP and TCP
    process = subprocess.Popen(
        [
            binary,
            "-n",
            "--stun-only",
            "--listening-ip=127.0.0.1",
            f"--listening-port={port}",
            "--no-tls",
            "--no-dtls",
            "--no-cli",
            "--log-file=stdout",
            "--simple-log",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                result = stun.binding_tcp("127.0.0.1", port, timeout=0.5)
                break
            except stun.StunError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        assert result.mapped_address is not None and result.mapped_address[0] == "127.0.0.1"
        udp = stun.binding_udp("127.0.0.1", port, timeout=0.5)
        assert udp.mapped_address is not None and udp.mapped_address[0] == "127.0.0.1"
    finally:
        process.terminate()
        process.wait(timeout=5)
