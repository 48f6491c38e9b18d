"""Interop with coturn's own test client: `turnutils_uclient` against our relay, echoing through
`turnutils_peer` (Debian's coturn package), with TURN REST API credentials (-W), UDP and TCP,
channels and Send indications, EVEN-PORT/RESERVATION-TOKEN (uclient's RTP/RTCP pairs), client-to-client
relaying, and a moderate load. Every packet sent must come back: no loss."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from relay_testkit import SECRET, RunningRelay, free_port, loopback_config

from tests.servers import echo_peer as echo_peer_process

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def coturn_tools() -> None:
    missing = [tool for tool in ("turnutils_uclient", "turnutils_peer") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"the coturn interop test needs {', '.join(missing)} (apt-get install coturn)")


@pytest.fixture
def echo_peer():
    port = free_port()
    process = echo_peer_process(port)
    yield port
    process.kill()
    process.wait(5)


CASES = {
    # uclient pairs RTP/RTCP allocations with EVEN-PORT (R bit) + RESERVATION-TOKEN unless -c is given.
    "udp-channels-rtcp-pairs": ["-m", "2", "-n", "60"],
    "udp-send-indications-load": ["-s", "-c", "-m", "10", "-n", "100", "-z", "5"],
    "tcp-channels": ["-t", "-c", "-m", "4", "-n", "60"],
    "tcp-send-indications": ["-t", "-s", "-c", "-m", "4", "-n", "60"],
    "udp-client-to-client": ["-y", "-c", "-m", "4", "-n", "60"],
}


@pytest.mark.parametrize("case", list(CASES))
def test_turnutils_uclient(echo_peer: int, case: str) -> None:
    # coturn <= 4.6's uclient picks channel numbers from RFC 5766's range (up to 0x7FFF).
    config = loopback_config(legacy_channel_numbers=True)
    with RunningRelay(config) as relay:
        transport = "tcp" if "-t" in CASES[case] else "udp"
        command = [
            "turnutils_uclient", "-W", SECRET, "-u", "uclient", "-e", "127.0.0.1", "-r", str(echo_peer),
            "-p", str(relay.address(transport)[1]), "-l", "170", *CASES[case], "127.0.0.1",
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, timeout=90)
        output = result.stdout + result.stderr
        assert result.returncode == 0, output[-2000:]
        # uclient's final totals (its per-second progress lines carry `msz=` and byte counts after them).
        totals = re.findall(r"^\d+: : start_mclient: tot_send_msgs=(\d+), tot_recv_msgs=(\d+)$", output, re.MULTILINE)
        assert len(totals) == 1, output[-2000:]
        sent, received = map(int, totals[0])
        messages = int(CASES[case][CASES[case].index("-n") + 1])
        clients = int(CASES[case][CASES[case].index("-m") + 1])  # each sends `messages`, RTCP pairs or not
        assert sent == received == messages * clients, output[-2000:]
        assert "Total lost packets 0 (0.000000%)" in output
        stats = relay.call(relay.stats.snapshot)
        assert stats["packets_client_to_peer"] == stats["packets_peer_to_client"] == sent
        assert stats["auth_failures_bad_integrity"] == 0
        if case == "udp-channels-rtcp-pairs":
            assert stats["requests_channel_bind_success"] > 0
        if "-s" in CASES[case]:
            assert stats["requests_channel_bind_success"] == 0 and stats["requests_create_permission_success"] > 0
