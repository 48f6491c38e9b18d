"""The multi-worker relay as a real process (a supervisor and two workers sharing the listening ports
with SO_REUSEPORT), driven over real sockets: allocations on both workers, one metrics scrape for all,
nonces and quotas across workers, drain, reload and a worker crash."""

from __future__ import annotations

import errno
import os
import signal
import socket
import time
from pathlib import Path

import pytest
from relay_testkit import Peer, request
from relay_workers_kit import WorkersRelay, allocate, map_ports, wait_until, worker_of

from relay.stun import Attr, MessageClass, Method

pytestmark = pytest.mark.slow  # each test starts a supervisor and two worker processes (~1 s)


def ok(response) -> bool:
    return response.message_class == MessageClass.SUCCESS


def error_code(response) -> int | None:
    error = response.get(Attr.ERROR_CODE)
    return error[0] if error else None


@pytest.fixture
def relay(tmp_path: Path):
    running = WorkersRelay(tmp_path, "allow-loopback-peers")
    try:
        yield running
    finally:
        running.stop()


def test_two_workers_serve_end_to_end_and_one_scrape_sums_them(relay: WorkersRelay) -> None:
    assert len(relay.worker_pids()) == 2 and relay.metric("turn_workers") == 2
    ports = map_ports(relay, 2)
    with Peer() as peer:
        clients = [relay.client("alice", port=ports[w][0]) for w in (0, 1)]
        try:
            for worker, client in enumerate(clients):
                response = client.allocate()
                relayed = response.get(Attr.XOR_RELAYED_ADDRESS)
                assert ok(response) and worker_of(relayed[1]) == worker
                assert ok(client.create_permission(peer.address))
                client.send_indication(peer.address, f"up {worker}".encode())
                assert peer.recv() == (f"up {worker}".encode(), relayed)
                peer.send(f"down {worker}".encode(), relayed)
                assert client.receive_data()[2] == f"down {worker}".encode()
            # Counts from both workers in one scrape, right away (the scrape asks the workers).
            assert relay.metric("turn_allocations") == 2
            assert relay.metric('turn_packets_total{direction="client_to_peer"}') == 2
            assert relay.metric('turn_packets_total{direction="peer_to_client"}') == 2
            assert relay.metric('turn_requests_total{method="allocate",result="success"}') >= 2
        finally:
            for client in clients:
                client.close()


def test_a_nonce_from_one_worker_authenticates_on_the_other(relay: WorkersRelay) -> None:
    """Nonces are bound to the client's address, not to a worker. A UDP client and a TCP connection
    from the same address and port are hashed independently (separate SO_REUSEPORT groups), so some
    of them land on different workers: the TCP Allocate then uses the nonce the other worker issued."""
    crossed = 0
    for _ in range(40):
        with relay.client("alice") as udp:
            port = udp.sock.getsockname()[1]
            udp_worker = allocate(udp)  # learns realm and nonce (401), allocates on worker X
            nonce = udp.session.nonce
            assert ok(udp.refresh(0))
        try:
            tcp_client = relay.client("alice", transport="tcp", port=port)
        except OSError as error:  # the UDP port was free, its TCP twin is held by another socket: next port
            if error.errno != errno.EADDRINUSE:
                raise
            continue
        with tcp_client as tcp:
            tcp.session.nonce, tcp.session.realm = nonce, "relay.test"
            response = tcp.transact(_allocate_request())
            assert ok(response), response  # no 401/438: the nonce from worker X was accepted
            tcp_worker = worker_of(response.get(Attr.XOR_RELAYED_ADDRESS)[1])
        if tcp_worker != udp_worker:
            crossed += 1
            if crossed >= 2:
                break
    assert crossed >= 2, "the kernel never sent the TCP connection to the other worker"


def _allocate_request():
    return request(Method.ALLOCATE, (Attr.REQUESTED_TRANSPORT, 17))


def test_total_and_per_user_quotas_hold_across_workers(tmp_path: Path) -> None:
    relay = WorkersRelay(tmp_path, "allow-loopback-peers", "total-quota=3", "user-quota=2")
    try:
        ports = map_ports(relay, 4)
        alice = [relay.client("alice", port=ports[w][0]) for w in (0, 1)]
        assert [allocate(c) for c in alice] == [0, 1]  # one on each worker
        for worker in (0, 1):  # a third for alice is refused whichever worker gets it
            with relay.client("alice", port=ports[worker][1]) as third:
                assert error_code(third.allocate()) == 486
        with relay.client("bob", port=ports[0][2]) as bob:
            assert allocate(bob) == 0  # total: 3 of 3
            for worker in (0, 1):
                with relay.client("carol", port=ports[worker][3]) as carol:
                    assert error_code(carol.allocate()) == 508
            assert relay.metric('turn_quota_rejections_total{quota="user"}') == 2
            assert relay.metric('turn_quota_rejections_total{quota="total"}') == 2
            assert ok(bob.refresh(0))
        with relay.client("carol", port=ports[1][3]) as carol:  # a slot freed on worker 0 serves worker 1
            assert allocate(carol) == 1
        for client in alice:
            client.close()
    finally:
        relay.stop()


def test_sigusr1_drains_every_worker_and_exits_0_when_allocations_end(relay: WorkersRelay) -> None:
    ports = map_ports(relay, 4)
    workers = relay.worker_pids()
    with Peer() as peer:
        holders = [relay.client("alice", port=ports[w][0]) for w in (0, 1)]
        relayed = []
        for worker, holder in enumerate(holders):
            response = holder.allocate()
            assert worker_of(response.get(Attr.XOR_RELAYED_ADDRESS)[1]) == worker
            relayed.append(response.get(Attr.XOR_RELAYED_ADDRESS))
            assert ok(holder.create_permission(peer.address))
        relay.signal(signal.SIGUSR1)
        wait_until(lambda: relay.http("/readyz")[0] == 503, "readyz to report draining")
        assert relay.metric("turn_draining") == 1
        for worker in (0, 1):
            with relay.client("bob", port=ports[worker][1]) as late:
                assert error_code(late.allocate()) == 403
        for holder, address in zip(holders, relayed, strict=True):  # existing allocations keep relaying
            peer.send(b"still relayed", address)
            assert holder.receive_data()[2] == b"still relayed"
            assert ok(holder.refresh(0))
            holder.close()
    wait_until(lambda: relay.process.poll() is not None, "the drained relay to exit", timeout=15)
    assert relay.process.returncode == 0
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)  # the workers exited too


def test_sighup_reloads_every_worker(relay_without_loopback: WorkersRelay) -> None:
    relay = relay_without_loopback
    ports = map_ports(relay, 4)
    with Peer() as peer:
        clients = [relay.client("alice", port=ports[w][0]) for w in (0, 1)]
        for worker, client in enumerate(clients):
            assert allocate(client) == worker
            assert error_code(client.create_permission(peer.address)) == 403  # loopback denied
        relay.lines.append("allow-loopback-peers")
        relay.write_config()
        relay.signal(signal.SIGHUP)

        def both_allowed() -> bool:
            return all(ok(client.create_permission(peer.address)) for client in clients)

        wait_until(both_allowed, "both workers to allow the loopback peer")
        for client in clients:
            client.send_indication(peer.address, b"after reload")
            assert peer.recv()[0] == b"after reload"
            client.close()


@pytest.fixture
def relay_without_loopback(tmp_path: Path):
    running = WorkersRelay(tmp_path)
    try:
        yield running
    finally:
        running.stop()


def test_a_killed_worker_is_restarted_and_the_other_keeps_its_allocations(relay: WorkersRelay) -> None:
    ports = map_ports(relay, 4)
    with Peer() as peer:
        holders = [relay.client("alice", port=ports[w][0]) for w in (0, 1)]
        relayed = []
        for worker, holder in enumerate(holders):
            response = holder.allocate()
            assert worker_of(response.get(Attr.XOR_RELAYED_ADDRESS)[1]) == worker
            relayed.append(response.get(Attr.XOR_RELAYED_ADDRESS))
            assert ok(holder.channel_bind(0x4000, peer.address))
        victim = relay.worker_pids()[0]
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: relay.metric("turn_worker_restarts_total") == 1, "the worker to be restarted")
        wait_until(lambda: relay.metric("turn_workers") == 2, "both workers to serve again")
        assert victim not in relay.worker_pids() and len(relay.worker_pids()) == 2
        # Exactly one allocation died with the killed worker; the other one still relays both ways.
        alive = []
        for holder, address in zip(holders, relayed, strict=True):
            peer.send(b"are you there", address)
            try:
                alive.append(holder.receive_data(timeout=0.5)[2] == b"are you there")
            except TimeoutError:
                alive.append(False)
        assert sorted(alive) == [False, True]
        survivor = holders[alive.index(True)]
        survivor.channel_data(0x4000, b"survivor")
        assert peer.recv()[0] == b"survivor"
        assert relay.metric("turn_allocations") == 1
        # The restarted worker serves its share of clients again (same listening socket).
        dead_worker = alive.index(False)
        assert error_code(holders[dead_worker].refresh()) == 437  # its allocation is gone
        with relay.client("bob", port=ports[dead_worker][1]) as fresh:
            assert allocate(fresh) == dead_worker
        for holder in holders:
            holder.close()


def test_ready_only_when_every_worker_serves(tmp_path: Path) -> None:
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify.sock")
    notify.bind(path)
    notify.settimeout(15)
    relay = None
    try:
        started = time.monotonic()
        relay = WorkersRelay(tmp_path, "allow-loopback-peers", env={"NOTIFY_SOCKET": path})
        message = notify.recv(4096).decode()
        assert "READY=1" in message and "2 workers" in message, message
        assert relay.metric("turn_workers") == 2  # both were serving when READY=1 was sent
        assert time.monotonic() - started < 15
    finally:
        notify.close()
        if relay is not None:
            relay.stop()
