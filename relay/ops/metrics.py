"""Prometheus metrics from plain integer counters: cheap on the hot path, summed across workers.

The packet path must not touch prometheus_client objects (a `Counter.inc()` takes a lock and does
label lookups per call). It bumps plain attributes on one `RelayStats` per process instead:

    stats = RelayStats()
    stats.packets_client_to_peer += 1
    stats.bytes_client_to_peer += len(payload)
    stats.allocations += 1; stats.allocations_created += 1      # on a successful Allocate
    stats.allocations -= 1                                      # when an allocation ends
    stats.auth_failures_stale_nonce += 1                        # see the tables below for every name
    stats.count_request("allocate", "client_error")             # control plane: validated helper

At scrape time `RelayCollector` turns a snapshot (a flat `dict[str, int]` of those attributes) into
metric families. With several worker processes the parent keeps each worker's latest snapshot in a
`SnapshotAggregator` (workers send `encode_snapshot(stats.snapshot())` e.g. every second over a pipe)
and the collector reads `aggregator.total()`: counters and gauges are summed, and a worker that exits
or restarts has its counters folded into a retained base so totals never go backwards.

Wiring in one process:

    registry = build_registry(RelayCollector(stats.snapshot, draining=lambda: control.draining))
    body = render_metrics(registry)              # bytes for GET /metrics (CONTENT_TYPE_LATEST)

Metrics (all label values come from the fixed tuples below - never usernames or IP addresses):

    turn_allocations                        gauge    active allocations
    turn_allocations_created_total          counter  successful Allocates
    turn_packets_total{direction}           counter  relayed packets, client_to_peer | peer_to_client
    turn_bytes_total{direction}             counter  relayed payload bytes, same directions
    turn_offloaded_packets_total{direction} counter  the part of turn_packets_total the kernel forwarded
    turn_offloaded_bytes_total{direction}   counter  the same for turn_bytes_total (relay.server.kernel:
                                                     the process that loaded the program adds its counters
                                                     to the snapshot, `Offload.with_totals`)
    turn_auth_failures_total{reason}        counter  AUTH_FAILURE_REASONS
    turn_denied_peers_total                 counter  CreatePermission/ChannelBind/Send to a denied peer
    turn_quota_rejections_total{quota}      counter  total | user (486/508 on Allocate) | bandwidth (dropped)
                                                     | channels (508 on ChannelBind over max_channels)
    turn_malformed_packets_total{transport} counter  udp | tcp | tls
    turn_requests_total{method,result}      counter  REQUEST_METHODS x REQUEST_RESULTS
    turn_rate_limited_total                 counter  unauthenticated UDP requests left unanswered: the answer
                                                     was over 5x the request, or over the source's budget
    turn_connections{transport}             gauge    open TCP / TLS client connections
    turn_stream_closes_total{reason}        counter  STREAM_CLOSE_REASONS: connections the relay closed
    turn_draining                           gauge    1 while draining
    process_*                               the standard process collector (open fds, memory, CPU)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

__all__ = [
    "AUTH_FAILURE_REASONS",
    "CONTENT_TYPE_LATEST",
    "DIRECTIONS",
    "QUOTAS",
    "REQUEST_METHODS",
    "REQUEST_RESULTS",
    "STREAM_CLOSE_REASONS",
    "TRANSPORTS",
    "RelayCollector",
    "RelayStats",
    "SnapshotAggregator",
    "build_registry",
    "decode_snapshot",
    "encode_snapshot",
    "merge_snapshots",
    "render_metrics",
]

DIRECTIONS = ("client_to_peer", "peer_to_client")
AUTH_FAILURE_REASONS = (
    "bad_integrity",  # MESSAGE-INTEGRITY did not verify (wrong password / secret)
    "unknown_user",  # static user not configured, or REST username unparsable
    "expired",  # TURN REST credential past its expiry time
    "stale_nonce",  # 438: nonce too old or minted for another address / secret
    "wrong_realm",
    "malformed",  # USERNAME/REALM/NONCE missing or invalid in an authenticated request
)
QUOTAS = ("total", "user", "bandwidth", "channels")
TRANSPORTS = ("udp", "tcp", "tls")
REQUEST_METHODS = ("binding", "allocate", "refresh", "create_permission", "channel_bind", "other")
REQUEST_RESULTS = ("success", "client_error", "server_error")
CONNECTION_TRANSPORTS = ("tcp", "tls")
STREAM_CLOSE_REASONS = (
    "reset",  # gone before it was accepted (RST right after the handshake: health checks, SO_LINGER 0)
    "proxy_header",  # missing or malformed PROXY protocol header
    "frame_too_large",  # a frame over the limit before the connection holds an allocation
    "write_stalled",  # the client did not read its responses within the stall timeout
    "idle",  # no allocation (never, or not any more) for the idle timeout
    "out_of_memory",  # output could not be queued (the compiled path shuts the connection: no gap in a stream)
)


@dataclass(frozen=True)
class _Spec:
    name: str
    kind: str  # "counter" | "gauge"
    doc: str
    labels: tuple[str, ...]
    series: tuple[tuple[tuple[str, ...], str], ...]  # (label values, RelayStats attribute)


def _one(name: str, kind: str, doc: str, attribute: str) -> _Spec:
    return _Spec(name, kind, doc, (), (((), attribute),))


def _by(name: str, kind: str, doc: str, label: str, values: tuple[str, ...], prefix: str) -> _Spec:
    return _Spec(name, kind, doc, (label,), tuple(((v,), f"{prefix}_{v}") for v in values))


_SPECS: tuple[_Spec, ...] = (
    _one("turn_allocations", "gauge", "Active TURN allocations.", "allocations"),
    _one("turn_allocations_created", "counter", "Successful Allocate requests.", "allocations_created"),
    _by("turn_packets", "counter", "Relayed packets by direction.", "direction", DIRECTIONS, "packets"),
    _by("turn_bytes", "counter", "Relayed payload bytes by direction.", "direction", DIRECTIONS, "bytes"),
    _by(
        "turn_offloaded_packets",
        "counter",
        "Relayed packets forwarded in the kernel (kernel-offload), by direction; included in turn_packets_total.",
        "direction",
        DIRECTIONS,
        "offloaded_packets",
    ),
    _by(
        "turn_offloaded_bytes",
        "counter",
        "Relayed payload bytes forwarded in the kernel, by direction; included in turn_bytes_total.",
        "direction",
        DIRECTIONS,
        "offloaded_bytes",
    ),
    _by(
        "turn_auth_failures",
        "counter",
        "Authentication failures by reason.",
        "reason",
        AUTH_FAILURE_REASONS,
        "auth_failures",
    ),
    _one("turn_denied_peers", "counter", "Requests refused because the peer address is denied.", "denied_peers"),
    _by("turn_quota_rejections", "counter", "Quota rejections.", "quota", QUOTAS, "quota_rejections"),
    _by(
        "turn_malformed_packets",
        "counter",
        "Packets that were not valid STUN/ChannelData.",
        "transport",
        TRANSPORTS,
        "malformed",
    ),
    _Spec(
        "turn_requests",
        "counter",
        "STUN/TURN requests by method and result.",
        ("method", "result"),
        tuple(((m, r), f"requests_{m}_{r}") for m in REQUEST_METHODS for r in REQUEST_RESULTS),
    ),
    _one(
        "turn_rate_limited",
        "counter",
        "Unauthenticated requests left unanswered by the reflection limits (5x bound, per-address budget).",
        "rate_limited",
    ),
    _by(
        "turn_connections",
        "gauge",
        "Open stream (TCP/TLS) client connections.",
        "transport",
        CONNECTION_TRANSPORTS,
        "connections",
    ),
    _by(
        "turn_stream_closes",
        "counter",
        "Stream connections the relay closed, by reason.",
        "reason",
        STREAM_CLOSE_REASONS,
        "stream_closes",
    ),
)

STAT_FIELDS: tuple[str, ...] = tuple(attr for spec in _SPECS for _, attr in spec.series)
GAUGE_FIELDS: frozenset[str] = frozenset(attr for spec in _SPECS if spec.kind == "gauge" for _, attr in spec.series)
COUNTER_FIELDS: frozenset[str] = frozenset(STAT_FIELDS) - GAUGE_FIELDS

Snapshot = dict[str, int]
_REQUEST_FIELD = {(m, r): f"requests_{m}_{r}" for m in REQUEST_METHODS for r in REQUEST_RESULTS}


class RelayStats:
    """Plain integer counters for one process; every attribute in STAT_FIELDS starts at 0."""

    __slots__ = STAT_FIELDS

    def __init__(self) -> None:
        for name in STAT_FIELDS:
            setattr(self, name, 0)

    def count_request(self, method: str, result: str) -> None:
        """Count a request; unknown methods are folded into "other" (labels stay bounded)."""
        name = _REQUEST_FIELD.get((method, result))
        if name is None:
            if result not in REQUEST_RESULTS:
                raise ValueError(f"request result {result!r} is not one of {REQUEST_RESULTS}")
            name = f"requests_other_{result}"
        setattr(self, name, getattr(self, name) + 1)

    def snapshot(self) -> Snapshot:
        return {name: getattr(self, name) for name in STAT_FIELDS}


def merge_snapshots(snapshots: Iterable[Mapping[str, int]]) -> Snapshot:
    """Sum snapshots field by field (unknown fields are ignored)."""
    total = dict.fromkeys(STAT_FIELDS, 0)
    for snapshot in snapshots:
        for name in STAT_FIELDS:
            total[name] += snapshot.get(name, 0)
    return total


def encode_snapshot(snapshot: Mapping[str, int]) -> bytes:
    return json.dumps({name: snapshot.get(name, 0) for name in STAT_FIELDS}, separators=(",", ":")).encode()


def decode_snapshot(data: bytes) -> Snapshot:
    """Parse a worker's snapshot; raises ValueError on anything but a JSON object of integers."""
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"metrics snapshot is not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ValueError("metrics snapshot must be a JSON object")
    snapshot: Snapshot = {}
    for name in STAT_FIELDS:
        value = raw.get(name, 0)
        if type(value) is not int:
            raise ValueError(f"metrics snapshot field {name!r} is not an integer")
        snapshot[name] = value
    return snapshot


class SnapshotAggregator:
    """Parent-side view of all workers: latest snapshot per worker plus counters of retired ones."""

    def __init__(self) -> None:
        self._latest: dict[str, Snapshot] = {}
        self._retired = dict.fromkeys(COUNTER_FIELDS, 0)

    def update(self, worker: str, snapshot: Mapping[str, int]) -> None:
        previous = self._latest.get(worker)
        if previous is not None and any(snapshot.get(n, 0) < previous[n] for n in COUNTER_FIELDS):
            self.retire(worker)  # the worker restarted under the same id: keep what it had counted
        self._latest[worker] = merge_snapshots([snapshot])

    def retire(self, worker: str) -> None:
        """A worker exited: keep its counters, drop its gauges (its allocations are gone)."""
        snapshot = self._latest.pop(worker, None)
        if snapshot is not None:
            for name in COUNTER_FIELDS:
                self._retired[name] += snapshot[name]

    @property
    def workers(self) -> tuple[str, ...]:
        return tuple(self._latest)

    def total(self) -> Snapshot:
        return merge_snapshots([self._retired, *self._latest.values()])


class RelayCollector:
    """prometheus_client custom collector reading a snapshot at scrape time."""

    def __init__(self, snapshot: Callable[[], Mapping[str, int]], draining: Callable[[], bool] = lambda: False) -> None:
        self._snapshot = snapshot
        self._draining = draining

    def describe(self) -> Iterator[Metric]:
        yield from self._families({}, False, with_samples=False)

    def collect(self) -> Iterator[Metric]:
        yield from self._families(self._snapshot(), self._draining(), with_samples=True)

    @staticmethod
    def _families(snapshot: Mapping[str, int], draining: bool, with_samples: bool) -> Iterator[Metric]:
        for spec in _SPECS:
            family_type = CounterMetricFamily if spec.kind == "counter" else GaugeMetricFamily
            family = family_type(spec.name, spec.doc, labels=spec.labels)
            if with_samples:
                for label_values, attribute in spec.series:
                    family.add_metric(list(label_values), snapshot.get(attribute, 0))
            yield family
        draining_family = GaugeMetricFamily("turn_draining", "1 while the relay drains (refuses new allocations).")
        if with_samples:
            draining_family.add_metric([], 1 if draining else 0)
        yield draining_family


def build_registry(collector: RelayCollector, process_metrics: bool = True) -> CollectorRegistry:
    """A private registry (not the global default) so tests and workers never collide."""
    registry = CollectorRegistry()
    registry.register(collector)
    if process_metrics:
        ProcessCollector(registry=registry)
    return registry


def render_metrics(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
