"""The maps shared with worker processes: a process started with the map descriptors (pass_fds, as the
supervisor starts its workers) installs entries through MapSet.from_fds that the program then forwards
by; and a dead worker's entries are found by its relay port slice and removed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from kernel_kit import (
    CHANNEL,
    CLIENT,
    PEER,
    RELAY,
    SERVER,
    TC_ACT_OK,
    TC_ACT_REDIRECT,
    channel_data,
    forwarded,
    frame,
    ipv4_udp,
)

from relay.server.kernel import maps
from relay.server.kernel.loader import TcRelay
from relay.server.kernel.mapset import MapSet

REPO = Path(__file__).resolve().parents[3]
WORKER = """
import json, sys
from relay.server.kernel.mapset import MapSet
worker = MapSet.from_fds({name: int(fd) for name, fd in json.loads(sys.argv[1]).items()})
worker.add_permission(*json.loads(sys.argv[2]))
worker.add_channel(*json.loads(sys.argv[3]))
print(len(list(worker.keys("peers"))))
"""


def test_a_worker_process_feeds_the_maps_through_inherited_descriptors(relay: TcRelay) -> None:
    for fd in relay.map_fds.values():
        os.set_inheritable(fd, True)
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            WORKER,
            json.dumps(relay.map_fds),
            json.dumps([CLIENT, SERVER, RELAY, PEER[0]]),
            json.dumps([CLIENT, SERVER, CHANNEL, RELAY, PEER]),
        ],
        pass_fds=tuple(relay.map_fds.values()),
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert (run.returncode, run.stdout.strip()) == (0, "2"), run.stderr
    action, out = relay.test_run(frame(ipv4_udp(CLIENT, SERVER, channel_data(CHANNEL, b"via a worker"))))
    assert (action, out) == (TC_ACT_REDIRECT, frame(forwarded(RELAY, PEER, b"via a worker")))


def test_from_fds_needs_every_map() -> None:
    with pytest.raises(ValueError, match="map descriptors missing for channels6, config"):
        MapSet.from_fds({name: 0 for name in maps.MAP_LAYOUTS if name not in ("config", "channels6")})


def test_a_dead_worker_s_relay_ports_are_purged_and_nothing_else(relay: TcRelay) -> None:
    dead, alive = (RELAY[0], 50010), (RELAY[0], 60010)  # worker slices 50000-54999 and 60000-64999
    other_client = (CLIENT[0], CLIENT[1] + 1)
    relay.add_permission(CLIENT, SERVER, dead, PEER[0])
    relay.add_channel(CLIENT, SERVER, CHANNEL, dead, PEER)
    relay.add_permission(other_client, SERVER, alive, PEER[0])
    relay.add_channel(other_client, SERVER, CHANNEL, alive, PEER)
    relay.add_permission(("2001:db8:c::7", 1), ("2001:db8:5::5", 3478), ("2001:db8:5::5", 50020), "2001:db8:e::9")
    assert relay.purge_relay_ports(50000, 54999) == 2 + 2 + 2  # channel, permission, 2 peers; IPv6: 2
    for client, expected in ((CLIENT, TC_ACT_OK), (other_client, TC_ACT_REDIRECT)):
        assert relay.test_run(frame(ipv4_udp(client, SERVER, channel_data(CHANNEL, b"x"))))[0] == expected
    assert relay.test_run(frame(ipv4_udp(PEER, dead, b"x")))[0] == TC_ACT_OK
    assert relay.test_run(frame(ipv4_udp(PEER, alive, b"x")))[0] == TC_ACT_REDIRECT
    assert [len(list(relay.keys(name))) for name in maps.ENTRY_MAPS] == [1, 1, 2, 0, 0, 0]
