"""The relay over real loopback sockets: UDP, TCP, TLS and PROXY v2 listeners, relay sockets, timers,
reload and drain, driven by the test kit's blocking TURN client."""

from __future__ import annotations

import socket
import ssl
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import pytest
from relay_testkit import (
    SECRET,
    Peer,
    RunningRelay,
    TurnClient,
    loopback_config,
    proxy_v2_header,
    request,
    rest_credentials,
    wait_until,
)

from relay.config import Listener
from relay.stun import Attr, MessageClass, Method, decode, encode
from relay.stun.constants import FAMILY_IPV6


def ok(response) -> bool:
    return response.message_class == MessageClass.SUCCESS


def error_code(response) -> int | None:
    error = response.get(Attr.ERROR_CODE)
    return error[0] if error else None


@pytest.fixture
def relay():
    with RunningRelay(loopback_config()) as running:
        yield running


def test_dual_stack_listener_reports_ipv4_clients_as_ipv4() -> None:
    with RunningRelay(loopback_config(listeners=(Listener("udp", "::", 0),))) as relay:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(2)
            sock.sendto(encode(request(Method.BINDING)), ("127.0.0.1", relay.address("udp")[1]))
            data, _ = sock.recvfrom(2048)
            assert decode(data).get(Attr.XOR_MAPPED_ADDRESS) == ("127.0.0.1", sock.getsockname()[1])
        username, password = rest_credentials()
        with TurnClient(("127.0.0.1", relay.address("udp")[1]), username, password) as client:
            response = client.allocate()
            assert response.get(Attr.XOR_MAPPED_ADDRESS)[0] == "127.0.0.1" and ok(response)


def test_udp_binding(relay: RunningRelay) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.sendto(encode(request(Method.BINDING)), relay.address("udp"))
        data, _ = sock.recvfrom(2048)
        assert decode(data).get(Attr.XOR_MAPPED_ADDRESS) == ("127.0.0.1", sock.getsockname()[1])


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_send_and_data_indications_and_channels(relay: RunningRelay, transport: str) -> None:
    with relay.client(transport) as client, Peer() as peer:
        response = client.allocate()
        assert ok(response) and client.verified(response)
        relayed = client.relayed(response)
        assert relayed[0] == "127.0.0.1" and 20000 <= relayed[1] <= 29999
        assert ok(client.create_permission(peer.address))
        client.send_indication(peer.address, b"hello peer")
        assert peer.recv() == (b"hello peer", relayed)
        peer.send(b"hello client", relayed)
        assert client.receive_data() == (peer.address, None, b"hello client")
        # Channel: ChannelData both ways (padded on TCP, odd length on purpose).
        assert ok(client.channel_bind(0x4001, peer.address))
        client.channel_data(0x4001, b"abcde")
        assert peer.recv() == (b"abcde", relayed)
        peer.send(b"fghij", relayed)
        assert client.receive_data() == (None, 0x4001, b"fghij")
        if transport == "tcp":
            # The stream stays framed: a STUN transaction right after padded ChannelData works.
            assert ok(client.refresh(600))
        stats = relay.call(relay.stats.snapshot)  # read on the relay's loop: counts are complete
        assert (stats["packets_client_to_peer"], stats["packets_peer_to_client"]) == (2, 2)
        assert stats["bytes_client_to_peer"] == len(b"hello peer") + 5


def test_peer_without_permission_is_dropped(relay: RunningRelay) -> None:
    with relay.client() as client, Peer() as peer, Peer("127.0.0.2") as stranger:
        relayed = client.relayed(client.allocate())
        client.create_permission(peer.address)
        stranger.send(b"let me in", relayed)
        peer.send(b"ok", relayed)
        assert client.receive_data()[2] == b"ok"  # the stranger's datagram never arrived first


def test_refresh_zero_releases_the_relay_port(relay: RunningRelay) -> None:
    with relay.client() as client:
        relayed = client.relayed(client.allocate())
        assert relay.allocations == 1
        assert client.refresh(0).get(Attr.LIFETIME) == 0
        assert relay.allocations == 0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(relayed)  # free again


def test_closing_tcp_connection_ends_the_allocation(relay: RunningRelay) -> None:
    client = relay.client("tcp")
    assert ok(client.allocate())
    assert relay.allocations == 1
    client.close()
    wait_until(lambda: relay.allocations == 0, "the closed connection's allocation to end", timeout=3)
    assert relay.call(lambda: relay.stats.connections_tcp) == 0


def test_allocation_expires_through_the_timer() -> None:
    with RunningRelay(loopback_config(default_lifetime=1, max_lifetime=1)) as relay, relay.client() as client:
        assert client.allocate().get(Attr.LIFETIME) == 1
        assert relay.allocations == 1
        allocated = time.monotonic()
        wait_until(lambda: relay.allocations == 0, "the 1 s allocation to expire", timeout=5)
        assert time.monotonic() - allocated >= 0.9  # not before its lifetime
        assert error_code(client.refresh()) == 437


def test_ipv6_allocation_over_ipv6_listener() -> None:
    config = loopback_config(listeners=(Listener("udp", "::1", 0),))
    with RunningRelay(config) as relay, relay.client() as client, Peer("::1") as peer:
        response = client.allocate((Attr.REQUESTED_TRANSPORT, 17), (Attr.REQUESTED_ADDRESS_FAMILY, FAMILY_IPV6))
        relayed = client.relayed(response)
        assert relayed[0] == "::1" and response.get(Attr.XOR_MAPPED_ADDRESS)[0] == "::1"
        assert ok(client.channel_bind(0x4ABC, peer.address))
        client.channel_data(0x4ABC, b"six")
        assert peer.recv() == (b"six", relayed)
        peer.send(b"back", relayed)
        assert client.receive_data() == (None, 0x4ABC, b"back")
        # An IPv4 peer on an IPv6-only allocation: 443.
        assert error_code(client.create_permission(("127.0.0.1", 9))) == 443


def test_dual_allocation_relays_both_families(relay: RunningRelay) -> None:
    with relay.client() as client, Peer() as peer4, Peer("::1") as peer6:
        response = client.allocate((Attr.REQUESTED_TRANSPORT, 17), (Attr.ADDITIONAL_ADDRESS_FAMILY, FAMILY_IPV6))
        relayed4, relayed6 = response.get_all(Attr.XOR_RELAYED_ADDRESS)
        assert ok(client.create_permission(peer4.address, peer6.address))
        client.send_indication(peer4.address, b"four")
        client.send_indication(peer6.address, b"six")
        assert peer4.recv() == (b"four", relayed4)
        assert peer6.recv() == (b"six", relayed6)


def test_even_port_reservation_over_sockets(relay: RunningRelay) -> None:
    with relay.client() as first, relay.client(user="bob") as second:
        response = first.allocate((Attr.REQUESTED_TRANSPORT, 17), (Attr.EVEN_PORT, True))
        port = first.relayed(response)[1]
        token = response.get(Attr.RESERVATION_TOKEN)
        assert port % 2 == 0 and token
        response = second.allocate((Attr.REQUESTED_TRANSPORT, 17), (Attr.RESERVATION_TOKEN, token))
        assert second.relayed(response)[1] == port + 1


def test_proxy_protocol_v2_gives_the_real_client_address() -> None:
    config = loopback_config(listeners=(Listener("tcp", "127.0.0.1", 0, proxy_protocol=True),))
    with RunningRelay(config) as relay:
        real_client = ("203.0.113.77", 51000)
        header = proxy_v2_header(real_client, ("10.0.0.5", 3479))
        with relay.client("tcp", proxy_header=header) as client:
            response = client.allocate()
            assert ok(response)
            assert response.get(Attr.XOR_MAPPED_ADDRESS) == real_client
        # Without a valid header the connection is closed and counted under its own reason.
        with socket.create_connection(relay.address("tcp"), timeout=2) as raw:
            raw.sendall(encode(request(Method.BINDING)))
            assert raw.recv(100) == b""
        assert relay.call(lambda: relay.stats.stream_closes_proxy_header) == 1


def test_nonce_from_proxy_address_is_bound_to_it() -> None:
    """A nonce issued to one PROXY-declared address does not authenticate another."""
    config = loopback_config(listeners=(Listener("tcp", "127.0.0.1", 0, proxy_protocol=True),))
    with RunningRelay(config) as relay:
        header_a = proxy_v2_header(("203.0.113.1", 1000), ("10.0.0.5", 3479))
        header_b = proxy_v2_header(("203.0.113.2", 1000), ("10.0.0.5", 3479))
        with relay.client("tcp", proxy_header=header_a) as a, relay.client("tcp", proxy_header=header_b) as b:
            challenge = a.transact(request(Method.ALLOCATE, (Attr.REQUESTED_TRANSPORT, 17)), sign=False)
            b.session.nonce = challenge.get(Attr.NONCE)
            response = b.transact(request(Method.ALLOCATE, (Attr.REQUESTED_TRANSPORT, 17)))
            assert error_code(response) == 438


def _make_cert(directory: Path) -> tuple[str, str]:
    cert, key = directory / "relay.crt", directory / "relay.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost"],
        check=True, capture_output=True,
    )  # fmt: skip
    return str(cert), str(key)


def test_tls_listener(tmp_path: Path) -> None:
    from relay.policy.tls import ServerTls

    cert, key = _make_cert(tmp_path)
    config = loopback_config(listeners=(Listener("tls", "127.0.0.1", 0),), cert_file=cert, key_file=key)
    client_context = ssl.create_default_context(cafile=cert)
    with RunningRelay(config, tls=ServerTls(cert, key)) as relay, Peer() as peer:
        username, password = rest_credentials()
        with TurnClient(
            relay.address("tls"), username, password, transport="tls", tls_context=client_context
        ) as client:
            assert client.sock.version() in ("TLSv1.2", "TLSv1.3")
            relayed = client.relayed(client.allocate())
            assert ok(client.channel_bind(0x4000, peer.address))
            client.channel_data(0x4000, b"over tls")
            assert peer.recv() == (b"over tls", relayed)
            peer.send(b"back", relayed)
            assert client.receive_data() == (None, 0x4000, b"back")


def test_reload_rotates_secrets_and_peer_file_without_dropping_sessions(tmp_path: Path) -> None:
    """Reload the way the CLI does: load_config again (it re-reads the files), apply_reload, server.reload."""
    from relay.config import apply_reload, load_config

    peers_file, secrets_file, conf = tmp_path / "allowed-peers.conf", tmp_path / "secrets", tmp_path / "relay.conf"
    peers_file.write_text("127.0.0.1\n")
    secrets_file.touch(mode=0o600)
    secrets_file.write_text(SECRET + "\n")
    conf.write_text(
        f"realm=relay.test\nuse-auth-secret\nauth-secret-file={secrets_file}\nallowed-peers-file={peers_file}\n"
        "allow-loopback-peers\nrelay-ip=127.0.0.1\nmin-port=20000\nmax-port=29999\n"
    )

    def loaded():
        result = load_config(["-c", str(conf)], {})
        assert result.ok, result.report()
        return result.config

    def reload() -> None:
        new, _ = apply_reload(relay.server.config, loaded())
        # The loader accepts loopback entries only with allow-loopback-peers; this relay keeps loopback
        # closed except for the listed addresses, as production keeps everything but the BBB servers closed.
        new = replace(new, allow_loopback_peers=False)
        relay.call(lambda: relay.server.reload(new))

    initial = loaded()
    assert [str(n) for n in initial.allowed_peers] == ["127.0.0.1/32"]  # the file's one entry
    config = loopback_config(
        auth_secrets=initial.auth_secrets, allowed_peers=initial.allowed_peers, allow_loopback_peers=False
    )
    with RunningRelay(config) as relay, relay.client() as client, Peer() as peer, Peer("127.0.0.2") as other:
        relayed = client.relayed(client.allocate())
        assert ok(client.create_permission(peer.address))
        assert error_code(client.create_permission(other.address)) == 403  # loopback is not allowed wholesale
        # Rotation: add a secret; credentials from the new one work, the old session keeps going.
        secrets_file.write_text(f"{SECRET}\nnext-secret-abcdefgh\n")
        reload()
        username, password = rest_credentials("carol", secret="next-secret-abcdefgh")
        with TurnClient(relay.address("udp"), username, password) as fresh:
            assert ok(fresh.allocate())
        client.send_indication(peer.address, b"still here")
        assert peer.recv()[0] == b"still here"
        # The peer list changes: the old permission is revoked at once, the new peer is allowed.
        peers_file.write_text("127.0.0.2  # the new BBB server\n")
        reload()
        client.send_indication(peer.address, b"revoked")
        peer.send(b"revoked too", relayed)
        client.handled()  # the relay has taken the indication: had it been forwarded, the peer would hold it
        assert peer.nothing_received(0)
        assert error_code(client.create_permission(peer.address)) == 403
        assert ok(client.create_permission(other.address))
        client.send_indication(other.address, b"new server")
        assert other.recv()[0] == b"new server"
        assert client.pending == []  # nor did "revoked too" reach the client while it waited for answers


def test_drain_refuses_new_allocations_keeps_existing(relay: RunningRelay) -> None:
    with relay.client() as client, relay.client(user="bob") as late, Peer() as peer:
        assert ok(client.allocate())
        relay.draining = True
        assert error_code(late.allocate()) == 403
        assert ok(client.create_permission(peer.address))
        assert ok(client.refresh())


def test_runs_on_uvloop() -> None:
    with RunningRelay(loopback_config(), use_uvloop=True) as relay, relay.client() as client, Peer() as peer:
        relayed = client.relayed(client.allocate())
        client.channel_bind(0x4000, peer.address)
        client.channel_data(0x4000, b"uv")
        assert peer.recv() == (b"uv", relayed)


def test_advertised_external_ip_differs_from_bound_ip() -> None:
    """EC2 1:1 NAT: sockets bind the private address, XOR-RELAYED-ADDRESS carries the public one."""
    with RunningRelay(loopback_config(external_ip="198.51.100.200")) as relay, relay.client() as client:
        relayed = client.relayed(client.allocate())
        assert relayed[0] == "198.51.100.200"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe, pytest.raises(OSError):
            probe.bind(("127.0.0.1", relayed[1]))  # the real socket is on the private address


def test_unspecified_relay_address_without_external_ip_is_refused_clearly() -> None:
    with pytest.raises(ValueError, match="external-ip"), RunningRelay(loopback_config(relay_ip="0.0.0.0")):
        pass


def test_an_internal_error_costs_one_datagram_not_the_listener() -> None:
    """Defence in depth: if the packet path ever raises, the rest of the batch and the listener survive
    (the pure-Python path: the compiled one never calls a channel's sendto, see the next test)."""
    with RunningRelay(loopback_config(), packet_path="python") as relay, relay.client() as client, Peer() as peer:
        relayed = client.relayed(client.allocate())
        client.channel_bind(0x4000, peer.address)
        allocation = relay.call(lambda: next(iter(relay.server.udp[0].allocations.values())))
        channel = allocation.channels[0x4000]
        sendto = channel.sendto

        def broken(data, address):  # the send to the peer, reached by every ChannelData reader
            if bytes(data) == b"boom":
                raise RuntimeError("simulated bug")
            return sendto(data, address)

        relay.call(lambda: setattr(channel, "sendto", broken))
        client.channel_data(0x4000, b"boom")
        client.channel_data(0x4000, b"fine")
        assert peer.recv() == (b"fine", relayed)
        assert relay.call(lambda: relay.stats.malformed_udp) == 1


def test_an_internal_error_in_a_handed_back_datagram_costs_that_datagram() -> None:
    """The compiled path: a datagram it hands back to Python (here, a Binding request) meets a bug; the
    listener, the C loop and the channel it forwards keep working."""
    with RunningRelay(loopback_config(), packet_path="compiled") as relay, relay.client() as client, Peer() as peer:
        relayed = client.relayed(client.allocate())
        client.channel_bind(0x4000, peer.address)
        listener = relay.server.udp[0]
        core_handle = listener.core.handle

        def broken(data, *args):
            if data[:2] == b"\x00\x01":
                raise RuntimeError("simulated bug")
            return core_handle(data, *args)

        relay.call(lambda: setattr(listener.core, "handle", broken))
        client.send_raw(encode(request(Method.BINDING)))
        client.channel_data(0x4000, b"fine")
        assert peer.recv() == (b"fine", relayed)
        wait_until(lambda: relay.call(lambda: relay.stats.malformed_udp) == 1, "the broken datagram counted")
