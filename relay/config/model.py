"""The relay's validated configuration: one immutable value that every part of the relay reads.

Loading (file, CLI flags, environment, coturn's turnserver.conf keys) lives in the rest of `relay.config`;
this module only defines the shape and the defaults, so the protocol core and the I/O layer depend on
nothing but this value.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Literal

Transport = Literal["udp", "tcp", "tls"]
KERNEL_OFFLOAD_MODES = ("off", "auto", "on")  # kernel-offload's values (relay.server.kernel.offload)
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


# An answer to an unauthenticated UDP request is at most this many times the request's size (the
# relay drops a larger one: relay.turn.handler). The smallest request a client starts with is an
# Allocate with only REQUESTED-TRANSPORT, 28 bytes (Chromium's first Allocate; uclient 56-60, aioice
# 36: bench/relay_client_messages.py); its 401 is 60 bytes plus the realm padded to 4, so the realm
# may be at most 5 x 28 - 60 = 80 characters for Chromium to get its 401.
AMPLIFICATION_BOUND = 5
SMALLEST_FIRST_REQUEST = 28
MAX_REALM_LENGTH = (AMPLIFICATION_BOUND * SMALLEST_FIRST_REQUEST - 60) // 4 * 4


@dataclass(frozen=True)
class Listener:
    """One listening socket. `proxy_protocol` expects a PROXY v2 header first (TCP behind an NLB);
    `client_transport` is what its clients used to reach the balancer ("tls" when the balancer
    terminates TLS): the label their connections and counters carry. None = `transport`."""

    transport: Transport
    host: str
    port: int
    proxy_protocol: bool = False
    client_transport: Transport | None = None

    @property
    def label(self) -> Transport:
        return self.client_transport or self.transport


@dataclass(frozen=True)
class RelayConfig:
    realm: str = "turn.local"
    listeners: tuple[Listener, ...] = (
        Listener("udp", "0.0.0.0", 3478),
        Listener("tcp", "0.0.0.0", 3478),
    )
    # Relay sockets bind `relay_ip`; XOR-RELAYED-ADDRESS advertises `external_ip` (1:1 NAT on EC2).
    relay_ip: str = "0.0.0.0"
    external_ip: str | None = None
    relay_ipv6: str | None = None
    external_ipv6: str | None = None
    min_port: int = 49152
    max_port: int = 65535

    # Authentication: TURN REST API shared secrets (all accepted, for rotation) and/or static users.
    auth_secrets: tuple[str, ...] = ()
    static_users: tuple[tuple[str, str], ...] = ()  # (username, password)
    auth_secret_file: str | None = None  # one secret per line; the loader merges it into auth_secrets
    # Key for stateless nonces; instances sharing it accept each other's nonces. None = random per start.
    nonce_secret: bytes | None = None
    nonce_lifetime: int = 600  # seconds; older nonces get 438 Stale Nonce
    # Reflection budget per source IP and worker (relay.policy.quotas.SourceLimiter): 401/438 answers larger
    # than their request that the source never follows with a valid nonce. A NAT crowd that
    # authenticates earns each one back, so only the round trip's worth is outstanding: 1,000
    # Allocates a second behind one address at 200 ms RTT is 200. A flood that never authenticates
    # gets at most 100 answers/s after the burst: <= 15 KB/s towards one victim address (148-byte 401).
    unauthenticated_rate: float = 100.0
    unauthenticated_burst: float = 1000.0
    rest_ms_timestamp_ttl: int = 86400  # legacy BBB usernames carry a creation time in ms: valid this long
    software: str | None = None  # SOFTWARE attribute; None = do not announce
    fingerprint: bool = True

    # Peer policy: deny-by-default special-purpose ranges; `allowed_peers` wins over every deny.
    allowed_peers: tuple[IPNetwork, ...] = ()
    denied_peers: tuple[IPNetwork, ...] = ()
    allowed_peers_file: str | None = None  # re-read on SIGHUP (BBB server list kept fresh by the host)
    allow_loopback_peers: bool = False  # tests and the benchmark only

    # Quotas (0 = unlimited).
    total_quota: int = 0
    # Per TURN user (the REST username's user part: one BBB participant across all of their peer
    # connections and reloads). BBB gives each stream its own peer connection (audio, each own camera
    # up to userCameraCap 3, each watched webcam, the screen share) and a relaying browser holds one
    # allocation per peer connection and TURN URL (three: turn UDP, turn TCP, turns 443). A viewer on
    # BBB's default desktop page size of 5 webcams holds (1 + 1 + 5 + 1) x 3 = 24; a moderator, whose
    # default page size is 0 (no pagination), (1 + 3 + 60 + 1) x 3 = 195 watching 60 webcams. 200
    # covers that and still keeps one credential to 1.2 % of a server's 16,384 relay ports.
    user_quota: int = 200
    max_bps: int = 0  # per allocation, bytes per second, each direction
    max_permissions: int = 100  # peer IPs per allocation (508 beyond)
    # Channels per allocation (508 beyond). Chromium binds one channel per remote address it sends to
    # through the relay (libwebrtc's TurnEntry): for BBB a media server's 1-4 ICE candidates (the
    # bench/relay_client_messages.py sees 1 for Chromium, 2 for uclient), so 100 is never reached, and
    # one allocation's channel state stays under ~60 KB (live channels plus the RFC 8656 five-minute
    # cool-down of expired ones).
    max_channels: int = 100
    # RFC 8656 channels are 0x4000-0x4FFF; RFC 5766 clients (coturn <= 4.6 turnutils_uclient, pjnath)
    # pick up to 0x7FFF. Browsers count up from 0x4000, so the strict range is the default.
    legacy_channel_numbers: bool = False

    # Lifetimes (seconds), RFC 8656 defaults.
    default_lifetime: int = 600
    max_lifetime: int = 3600
    permission_lifetime: int = 300
    channel_lifetime: int = 600

    # TLS (for `tls` listeners).
    cert_file: str | None = None
    key_file: str | None = None
    tls_min_version: Literal["TLSv1.2", "TLSv1.3"] = "TLSv1.2"
    tls_ciphers: str | None = None  # None = the relay's modern default set

    # Operations.
    admin_host: str = "127.0.0.1"
    admin_port: int = 9641  # /metrics, /healthz, /readyz, POST /drain
    drain_timeout: int = 3600  # seconds a drain waits for allocations before exiting anyway
    drain_min_allocations: int = 0  # a drain ends once allocations fall to this many (coturn's option)
    workers: int = 0  # 0 = one per CPU core
    # In-kernel forwarding of UDP channels and indications (relay.server.kernel): "auto" uses it when the
    # program loads and says in one log line why not otherwise; "on" refuses to start without it.
    kernel_offload: Literal["off", "auto", "on"] = "auto"
    log_level: str = "info"
    log_format: Literal["json", "text"] = "json"

    # Keys read from a coturn file that were accepted but have no effect (reported as warnings).
    ignored_keys: tuple[str, ...] = field(default=(), compare=False)
