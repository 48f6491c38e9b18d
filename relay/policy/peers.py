"""Which peers an allocation may talk to: deny by default every special-purpose range, let an
allow-list win (the BBB servers), and normalise every address before looking at it.

Normalisation closes the known bypasses of coturn's checks:
  * IPv4-mapped IPv6 (`::ffff:127.0.0.1`, CVE-2026-27624) is the IPv4 address it maps to: the kernel
    delivers it there, so it is checked (and relayed) as that IPv4 address.
  * `0.0.0.0` and `::` (CVE-2020-26262) reach the local host: 0.0.0.0/8 and ::/128 are denied.
  * IPv4-compatible (`::127.0.0.1`), NAT64 (`64:ff9b::/96`), 6to4 (`2002::/16`), Teredo and the other
    IPv6 forms that embed an IPv4 address are denied as whole prefixes, together with everything
    outside global unicast 2000::/3, so no embedded address needs to be trusted.
The allow-list is matched against the normalised address only, so allowing 127.0.0.1 (tests) does not
allow 64:ff9b::7f00:1 or ::127.0.0.1.

Sources: IANA IPv4/IPv6 Special-Purpose Address Registries; EnableSecurity coturn-secure-config
recommended.conf; firefart/stunner range-scan targets.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_DENIED: tuple[tuple[str, str], ...] = (
    ("0.0.0.0/8", "this network (reaches the local host)"),
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "shared address space (CGNAT)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local (cloud metadata 169.254.169.254)"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "IETF protocol assignments"),
    ("192.0.2.0/24", "documentation (TEST-NET-1)"),
    ("192.31.196.0/24", "AS112-v4"),
    ("192.52.193.0/24", "AMT"),
    ("192.88.99.0/24", "6to4 relay anycast"),
    ("192.168.0.0/16", "private"),
    ("192.175.48.0/24", "AS112 direct delegation"),
    ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation (TEST-NET-2)"),
    ("203.0.113.0/24", "documentation (TEST-NET-3)"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved and limited broadcast"),
    ("::/128", "unspecified (reaches the local host)"),
    ("::1/128", "loopback"),
    ("::/96", "IPv4-compatible (deprecated)"),
    ("64:ff9b::/96", "NAT64 well-known prefix"),
    ("64:ff9b:1::/48", "NAT64 local-use prefix"),
    ("100::/64", "discard-only"),
    ("100:0:0:1::/64", "dummy prefix"),
    ("2001::/23", "IETF protocol assignments (Teredo, benchmarking, ORCHID)"),
    ("2001:db8::/32", "documentation"),
    ("2002::/16", "6to4"),
    ("2620:4f:8000::/48", "AS112 direct delegation"),
    ("3fff::/20", "documentation"),
    ("5f00::/16", "SRv6 SIDs"),
    ("fc00::/7", "unique local"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local (deprecated)"),
    ("ff00::/8", "multicast"),
    # Everything outside global unicast 2000::/3 (covers reserved, IPv4-mapped remnants, future blocks).
    ("::/3", "not global unicast"),
    ("4000::/2", "not global unicast"),
    ("8000::/1", "not global unicast"),
)

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


def normalise(host: str | IPAddress) -> IPAddress:
    """Parse a peer address; an IPv4-mapped IPv6 address becomes the IPv4 address it maps to."""
    address = ipaddress.ip_address(host) if isinstance(host, str) else host
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped
        if mapped is not None:
            return mapped
        if address.scope_id:
            address = ipaddress.IPv6Address(address.packed)
    return address


def normalise_text(host: str) -> str:
    """The normalised address as the text `socket.recvfrom` reports for it (inet_ntop form)."""
    return str(normalise(host))


@dataclass(frozen=True)
class PeerDecision:
    allowed: bool
    address: str  # normalised
    reason: str  # which rule decided, for logs and metrics labels (bounded set of strings)


class _Rules:
    """Networks as (family, network int, mask int, reason) for a cheap linear check."""

    __slots__ = ("v4", "v6")

    def __init__(self, networks: Iterable[tuple[IPNetwork, str]]) -> None:
        self.v4: list[tuple[int, int, str]] = []
        self.v6: list[tuple[int, int, str]] = []
        for network, reason in networks:
            target = self.v4 if network.version == 4 else self.v6
            target.append((int(network.network_address), int(network.netmask), reason))

    def match(self, address: IPAddress) -> str | None:
        value = int(address)
        for net, mask, reason in self.v4 if address.version == 4 else self.v6:
            if value & mask == net:
                return reason
        return None


class PeerPolicy:
    """Allow-list wins, then the operator's and the built-in deny lists; everything else is allowed."""

    def __init__(
        self,
        allowed: Iterable[IPNetwork] = (),
        denied: Iterable[IPNetwork] = (),
        *,
        allow_loopback: bool = False,
    ) -> None:
        self.update(allowed, denied, allow_loopback=allow_loopback)

    def update(
        self, allowed: Iterable[IPNetwork], denied: Iterable[IPNetwork], *, allow_loopback: bool = False
    ) -> None:
        """Swap the lists (SIGHUP). The caller then revokes permissions the new lists refuse."""
        allow = [(net, "allow-list") for net in allowed]
        if allow_loopback:
            allow += [(net, "loopback allowed") for net in LOOPBACK]
        deny = [(net, "operator deny list") for net in denied]
        deny += [(ipaddress.ip_network(net), reason) for net, reason in DEFAULT_DENIED]
        self._allow = _Rules(allow)
        self._deny = _Rules(deny)

    def check(self, host: str | IPAddress) -> PeerDecision:
        try:
            address = normalise(host)
        except ValueError:
            return PeerDecision(False, str(host), "not an IP address")
        text = str(address)
        allowed_by = self._allow.match(address)
        if allowed_by is not None:
            return PeerDecision(True, text, allowed_by)
        denied_by = self._deny.match(address)
        if denied_by is not None:
            return PeerDecision(False, text, denied_by)
        return PeerDecision(True, text, "public")

    def allows(self, host: str | IPAddress) -> bool:
        return self.check(host).allowed


def parse_peer_list(text: str, *, source: str = "peer list") -> tuple[IPNetwork, ...]:
    """Parse an allow/deny list file: one address, CIDR network or `first-last` range per line; `#`
    starts a comment. Raises ValueError naming the line and the expected forms."""
    networks: list[IPNetwork] = []
    for number, line in enumerate(text.splitlines(), start=1):
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        try:
            if "-" in entry:
                first, last = (ipaddress.ip_address(part.strip()) for part in entry.split("-", 1))
                networks.extend(ipaddress.summarize_address_range(first, last))  # type: ignore[arg-type]
            else:
                networks.append(ipaddress.ip_network(entry, strict=False))
        except (ValueError, TypeError) as error:
            raise ValueError(
                f"{source} line {number}: {entry!r} is not an IP address, CIDR network (203.0.113.0/24) "
                f"or range (203.0.113.1-203.0.113.9): {error}"
            ) from None
    return tuple(networks)
