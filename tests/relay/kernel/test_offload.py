"""`offload.start`: off loads nothing, auto falls back with one log line naming the reason, on refuses to
start; on a host that can, the program is attached to the listening address's interface with its MTU.
The interfaces are veth pairs in a throwaway network namespace."""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Iterator

import pytest
from netns_kit import Topology

from relay.config import Listener, RelayConfig
from relay.server.kernel import offload
from relay.server.kernel.loader import attached_program


class _Namespace(Topology):
    def __init__(self) -> None:
        self.relay = f"ktoff{os.getpid()}"
        self.names = [self.relay]

    def create(self) -> None:
        subprocess.run(["ip", "netns", "add", self.relay], check=True)
        for name, address, mtu in (
            ("d0", "10.72.0.2/24", "1400"),
            ("d1", "10.72.1.2/24", "1500"),
            ("d2", "10.72.2.2/24", "9001"),  # an EC2 interface's
        ):
            for command in (
                ["ip", "link", "add", name, "type", "veth", "peer", "name", f"{name}p"],
                ["ip", "link", "set", name, "mtu", mtu, "up"],
                ["ip", "addr", "add", address, "dev", name],
            ):
                subprocess.run(["ip", "netns", "exec", self.relay, *command], check=True)


@pytest.fixture(scope="module")
def host() -> Iterator[_Namespace]:
    namespace = _Namespace()
    try:
        namespace.create()
        yield namespace
    finally:
        namespace.destroy()


def test_off_loads_nothing_and_a_bad_mode_is_named() -> None:
    assert offload.start("off", "10.72.0.2", "10.72.0.2") is None
    with pytest.raises(ValueError, match="kernel-offload is 'yes'; use one of off, auto, on"):
        offload.start("yes", "10.72.0.2", "10.72.0.2")


def test_auto_attaches_to_the_listening_interface_with_its_mtu(host: _Namespace, bpf_object: bytes) -> None:
    started = host.run_in(host.relay, lambda: offload.start("auto", "10.72.0.2", "10.72.0.2", obj=bpf_object))
    assert started is not None and (started.interface, started.mtu) == ("d0", 1400)
    try:
        assert host.run_in(host.relay, lambda: attached_program("d0")) is not None
        assert host.run_in(host.relay, lambda: attached_program("d1")) is None
    finally:
        host.run_in(host.relay, started.stop)
    assert host.run_in(host.relay, lambda: attached_program("d0")) is None


def test_an_interface_with_jumbo_frames_gets_the_internets_mtu(host: _Namespace, bpf_object: bytes) -> None:
    """EC2's 9001: the program never builds a packet an internet gateway would drop (DF is set)."""
    started = host.run_in(host.relay, lambda: offload.start("auto", "10.72.2.2", "10.72.2.2", obj=bpf_object))
    assert started is not None and (started.interface, started.mtu) == ("d2", offload.INTERNET_MTU) == ("d2", 1500)
    host.run_in(host.relay, started.stop)


@pytest.mark.parametrize(
    ("listening", "relay", "reason"),
    [
        ("192.0.2.77", "192.0.2.77", "no interface holds the listening address 192.0.2.77 as its IPv4 address"),
        ("10.72.0.2", "10.72.1.2", "the relay address 10.72.1.2 is not on d0, the listening address's interface"),
        ("127.0.0.1", "127.0.0.1", "the listening address 127.0.0.1 is a loopback address"),
        ("", "10.72.0.2", "the relay has no UDP listener on an IPv4 address"),
    ],
)
def test_auto_falls_back_with_one_line_and_on_refuses(
    host: _Namespace, bpf_object: bytes, caplog: pytest.LogCaptureFixture, listening: str, relay: str, reason: str
) -> None:
    with caplog.at_level(logging.WARNING, logger="relay.kernel"):
        assert host.run_in(host.relay, lambda: offload.start("auto", listening, relay, obj=bpf_object)) is None
    (record,) = caplog.records
    assert record.getMessage().startswith(f"kernel offload unavailable, serving from user space: {reason}")
    with pytest.raises(offload.KernelOffloadRequired, match=f"kernel-offload is on but cannot be used: {reason}"):
        host.run_in(host.relay, lambda: offload.start("on", listening, relay, obj=bpf_object))


def test_a_kernel_refusal_falls_back_too(host: _Namespace, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="relay.kernel"):
        assert host.run_in(host.relay, lambda: offload.start("auto", "10.72.0.2", "10.72.0.2", obj=b"not ELF")) is None
    assert "could not open the BPF object" in caplog.text


def test_start_for_takes_the_first_ipv4_udp_listener_and_the_relay_address(
    host: _Namespace, bpf_object: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    listeners = (Listener("tcp", "10.72.1.2", 3478), Listener("udp", "::1", 3478), Listener("udp", "10.72.0.2", 3478))
    config = RelayConfig(listeners=listeners, relay_ip="10.72.0.2", kernel_offload="auto")
    started = host.run_in(host.relay, lambda: offload.start_for(config, obj=bpf_object))
    assert started is not None and started.interface == "d0"
    host.run_in(host.relay, started.stop)
    off = RelayConfig(listeners=listeners, relay_ip="10.72.0.2", kernel_offload="off")
    assert host.run_in(host.relay, lambda: offload.start_for(off, obj=bpf_object)) is None
    tcp_only = RelayConfig(listeners=listeners[:1], relay_ip="10.72.0.2", kernel_offload="on")
    with pytest.raises(offload.KernelOffloadRequired, match="no UDP listener on an IPv4 address"):
        host.run_in(host.relay, lambda: offload.start_for(tcp_only, obj=bpf_object))
