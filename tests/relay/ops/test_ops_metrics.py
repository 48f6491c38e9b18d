"""Metrics: plain-integer stats, the scrape-time collector, and summing snapshots from real workers."""

from __future__ import annotations

import multiprocessing

import pytest
from prometheus_client.parser import text_string_to_metric_families

from relay.ops.metrics import (
    AUTH_FAILURE_REASONS,
    COUNTER_FIELDS,
    GAUGE_FIELDS,
    REQUEST_METHODS,
    REQUEST_RESULTS,
    STAT_FIELDS,
    RelayCollector,
    RelayStats,
    SnapshotAggregator,
    build_registry,
    decode_snapshot,
    encode_snapshot,
    merge_snapshots,
    render_metrics,
)


def scrape(snapshot_fn, draining=lambda: False, process_metrics=False) -> dict[tuple[str, tuple], float]:
    registry = build_registry(RelayCollector(snapshot_fn, draining), process_metrics=process_metrics)
    text = render_metrics(registry).decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_stats_are_plain_integers_starting_at_zero():
    stats = RelayStats()
    assert all(getattr(stats, name) == 0 for name in STAT_FIELDS)
    stats.packets_client_to_peer += 3
    stats.bytes_client_to_peer += 300
    with pytest.raises(AttributeError):
        stats.packets_in = 1  # a typo must fail loudly, not create a counter nobody exports
    snapshot = stats.snapshot()
    assert snapshot["packets_client_to_peer"] == 3 and snapshot["bytes_client_to_peer"] == 300
    assert set(snapshot) == set(STAT_FIELDS)


def test_scrape_exposes_every_metric_with_values():
    stats = RelayStats()
    stats.allocations = 4
    stats.allocations_created = 9
    stats.packets_client_to_peer, stats.packets_peer_to_client = 10, 20
    stats.bytes_client_to_peer, stats.bytes_peer_to_client = 1000, 2000
    stats.auth_failures_stale_nonce = 2
    stats.denied_peers = 5
    stats.quota_rejections_user = 1
    stats.malformed_tls = 7
    stats.rate_limited = 11
    stats.connections_tls = 3
    stats.count_request("allocate", "success")
    stats.count_request("allocate", "client_error")
    stats.count_request("allocate", "client_error")
    samples = scrape(stats.snapshot, draining=lambda: True)
    assert samples[("turn_allocations", ())] == 4
    assert samples[("turn_allocations_created_total", ())] == 9
    assert samples[("turn_packets_total", (("direction", "client_to_peer"),))] == 10
    assert samples[("turn_packets_total", (("direction", "peer_to_client"),))] == 20
    assert samples[("turn_bytes_total", (("direction", "peer_to_client"),))] == 2000
    assert samples[("turn_auth_failures_total", (("reason", "stale_nonce"),))] == 2
    assert samples[("turn_auth_failures_total", (("reason", "bad_integrity"),))] == 0
    assert samples[("turn_denied_peers_total", ())] == 5
    assert samples[("turn_quota_rejections_total", (("quota", "user"),))] == 1
    assert samples[("turn_malformed_packets_total", (("transport", "tls"),))] == 7
    assert samples[("turn_requests_total", (("method", "allocate"), ("result", "client_error")))] == 2
    assert samples[("turn_requests_total", (("method", "allocate"), ("result", "success")))] == 1
    assert samples[("turn_rate_limited_total", ())] == 11
    assert samples[("turn_connections", (("transport", "tls"),))] == 3
    assert samples[("turn_draining", ())] == 1


def test_label_values_are_bounded_whatever_the_traffic():
    stats = RelayStats()
    for i in range(500):
        stats.count_request(f"method-{i}", "client_error")  # e.g. unknown STUN methods from the network
    samples = scrape(stats.snapshot)
    request_series = [key for key in samples if key[0] == "turn_requests_total"]
    assert len(request_series) == len(REQUEST_METHODS) * len(REQUEST_RESULTS)
    assert samples[("turn_requests_total", (("method", "other"), ("result", "client_error")))] == 500
    auth_series = [key for key in samples if key[0] == "turn_auth_failures_total"]
    assert len(auth_series) == len(AUTH_FAILURE_REASONS)
    with pytest.raises(ValueError, match="request result"):
        stats.count_request("allocate", "alice@example.org")


def test_process_metrics_and_content():
    samples = scrape(RelayStats().snapshot, process_metrics=True)
    assert samples[("process_open_fds", ())] > 0
    assert samples[("turn_draining", ())] == 0


def test_registering_twice_is_detected():
    collector = RelayCollector(RelayStats().snapshot)
    registry = build_registry(collector, process_metrics=False)
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        registry.register(RelayCollector(RelayStats().snapshot))


def test_merge_and_codec_roundtrip():
    a, b = RelayStats(), RelayStats()
    a.packets_peer_to_client, b.packets_peer_to_client = 5, 7
    a.allocations, b.allocations = 1, 2
    merged = merge_snapshots([a.snapshot(), b.snapshot(), {"unknown_future_field": 99}])
    assert merged["packets_peer_to_client"] == 12 and merged["allocations"] == 3
    assert "unknown_future_field" not in merged
    assert decode_snapshot(encode_snapshot(merged)) == merged


@pytest.mark.parametrize(
    "data", [b"not json", b"[1,2]", b'{"allocations": "3"}', b'{"allocations": 1.5}', b'{"allocations": true}']
)
def test_decode_rejects_garbage(data):
    with pytest.raises(ValueError):
        decode_snapshot(data)


def test_aggregator_keeps_counters_monotonic_across_worker_exit_and_restart():
    agg = SnapshotAggregator()
    w1 = RelayStats()
    w1.packets_client_to_peer, w1.allocations = 100, 3
    agg.update("w1", w1.snapshot())
    w2 = RelayStats()
    w2.packets_client_to_peer, w2.allocations = 50, 1
    agg.update("w2", w2.snapshot())
    assert agg.total()["packets_client_to_peer"] == 150 and agg.total()["allocations"] == 4
    # w1 restarts under the same id: its counters restart from zero, the total must not drop.
    fresh = RelayStats()
    fresh.packets_client_to_peer = 5
    agg.update("w1", fresh.snapshot())
    assert agg.total()["packets_client_to_peer"] == 155
    assert agg.total()["allocations"] == 1  # the old process's allocations are gone
    agg.retire("w2")
    assert agg.workers == ("w1",)
    assert agg.total()["packets_client_to_peer"] == 155 and agg.total()["allocations"] == 0
    agg.retire("missing")  # harmless


def test_gauge_and_counter_partition():
    assert {"allocations", "connections_tcp", "connections_tls"} == GAUGE_FIELDS
    assert set(STAT_FIELDS) == COUNTER_FIELDS | GAUGE_FIELDS


def _worker(index: int, packets: int, connection) -> None:
    stats = RelayStats()
    for _ in range(packets):  # what the hot path does: plain integer bumps
        stats.packets_client_to_peer += 1
        stats.bytes_client_to_peer += 100
    stats.allocations = index + 1
    connection.send_bytes(encode_snapshot(stats.snapshot()))
    connection.close()


def test_snapshots_from_real_worker_processes_sum_into_one_scrape():
    ctx = multiprocessing.get_context("spawn")
    agg = SnapshotAggregator()
    workers = []
    for index, packets in enumerate((1000, 2500)):
        parent, child = ctx.Pipe(duplex=False)
        process = ctx.Process(target=_worker, args=(index, packets, child))
        process.start()
        child.close()
        workers.append((f"worker-{index}", parent, process))
    for name, parent, process in workers:
        agg.update(name, decode_snapshot(parent.recv_bytes()))
        process.join(10)
        assert process.exitcode == 0
    samples = scrape(agg.total)
    assert samples[("turn_packets_total", (("direction", "client_to_peer"),))] == 3500
    assert samples[("turn_bytes_total", (("direction", "client_to_peer"),))] == 350_000
    assert samples[("turn_allocations", ())] == 3
