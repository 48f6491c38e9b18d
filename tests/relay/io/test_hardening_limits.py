"""Issue 15, cases 6, 7 and 10: what unauthenticated traffic can make the relay send, and that the
limits on it turn away neither a crowd behind one NAT address nor the owner of a forged address."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from relay_testkit import RunningRelay, Session, free_port, loopback_config, request, rest_credentials

from relay.config import Listener
from relay.stun import Attr, Method, decode, encode
from relay.turn.handler import AMPLIFICATION_BOUND, MAX_REALM_LENGTH

INSTITUTION_REALM = "turn.universitaet-musterstadt-example.de"  # 38 characters, as in the issue


def unauthenticated_requests(nonce: str, realm: str) -> Iterator[tuple[str, bytes]]:
    """Every kind of request a sender that never authenticates can make, smallest forms first."""
    username, _ = rest_credentials()
    other_method = 0x00B  # not a method the relay serves
    for label, message in [
        ("binding", request(Method.BINDING)),
        ("binding unknown attribute", request(Method.BINDING, (0x7F01, b"\x00\x00\x00\x00"))),
        ("allocate bare", request(Method.ALLOCATE)),
        ("allocate", request(Method.ALLOCATE, (Attr.REQUESTED_TRANSPORT, 17))),
        ("refresh", request(Method.REFRESH)),
        ("create permission", request(Method.CREATE_PERMISSION, (Attr.XOR_PEER_ADDRESS, ("127.0.0.1", 9)))),
        ("channel bind", request(Method.CHANNEL_BIND, (Attr.CHANNEL_NUMBER, 0x4000))),
        ("other method", request(other_method)),
    ]:
        yield label, encode(message)
        yield label + " + fingerprint", encode(message, fingerprint=True)
    signed = [
        ("stale nonce", "00000000AAAAAAAAAAAAAAAAAAAAAAAA"[:24], realm),
        ("wrong realm", nonce, "x"),
        ("bad integrity", nonce, realm),
    ]
    for label, use_nonce, use_realm in signed:
        session = Session(username, "wrong password", realm=use_realm, nonce=use_nonce)
        yield label, session.sign(request(Method.ALLOCATE, (Attr.REQUESTED_TRANSPORT, 17)))
    yield (
        "missing username",
        encode(request(Method.ALLOCATE, (Attr.REALM, realm), (Attr.NONCE, nonce)), integrity_key=os.urandom(16)),
    )


def worst_ratio(address: tuple[str, int], realm: str, bind: str = "127.0.0.1") -> tuple[float, str, int]:
    """The largest answer/request size ratio over every unauthenticated request type (and how many
    requests were answered at all)."""
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.bind((bind, 0))
        sock.settimeout(0.25)
        # A padded Allocate (SOFTWARE) learns the nonce whatever the realm's length.
        sock.sendto(
            encode(request(Method.ALLOCATE, (Attr.REQUESTED_TRANSPORT, 17), (Attr.SOFTWARE, "p" * 120))), address
        )
        nonce = decode(sock.recv(4096)).get(Attr.NONCE) or ""
        worst, worst_label, answered = 0.0, "", 0
        for label, wire in unauthenticated_requests(nonce, realm):
            sock.sendto(wire, address)
            try:
                answer = sock.recv(4096)
            except TimeoutError:
                continue
            answered += 1
            if len(answer) / len(wire) > worst:
                worst, worst_label = len(answer) / len(wire), label
    return worst, worst_label, answered


@pytest.mark.parametrize(
    "realm", ["a.b", INSTITUTION_REALM, "r" * MAX_REALM_LENGTH, "x" * 127], ids=["short", "38", "max", "127"]
)
def test_6_unauthenticated_answers_stay_within_the_bound_for_any_realm(realm: str) -> None:
    """The old relay's 401 to a bare 20-byte Allocate was 4.4x with a short realm and 5.6x with a 38-
    character one; the bound held only up to 28 characters. Now no answer exceeds AMPLIFICATION_BOUND
    for any realm, IPv4 or IPv6, and realms up to MAX_REALM_LENGTH still answer Chromium's 28-byte first
    Allocate (longer ones are refused by the config checks; the runtime bound holds regardless)."""
    config = loopback_config(realm=realm, listeners=(Listener("udp", "127.0.0.1", 0), Listener("udp", "::1", 0)))
    with RunningRelay(config) as relay:
        for listener, bind in zip(relay.server.udp, ("127.0.0.1", "::1"), strict=True):
            worst, label, answered = worst_ratio(listener.local, realm, bind)
            assert worst <= AMPLIFICATION_BOUND, f"{label}: {worst:.2f}x over {bind} with a {len(realm)}-char realm"
            assert answered >= 10
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(1)
            sock.sendto(encode(request(Method.ALLOCATE, (Attr.REQUESTED_TRANSPORT, 17))), relay.address("udp"))
            if len(realm) <= MAX_REALM_LENGTH:
                assert decode(sock.recv(4096)).get(Attr.ERROR_CODE)[0] == 401
            else:
                with pytest.raises(TimeoutError):
                    sock.recv(4096)


@pytest.mark.skipif(shutil.which("turnserver") is None, reason="coturn (scripts/install.sh --test-tools)")
def test_6_coturn_worst_case_measured_the_same_way(tmp_path: Path) -> None:
    """The same probe against coturn with the same 38-character realm: its worst answer is larger than
    ours (SOFTWARE, reason phrases, FINGERPRINT on every answer)."""
    port = free_port()
    command = [
        "turnserver", "-n", "--listening-ip=127.0.0.1", f"--listening-port={port}", "--relay-ip=127.0.0.1",
        f"--realm={INSTITUTION_REALM}", "--use-auth-secret", "--static-auth-secret=s3cret", "--no-tls",
        "--no-dtls", "--no-cli", "--no-stdout-log", f"--log-file={tmp_path / 'coturn.log'}", "--simple-log",
        "--min-port=31000", "--max-port=31100",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                coturn = worst_ratio(("127.0.0.1", port), INSTITUTION_REALM)
                break
            except TimeoutError:
                assert time.monotonic() < deadline, "coturn did not answer"
        with RunningRelay(loopback_config(realm=INSTITUTION_REALM)) as relay:
            ours = worst_ratio(relay.address("udp"), INSTITUTION_REALM)
    finally:
        process.terminate()
        process.wait(10)
    assert ours[0] <= AMPLIFICATION_BOUND
    assert coturn[0] > ours[0], f"coturn {coturn}, ours {ours}"
    print(f"worst unauthenticated answer: coturn {coturn[0]:.2f}x ({coturn[1]}), ours {ours[0]:.2f}x ({ours[1]})")
