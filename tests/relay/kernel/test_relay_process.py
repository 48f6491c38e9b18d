"""The whole relay process (`python -m relay`, one process or a supervisor with workers) in the relay
namespace of netns_kit's layout, with a real TURN client and peer in theirs: nothing is installed by
hand. With kernel-offload=on every data packet of a bound channel or a permitted peer crosses in the
kernel (the user-space share of turn_packets_total stays flat while turn_offloaded_packets_total grows);
after Refresh(0) not one more packet is forwarded; a denied peer and a peer without a permission get
nothing through, neither way. The same exchanges pass with kernel-offload=off, all in user space.

The relay runs from a copy of the source tree with the compiled program added where the wheel puts it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from netns_kit import PEER_IP, Topology, relay_source
from prometheus_client.parser import text_string_to_metric_families
from relay_process_kit import REPO, Peer, Relay, relay_conf, running, start_relay
from relay_testkit import TurnClient, wait_until

from relay.server.kernel.loader import MISSING_NOTE
from relay.stun import MessageClass

DENIED_IP = "10.71.2.3"  # a peer the policy refuses (private, not allowed)
STRANGER_IP = "10.71.2.4"  # allowed by the policy, never given a permission
CHANNEL = 0x4001
ROUNDS = 20


@pytest.fixture(scope="module")
def topology() -> Iterator[Topology]:
    net = Topology()
    try:
        net.create()
        for address in (DENIED_IP, STRANGER_IP):
            subprocess.run(
                ["ip", "netns", "exec", net.peer, "ip", "addr", "add", f"{address}/24", "dev", "pe0"], check=True
            )
        yield net
    finally:
        net.destroy()


PEERS = (PEER_IP, STRANGER_IP)  # the allow-list: DENIED_IP, also private, is refused


def _config(tmp: Path, offload: str, workers: int) -> Path:
    return relay_conf(tmp, offload, workers, peers=PEERS)


def _start(topology: Topology, package: Path, conf: Path) -> subprocess.Popen[str]:
    return start_relay(topology.relay, package, conf)


def _running(
    topology: Topology, package: Path, tmp_path: Path, offload: str, workers: int, *extra: str
) -> contextlib.AbstractContextManager[Relay]:
    return running(topology, package, tmp_path, offload, workers, *extra, peers=PEERS)


@pytest.fixture(params=[("on", 1), ("on", 2), ("off", 1)], ids=["on-1-process", "on-2-workers", "off"])
def relay(request: pytest.FixtureRequest, topology: Topology, package: Path, tmp_path: Path) -> Iterator[Relay]:
    with _running(topology, package, tmp_path, *request.param) as running:
        yield running


def _exchanged(relay: Relay, before: dict[str, float], rounds: int) -> None:
    """With offload on, every one of `rounds` packets each way went through the kernel and none through
    user space; with it off, the reverse."""
    after = relay.counters()
    moved = {key: after[key] - before[key] for key in after}
    kernel = rounds if relay.offload == "on" else 0
    for direction in ("client_to_peer", "peer_to_client"):
        assert (moved[f"kernel:{direction}"], moved[f"user:{direction}"]) == (kernel, rounds - kernel), moved


def _allocated(relay: Relay) -> tuple[TurnClient, tuple[str, int]]:
    client = relay.client()
    response = client.allocate()
    assert response.message_class == MessageClass.SUCCESS, response
    return client, client.relayed(response)


def test_channel_data_crosses_both_ways(relay: Relay) -> None:
    _channel_round_trips(relay)


def _channel_round_trips(relay: Relay) -> None:
    """ROUNDS ChannelData messages up and answers down, carried by the path `relay.offload` says."""
    client, relayed = _allocated(relay)
    peer = relay.peer(PEER_IP)
    assert client.channel_bind(CHANNEL, peer.address).message_class == MessageClass.SUCCESS
    before = relay.counters()
    for n in range(ROUNDS):
        client.channel_data(CHANNEL, b"up %d" % n)
        assert peer.recv() == (b"up %d" % n, relayed)
        peer.send(b"down %d" % n, relayed)
        assert client.receive_data() == (None, CHANNEL, b"down %d" % n)
    _exchanged(relay, before, ROUNDS)


def test_send_and_data_indications_cross_both_ways(relay: Relay) -> None:
    client, relayed = _allocated(relay)
    peer = relay.peer(PEER_IP)
    assert client.create_permission(peer.address).message_class == MessageClass.SUCCESS
    before = relay.counters()
    for n in range(ROUNDS):
        client.send_indication(peer.address, b"up %d" % n)
        assert peer.recv() == (b"up %d" % n, relayed)
        peer.send(b"down %d" % n, relayed)
        assert client.receive_data() == (peer.address, None, b"down %d" % n)
    _exchanged(relay, before, ROUNDS)


def test_after_refresh_zero_not_one_more_packet(relay: Relay) -> None:
    client, relayed = _allocated(relay)
    peer = relay.peer(PEER_IP)
    assert client.channel_bind(CHANNEL, peer.address).message_class == MessageClass.SUCCESS
    client.channel_data(CHANNEL, b"before")
    assert peer.recv() == (b"before", relayed)
    assert client.refresh(0).message_class == MessageClass.SUCCESS
    before = relay.counters()
    for n in range(ROUNDS):
        client.channel_data(CHANNEL, b"after %d" % n)
        client.send_indication(peer.address, b"after %d" % n)
        peer.send(b"late %d" % n, relayed)
    assert peer.nothing() and _nothing_for(client)
    after = relay.counters()
    assert all(after[key] == before[key] for key in after), (before, after)


def test_a_denied_peer_and_a_peer_without_permission_get_nothing_through(relay: Relay) -> None:
    client, relayed = _allocated(relay)
    peer, denied, stranger = relay.peer(PEER_IP), relay.peer(DENIED_IP), relay.peer(STRANGER_IP)
    assert client.create_permission(denied.address).message_class == MessageClass.ERROR  # 403
    assert client.channel_bind(CHANNEL, denied.address).message_class == MessageClass.ERROR
    assert client.channel_bind(CHANNEL, peer.address).message_class == MessageClass.SUCCESS
    before = relay.counters()
    for n in range(ROUNDS):
        client.send_indication(denied.address, b"to denied %d" % n)
        client.send_indication(stranger.address, b"to stranger %d" % n)
        client.channel_data(CHANNEL + 1, b"unbound channel %d" % n)
        denied.send(b"from denied %d" % n, relayed)
        stranger.send(b"from stranger %d" % n, relayed)
    assert denied.nothing() and stranger.nothing() and peer.nothing() and _nothing_for(client)
    after = relay.counters()
    assert all(after[key] == before[key] for key in after), (before, after)


def _nothing_for(client: TurnClient, wait: float = 0.3) -> bool:
    try:
        frame = client.recv_frame(wait)
    except TimeoutError:
        return True
    raise AssertionError(f"the client received {frame!r}")


def _forwards(client: TurnClient, peer: Peer) -> bool:
    client.channel_data(CHANNEL, b"probe")
    return not peer.nothing(0.2)


def test_a_peer_removed_by_a_reload_gets_nothing_more(relay: Relay) -> None:
    client, relayed = _allocated(relay)
    peer = relay.peer(PEER_IP)
    assert client.channel_bind(CHANNEL, peer.address).message_class == MessageClass.SUCCESS
    assert _forwards(client, peer)
    relay.conf.write_text(relay.conf.read_text().replace(f"allowed-peer-ip={PEER_IP}\n", ""))
    relay.process.send_signal(signal.SIGHUP)
    wait_until(lambda: not _forwards(client, peer), "the reload to withdraw the peer", timeout=10)
    before = relay.counters()
    for n in range(ROUNDS):
        client.channel_data(CHANNEL, b"after reload %d" % n)
        client.send_indication(peer.address, b"after reload %d" % n)
        peer.send(b"after reload %d" % n, relayed)
    assert peer.nothing() and _nothing_for(client)
    after = relay.counters()
    assert all(after[key] == before[key] for key in after), (before, after)


def _workers(supervisor: int) -> list[int]:
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    return [int(pid) for pid in children]


KERNEL_CAPABILITIES = 1 << 12 | 1 << 38 | 1 << 39  # CAP_NET_ADMIN, CAP_PERFMON, CAP_BPF


def _capabilities(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("CapEff:")).split()[1], 16)


def _restarts(relay: Relay) -> float:
    for family in text_string_to_metric_families(relay.admin("/metrics")[1]):
        for sample in family.samples:
            if sample.name == "turn_worker_restarts_total":
                return sample.value
    raise AssertionError("turn_worker_restarts_total is not in /metrics")


def test_a_dead_worker_s_entries_are_purged(topology: Topology, package: Path, tmp_path: Path) -> None:
    """Killed workers leave their entries in the maps (the filter belongs to the supervisor): the
    supervisor removes them by the workers' relay port slices, so nothing is forwarded for allocations
    nobody owns any more."""
    with _running(topology, package, tmp_path, "on", 2) as relay:
        _kill_the_workers(relay)


def _kill_the_workers(relay: Relay) -> None:
    client, relayed = _allocated(relay)
    peer = relay.peer(PEER_IP)
    assert client.channel_bind(CHANNEL, peer.address).message_class == MessageClass.SUCCESS
    assert _forwards(client, peer)
    workers = _workers(relay.process.pid)
    assert len(workers) == relay.workers
    # The supervisor loaded the program; the workers, which parse packets, gave up what loading takes
    # (and kept the rest: this test runs as root).
    assert _capabilities(relay.process.pid) & KERNEL_CAPABILITIES == KERNEL_CAPABILITIES
    for pid in workers:
        assert _capabilities(pid) & KERNEL_CAPABILITIES == 0
        assert _capabilities(pid) & 1 << 10  # CAP_NET_BIND_SERVICE, untouched
    for pid in workers:
        os.kill(pid, signal.SIGKILL)
    wait_until(lambda: _restarts(relay) >= len(workers), "the supervisor to see its workers die", timeout=10)
    for n in range(ROUNDS):
        client.channel_data(CHANNEL, b"orphan %d" % n)
        client.send_indication(peer.address, b"orphan %d" % n)
        peer.send(b"orphan %d" % n, relayed)
    assert peer.nothing() and _nothing_for(client)


@pytest.mark.slow
def test_an_expired_permission_forwards_not_one_more_packet(topology: Topology, package: Path, tmp_path: Path) -> None:
    """Permission and channel expire (their shortest lifetimes, 60 s) while the client keeps sending:
    data never refreshes anything, so the kernel stops at expiry, both ways."""
    with _running(topology, package, tmp_path, "on", 1, "permission-lifetime=60", "channel-lifetime=60") as relay:
        client, relayed = _allocated(relay)
        assert client.refresh(600).message_class == MessageClass.SUCCESS
        peer = relay.peer(PEER_IP)
        assert client.channel_bind(CHANNEL, peer.address).message_class == MessageClass.SUCCESS
        bound = time.monotonic()
        before = relay.counters()
        sent = 0
        while time.monotonic() - bound < 50:  # well inside the lifetime: everything crosses in the kernel
            client.channel_data(CHANNEL, b"live %d" % sent)
            assert peer.recv() == (b"live %d" % sent, relayed)
            peer.send(b"back %d" % sent, relayed)
            assert client.receive_data() == (None, CHANNEL, b"back %d" % sent)
            sent += 1
            time.sleep(1)
        _exchanged(relay, before, sent)
        time.sleep(max(0.0, bound + 60 + 2.5 - time.monotonic()))  # expiry, and the next once-a-second tick
        before = relay.counters()
        for n in range(ROUNDS):
            client.channel_data(CHANNEL, b"expired %d" % n)
            client.send_indication(peer.address, b"expired %d" % n)
            peer.send(b"expired %d" % n, relayed)
        assert peer.nothing() and _nothing_for(client)
        after = relay.counters()
        assert all(after[key] == before[key] for key in after), (before, after)


@pytest.fixture(scope="module")
def package_without_program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The relay as a wheel built without clang ships it: no program, a note saying why."""
    note = b"clang was not found when the wheel was built\n"
    return relay_source(REPO, tmp_path_factory.mktemp("relay-package-without-program"), {MISSING_NOTE: note})


@pytest.mark.parametrize("workers", [1, 2])
def test_auto_on_a_host_that_cannot_serves_from_user_space_with_one_line(
    topology: Topology, package_without_program: Path, tmp_path: Path, workers: int
) -> None:
    with _running(topology, package_without_program, tmp_path, "auto", workers) as relay:
        relay.offload = "off"  # what it ends up as: _exchanged expects user space
        _channel_round_trips(relay)
    lines = [line for line in relay.stderr.splitlines() if "kernel offload" in line]
    assert len(lines) == 1 and "clang was not found when the wheel was built" in lines[0], relay.stderr[-3000:]


def test_on_refuses_to_start_on_a_host_that_cannot(
    topology: Topology, package_without_program: Path, tmp_path: Path
) -> None:
    process = _start(topology, package_without_program, _config(tmp_path, "on", 2))
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 1, stderr
    assert (
        "cannot start: kernel-offload is on but cannot be used: clang was not found when the wheel was built" in stderr
    ), stderr


def test_a_draining_relay_keeps_forwarding_in_the_kernel_until_its_last_allocation_ends(
    topology: Topology, package: Path, tmp_path: Path
) -> None:
    with _running(topology, package, tmp_path, "on", 2) as relay:
        client, relayed = _allocated(relay)
        peer = relay.peer(PEER_IP)
        assert client.channel_bind(CHANNEL, peer.address).message_class == MessageClass.SUCCESS
        relay.process.send_signal(signal.SIGUSR1)
        wait_until(lambda: "turn_draining 1.0" in relay.admin("/metrics")[1], "the drain to start")
        assert relay.client().allocate().message_class == MessageClass.ERROR  # 403 while draining
        before = relay.counters()
        for n in range(ROUNDS):  # the live allocation is untouched, and still in the kernel
            client.channel_data(CHANNEL, b"draining %d" % n)
            assert peer.recv() == (b"draining %d" % n, relayed)
            peer.send(b"back %d" % n, relayed)
            assert client.receive_data() == (None, CHANNEL, b"back %d" % n)
        _exchanged(relay, before, ROUNDS)
        assert client.refresh(0).message_class == MessageClass.SUCCESS
        relay.process.wait(timeout=15)  # drained: the relay exits by itself, 0, filter detached (below)
        client.channel_data(CHANNEL, b"after the drain")
        assert peer.nothing()
