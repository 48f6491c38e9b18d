"""`bbb-on-aws probe --turn` against real TURN servers on loopback: the project's relay and coturn (Debian),
over UDP, TCP and TLS (a local TLS terminator with test certificates stands in for the NLB). Each injected
fault must fail the right line, with its cause, and make the command exit non-zero."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_testkit import TLS_NAME, EchoPeer, Pki, TlsFront, coturn, stun_answers
from relay_testkit import SECRET, RunningRelay, free_port, loopback_config, wait_until

from bbb_on_aws.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def secret_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("secret") / "turn-secret"
    path.write_text(SECRET + "\n")
    return path


@pytest.fixture
def relay() -> Iterator[RunningRelay]:
    with RunningRelay(loopback_config()) as running:
        yield running


@pytest.fixture
def coturn_server(tmp_path: Path) -> Iterator[tuple[str, int]]:
    if shutil.which("turnserver") is None:
        pytest.fail("the coturn tests need Debian's turnserver (scripts/install.sh --test-tools)")
    port = free_port()
    low = 30000 + (port % 50) * 100
    process = coturn(port, SECRET, "probe.test", (low, low + 99), tmp_path)
    try:
        wait_until(lambda: stun_answers(port), "coturn answering STUN")
        yield "127.0.0.1", port
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture
def peer() -> Iterator[EchoPeer]:
    with EchoPeer() as echo:
        yield echo


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:
    code = main(["probe", "--json", "--timeout", "1.5", *args])
    return code, json.loads(capsys.readouterr().out)


def lines(result: dict) -> dict[str, dict]:
    return {check["name"]: check for check in result["checks"]}


def target_args(server: tuple[str, int], transport: str, secret_file: Path, pki: Pki, stack: list) -> list[str]:
    """The --turn arguments for `transport`; for tls a TLS front with a valid certificate is started."""
    if transport != "tls":
        return ["--turn", f"{server[0]}:{server[1]}", "--transport", transport, "--secret-file", str(secret_file)]
    cert, key = pki.leaf("good", [TLS_NAME])
    front = TlsFront(cert, key, server).__enter__()
    stack.append(front)
    return [
        "--turn",
        f"127.0.0.1:{front.address[1]}",
        "--transport",
        "tls",
        "--tls-name",
        TLS_NAME,
        "--ca-file",
        str(pki.ca_file),
        "--secret-file",
        str(secret_file),
    ]


EXPECTED = [
    "STUN binding",
    "open relay refused",
    "TURN allocate",
    "permission {peer}",
    "channel bind {peer}",
    "round trip via {peer}",
    "relay ports reachable",
]


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
@pytest.mark.parametrize("server_kind", ["relay", "coturn"])
def test_healthy_server_passes_every_check(request, capsys, pki, secret_file, peer, transport, server_kind):
    server = (
        request.getfixturevalue("relay").address("tcp" if transport != "udp" else "udp")
        if server_kind == "relay"
        else request.getfixturevalue("coturn_server")
    )
    fronts: list[TlsFront] = []
    try:
        code, result = run(
            capsys,
            *target_args(server, transport, secret_file, pki, fronts),
            "--peer",
            f"{peer.address[0]}:{peer.address[1]}",
        )
    finally:
        for front in fronts:
            front.__exit__()
    assert code == 0, json.dumps(result, indent=1)
    assert result["ok"] and result["failed"] == 0
    names = [check["name"].split(" ", 2)[2] for check in result["checks"]]
    peer_text = f"{peer.address[0]}:{peer.address[1]}"
    expected = ["connect", *[e.format(peer=peer_text) for e in EXPECTED]]
    if transport == "tls":
        expected.insert(0, f"certificate for {TLS_NAME}")
    assert names == expected
    assert all(check["status"] == "pass" and check["seconds"] >= 0 for check in result["checks"])
    assert peer.received >= 1  # the round trip really went through the peer
    allocate = next(c for c in result["checks"] if c["name"].endswith("TURN allocate"))
    assert allocate["detail"].startswith("relayed address 127.0.0.1:")


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_nothing_listening(capsys, secret_file, transport):
    port = free_port()
    code, result = run(
        capsys, "--turn", f"127.0.0.1:{port}", "--transport", transport, "--secret-file", str(secret_file)
    )
    assert code == 1 and not result["ok"]
    failed = [c for c in result["checks"] if c["status"] == "fail"]
    assert len(failed) == 1
    if transport == "udp":  # UDP has no connection: the first request gets no answer
        assert failed[0]["name"] == f"udp 127.0.0.1:{port} STUN binding"
        assert "no answer" in failed[0]["detail"] and "firewall" in failed[0]["cause"]
    else:
        assert failed[0]["name"] == f"tcp 127.0.0.1:{port} connect"
        assert "refused" in failed[0]["detail"] and "nothing listens" in failed[0]["cause"]
    assert result["checks"][-1]["status"] == "skip"


@pytest.mark.parametrize("server_kind", ["relay", "coturn"])
def test_wrong_secret(request, capsys, tmp_path, server_kind):
    server = (
        request.getfixturevalue("relay").address("udp")
        if server_kind == "relay"
        else request.getfixturevalue("coturn_server")
    )
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-secret")
    code, result = run(capsys, "--turn", f"{server[0]}:{server[1]}", "--secret-file", str(wrong))
    assert code == 1
    check = lines(result)[f"udp {server[0]}:{server[1]} TURN allocate"]
    assert check["status"] == "fail" and check["detail"] == "Allocate: 401 Unauthorized"
    assert "shared secret differs" in check["cause"] and "--secret-arn" in check["fix"]
    assert [c["status"] for c in result["checks"]].count("fail") == 1
    assert lines(result)[f"udp {server[0]}:{server[1]} STUN binding"]["status"] == "pass"


def test_peer_refused_by_the_relay(capsys, secret_file, peer):
    # Loopback peers are denied unless allowed: the relay as deployed refuses private/loopback peers.
    with RunningRelay(loopback_config(allowed_peers=())) as relay:
        host, port = relay.address("udp")
        code, result = run(
            capsys,
            "--turn",
            f"{host}:{port}",
            "--secret-file",
            str(secret_file),
            "--peer",
            f"{peer.address[0]}:{peer.address[1]}",
        )
    assert code == 1
    check = lines(result)[f"udp {host}:{port} permission {peer.address[0]}:{peer.address[1]}"]
    assert check["status"] == "fail" and check["detail"] == "CreatePermission: 403 Forbidden"
    assert "refuses this peer" in check["cause"] and "allowed-peers" in check["fix"]
    assert lines(result)[f"udp {host}:{port} TURN allocate"]["status"] == "pass"
    assert peer.received == 0


def test_peer_refused_by_coturn(capsys, tmp_path, secret_file, peer):
    port = free_port()
    process = coturn(port, SECRET, "probe.test", (31900, 31999), tmp_path, loopback_peers=False)
    try:
        wait_until(lambda: stun_answers(port), "coturn answering STUN")
        code, result = run(
            capsys,
            "--turn",
            f"127.0.0.1:{port}",
            "--secret-file",
            str(secret_file),
            "--peer",
            f"{peer.address[0]}:{peer.address[1]}",
        )
    finally:
        process.terminate()
        process.wait(10)
    assert code == 1
    check = lines(result)[f"udp 127.0.0.1:{port} permission {peer.address[0]}:{peer.address[1]}"]
    assert check["status"] == "fail" and check["detail"].startswith("CreatePermission: 403")
    assert "refuses this peer" in check["cause"]


@pytest.mark.parametrize(
    ("label", "names", "days", "detail", "cause"),
    [
        ("expired", [TLS_NAME], (-60, -1), "certificate expired", "has expired"),
        ("other-name", ["meet.other.test"], (-1, 90), f"certificate does not cover {TLS_NAME}", "another name"),
    ],
)
def test_bad_certificate_fails_its_line_only(capsys, pki, secret_file, relay, label, names, days, detail, cause):
    cert, key = pki.leaf(label, names, days_from=days[0], days_to=days[1])
    with TlsFront(cert, key, relay.address("tcp")) as front:
        code, result = run(
            capsys,
            "--turn",
            f"127.0.0.1:{front.address[1]}",
            "--transport",
            "tls",
            "--tls-name",
            TLS_NAME,
            "--ca-file",
            str(pki.ca_file),
            "--secret-file",
            str(secret_file),
        )
    assert code == 1
    failed = [c for c in result["checks"] if c["status"] == "fail"]
    assert [c["name"] for c in failed] == [f"tls 127.0.0.1:{front.address[1]} certificate for {TLS_NAME}"]
    assert failed[0]["detail"].startswith(detail) and cause in failed[0]["cause"]
    assert f"names {', '.join(names)}" in failed[0]["detail"]  # what was presented instead
    # TURN itself still works over that TLS connection: the report says the certificate is the only problem.
    assert lines(result)[f"tls 127.0.0.1:{front.address[1]} TURN allocate"]["status"] == "pass"


def test_text_output_names_cause_and_fix(capsys, tmp_path, relay):
    wrong = tmp_path / "wrong"
    wrong.write_text("nope")
    host, port = relay.address("udp")
    started = time.monotonic()
    code = main(["probe", "--turn", f"{host}:{port}", "--secret-file", str(wrong)])
    out = capsys.readouterr().out
    assert code == 1 and time.monotonic() - started < 10
    assert f"FAIL  udp {host}:{port} TURN allocate" in out
    assert "cause: the relay rejects the REST credentials" in out and "fix:   use the TURN secret" in out
    assert out.rstrip().endswith("1 check(s) failed")


def test_draining_relay_refuses_new_allocations(capsys, secret_file, relay):
    relay.draining = True
    host, port = relay.address("udp")
    code, result = run(capsys, "--turn", f"{host}:{port}", "--secret-file", str(secret_file))
    assert code == 1
    check = lines(result)[f"udp {host}:{port} TURN allocate"]
    assert check["detail"] == "Allocate: 403 Forbidden" and "draining" in check["cause"]


def test_user_quota_reached(capsys, secret_file):
    with RunningRelay(loopback_config(user_quota=1)) as relay:
        host, port = relay.address("udp")
        with relay.client("udp", user="bbb-on-aws-probe") as holder:  # the probe's user already holds one
            assert holder.allocate().get(0x0016)  # XOR-RELAYED-ADDRESS
            code, result = run(capsys, "--turn", f"{host}:{port}", "--secret-file", str(secret_file))
    assert code == 1
    check = lines(result)[f"udp {host}:{port} TURN allocate"]
    assert check["detail"].startswith("Allocate: 486") and "turn.userQuota" in check["cause"]


def test_self_round_trip_names_its_own_refusal(capsys, secret_file):
    with RunningRelay(loopback_config(allowed_peers=())) as relay:
        host, port = relay.address("udp")
        code, result = run(capsys, "--turn", f"{host}:{port}", "--secret-file", str(secret_file))
    assert code == 1
    check = lines(result)[f"udp {host}:{port} relay ports reachable"]
    assert check["detail"] == "CreatePermission: 403 Forbidden"
    assert "this probe's own address 127.0.0.1" in check["cause"] and "public address" in check["fix"]


def test_a_peer_that_does_not_echo_fails_the_round_trip_only(capsys, secret_file, relay):
    from relay_testkit import Peer

    host, port = relay.address("udp")
    with Peer() as silent:
        code, result = run(
            capsys,
            "--turn",
            f"{host}:{port}",
            "--secret-file",
            str(secret_file),
            "--peer",
            f"{silent.address[0]}:{silent.address[1]}",
        )
        data, _ = silent.recv()  # the probe's datagram did reach the peer through the relay
    assert code == 1 and data.startswith(b"bbb-on-aws probe ")
    failed = [c for c in result["checks"] if c["status"] == "fail"]
    assert [c["name"] for c in failed] == [f"udp {host}:{port} round trip via {silent.address[0]}:{silent.address[1]}"]
    assert "does not send datagrams back" in failed[0]["cause"]
    assert lines(result)[f"udp {host}:{port} relay ports reachable"]["status"] == "pass"
