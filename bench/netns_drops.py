"""Where a benchmark row's packets were dropped: on the relay host, or in the load (the client's and the
peer's sockets, the router, the load cores' backlog).

turnutils_uclient sees only the end-to-end loss. On a small machine the load generator saturates its core
before a fast server does (2 cores, 40,000 msg/s: turnutils_peer's 4 MiB receive buffer overflows while the
relay namespace drops nothing), and that loss would be charged to the server. The kernel counts every drop
where it happens, so each row reads the counters before and after, per namespace:

  * UDP: Udp and Udp6 InErrors (receive buffer full, bad checksum) and SndbufErrors, /proc/net/snmp{,6};
  * interfaces: rx and tx dropped of every interface, /proc/net/dev;
  * the per-CPU backlog (/proc/net/softnet_stat, dropped): a server core's drops are the host's, a load
    core's the load's (RPS puts the relay interface's receive work on the server cores).

The namespaces' counters are read with `ip netns exec NS cat ...`: /proc/net follows the reader's namespace.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from pathlib import Path

UDP_FIELDS = ("InErrors", "SndbufErrors")
UDP6_FIELDS = ("Udp6InErrors", "Udp6SndbufErrors")


def _snmp(text: str) -> int:
    """Udp InErrors + SndbufErrors from /proc/net/snmp (a header line, then a value line)."""
    lines = [line.split() for line in text.splitlines() if line.startswith("Udp:")]
    if len(lines) < 2:
        return 0
    values = dict(zip(lines[0][1:], lines[1][1:], strict=True))
    return sum(int(values.get(name, 0)) for name in UDP_FIELDS)


def _snmp6(text: str) -> int:
    values = dict(line.split()[:2] for line in text.splitlines() if line.startswith("Udp6"))
    return sum(int(values.get(name, 0)) for name in UDP6_FIELDS)


def interfaces(dev: str) -> dict[str, list[int]]:
    """/proc/net/dev's counters by interface (receive: bytes, packets, errs, drop, ...; transmit from the 9th)."""
    out = {}
    for line in dev.splitlines()[2:]:
        name, _, counters = line.partition(":")
        if counters.split():
            out[name.strip()] = [int(field) for field in counters.split()]
    return out


def tx_packets(dev: str, interface: str, where: str) -> int:
    """Packets `interface` sent, from /proc/net/dev's text as read `where` (named when it is missing)."""
    counters = interfaces(dev).get(interface)
    if counters is None:
        raise RuntimeError(f"{interface} not found in {where}")
    return counters[9]


def _dev(text: str) -> int:
    """rx dropped + tx dropped of every interface in /proc/net/dev."""
    return sum(fields[3] + fields[11] for fields in interfaces(text).values() if len(fields) >= 12)


def proc_net(ns: str, name: str) -> str:
    """/proc/net/`name` as namespace `ns` sees it ("" when it cannot be read)."""
    done = subprocess.run(["ip", "netns", "exec", ns, "cat", f"/proc/net/{name}"],
                          capture_output=True, text=True, check=False)  # fmt: skip
    return done.stdout if done.returncode == 0 else ""


def namespace_drops(ns: str) -> int:
    """Packets namespace `ns` dropped so far: UDP errors (v4 and v6) and interface drops."""
    return _snmp(proc_net(ns, "snmp")) + _snmp6(proc_net(ns, "snmp6")) + _dev(proc_net(ns, "dev"))


def backlog_drops(softnet: str | None = None) -> dict[int, int]:
    """Per CPU: packets dropped because its input backlog was full (/proc/net/softnet_stat, second column;
    one line per CPU in order, hexadecimal)."""
    text = softnet if softnet is not None else Path("/proc/net/softnet_stat").read_text()
    return {cpu: int(line.split()[1], 16) for cpu, line in enumerate(text.splitlines()) if line.split()}


class DropCounter:
    """`take()` before and after a row; `split(before, after)` gives the host's drops, the load's, and where
    the load's were (namespace or backlog, with a count) for the row's notes."""

    def __init__(self, host: str, load: dict[str, str], server_cores: Iterable[int]) -> None:
        """`load`: a label (client, peer, router) per namespace of the load."""
        self.host, self.load, self.server_cores = host, dict(load), set(server_cores)

    def take(self) -> dict[str, int]:
        counts = {ns: namespace_drops(ns) for ns in (self.host, *self.load)}
        for cpu, dropped in backlog_drops().items():
            counts[f"cpu{cpu}"] = dropped
        return counts

    def split(self, before: dict[str, int], after: dict[str, int]) -> tuple[int, int, dict[str, int]]:
        delta = {key: after.get(key, 0) - value for key, value in before.items()}
        host = delta[self.host] + sum(delta.get(f"cpu{c}", 0) for c in self.server_cores)
        where = {label: delta[ns] for ns, label in self.load.items()}
        where["load backlog"] = sum(
            n for key, n in delta.items() if key.startswith("cpu") and int(key[3:]) not in self.server_cores
        )
        return host, sum(where.values()), {label: n for label, n in where.items() if n}
