"""The pieces of the multi-worker relay on their own: the shared quota table (also under real
concurrency from another process), the control messages and their configuration encoding, the port
range split and the SO_REUSEPORT listener groups."""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from relay_testkit import loopback_config

from relay.config import Listener, RelayConfig
from relay.policy.shared_quotas import SharedQuota
from relay.process import ipc
from relay.process.workers import bind_listeners, split_port_range, worker_count

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def table():
    parent = SharedQuota.create(2, slots=1024)
    rows = [SharedQuota(parent.fd, 0, total=3, per_user=2), SharedQuota(parent.fd, 1, total=3, per_user=2)]
    yield parent, rows
    for quota in (*rows, parent):
        quota.close()
    os.close(parent.fd)


def test_shared_quota_counts_totals_and_users_across_workers(table) -> None:
    parent, (first, second) = table
    assert first.try_acquire("alice") is None
    assert second.try_acquire("alice") is None
    assert first.try_acquire("alice") == 486 and second.try_acquire("alice") == 486  # per user, both rows
    assert second.try_acquire("bob") is None
    assert first.try_acquire("carol") == 508 and second.try_acquire("carol") == 508  # total, both rows
    assert parent.total == 3 and parent.user_count("alice") == 2 and parent.user_count("bob") == 1
    first.release("alice")
    assert second.try_acquire("carol") is None  # a slot freed by worker 0 serves worker 1
    with pytest.raises(ValueError, match="more often than acquired"):
        first.release("alice")
    first.update(0, 0)  # a reload lifts the limits for new allocations
    assert first.try_acquire("alice") is None and parent.total == 4


def test_reset_worker_forgets_only_the_dead_workers_share(table) -> None:
    parent, (first, second) = table
    assert first.try_acquire("alice") is None and first.try_acquire("bob") is None
    assert second.try_acquire("alice") is None
    parent.reset_worker(0)
    assert parent.total == 1 and parent.user_count("alice") == 1 and parent.user_count("bob") == 0
    assert first.try_acquire("carol") is None and first.try_acquire("dave") is None  # room again: 3 of 3
    assert second.try_acquire("erin") == 508


def test_shared_quota_refuses_foreign_memory_and_bad_rows(tmp_path: Path) -> None:
    junk = tmp_path / "junk"
    junk.write_bytes(b"\x00" * 4096)
    with open(junk, "r+b") as handle, pytest.raises(ValueError, match="not one this relay version created"):
        SharedQuota(handle.fileno(), 0)
    parent = SharedQuota.create(2, slots=16)
    try:
        with pytest.raises(ValueError, match="outside the quota table"):
            SharedQuota(parent.fd, 2)
    finally:
        parent.close()
        os.close(parent.fd)
    with pytest.raises(ValueError, match="at least one worker"):
        SharedQuota.create(0)


def test_shared_quota_loses_no_update_under_concurrency_from_another_process() -> None:
    """Two processes acquire and release as fast as they can: the lock keeps every count exact."""
    parent = SharedQuota.create(2, slots=64)
    mine = SharedQuota(parent.fd, 0)
    script = (
        "import sys\n"
        "from relay.policy.shared_quotas import SharedQuota\n"
        "q = SharedQuota(int(sys.argv[1]), 1)\n"
        "for i in range(3000):\n"
        "    assert q.try_acquire('shared-user') is None\n"
        "    if i % 3 == 0:\n"
        "        q.release('shared-user')\n"
    )
    try:
        child = subprocess.Popen(
            [sys.executable, "-c", script, str(parent.fd)],
            pass_fds=[parent.fd],
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        for i in range(3000):
            assert mine.try_acquire("shared-user") is None
            if i % 3 == 0:
                mine.release("shared-user")
        assert child.wait(60) == 0
        assert parent.total == 4000 and parent.user_count("shared-user") == 4000
    finally:
        mine.close()
        parent.close()
        os.close(parent.fd)


def test_configuration_travels_to_workers_unchanged() -> None:
    config = replace(
        loopback_config(),
        listeners=(Listener("udp", "0.0.0.0", 3478), Listener("tcp", "::", 443, proxy_protocol=True)),
        static_users=(("operator", "pa:ss word"),),
        denied_peers=(ipaddress.ip_network("198.51.100.0/24"), ipaddress.ip_network("2001:db8::/32")),
        nonce_secret=bytes(range(32)),
        external_ip="203.0.113.5",
        unauthenticated_rate=12.5,
        ignored_keys=("verbose",),
        tls_ciphers=None,
    )
    assert ipc.config_from_wire(ipc.config_to_wire(config)) == config
    assert ipc.config_from_wire(ipc.config_to_wire(RelayConfig())) == RelayConfig()
    wire = ipc.config_to_wire(config)
    with pytest.raises(ValueError, match="unknown configuration fields"):
        ipc.config_from_wire({**wire, "surprise": 1})
    with pytest.raises(ValueError, match="unexpected wire value"):
        ipc.config_from_wire({**wire, "realm": {"not": "text"}})


def test_control_messages_over_a_socketpair() -> None:
    parent, child = ipc.socketpair()
    child.setblocking(False)
    try:
        assert ipc.receive(child) == []
        assert ipc.send(parent, {"type": "drain"}) and ipc.send(parent, {"type": "snapshot", "id": 7})
        assert ipc.receive(child) == [{"type": "drain"}, {"type": "snapshot", "id": 7}]
        parent.send(b"[1, 2]")
        with pytest.raises(ValueError, match="without a type"):
            ipc.receive(child)
        parent.close()
        with pytest.raises(EOFError):
            ipc.receive(child)
        assert not ipc.send(child, {"type": "stats"})  # the other side is gone: reported, not raised
    finally:
        child.close()


def test_port_range_split_is_contiguous_and_disjoint() -> None:
    assert split_port_range(49152, 65535, 2) == [(49152, 57343), (57344, 65535)]
    shares = split_port_range(20000, 20010, 3)
    assert shares == [(20000, 20002), (20003, 20005), (20006, 20010)]
    with pytest.raises(ValueError, match="too small for 4 workers"):
        split_port_range(20000, 20006, 4)


def test_worker_count_follows_the_setting_or_the_usable_cpus() -> None:
    assert worker_count(RelayConfig(workers=3)) == 3
    assert worker_count(RelayConfig(workers=0)) == len(os.sched_getaffinity(0))


def test_listener_groups_share_one_port_per_listener() -> None:
    groups = bind_listeners([Listener("udp", "127.0.0.1", 0), Listener("tcp", "127.0.0.1", 0)], 3)
    try:
        for group, kind in zip(groups, (socket.SOCK_DGRAM, socket.SOCK_STREAM), strict=True):
            assert len(group) == 3 and len({sock.getsockname() for sock in group}) == 1
            assert all(sock.type == kind for sock in group)
            assert all(sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) for sock in group)
            assert not any(os.get_inheritable(sock.fileno()) for sock in group)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as intruder, pytest.raises(OSError):
            intruder.bind(groups[0][0].getsockname())  # no SO_REUSEPORT: the port is not shared with it
    finally:
        for group in groups:
            for sock in group:
                sock.close()
