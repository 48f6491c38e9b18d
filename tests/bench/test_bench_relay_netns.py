"""bench/relay_netns.py --quick for real (root, network namespaces, the BPF program, coturn): the three
servers carry uclient's traffic through the namespaces to the kernel echo peer (--peer kernel), the table
and the targets are printed, the offload-on row's packets were forwarded by the kernel
(turn_offloaded_packets_total grew) while the offload-off row's were not, and a direction the kernel did
not carry is flagged. No timing is asserted (the targets are printed by the benchmark, never tested)."""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))  # the benchmark and its sibling modules import one another by name
import relay_netns  # noqa: E402

COLUMNS = ["scenario", "clients", "nominal", "server", "sent/s", "msg/s", "loss %", "host", "proc", "softirq", "sys",
           "soak", "srv busy", "load busy", "idle bg", "KiB/client", "offloaded c>p/p>c", "x coturn cpu",
           "drops host/load", "IPIs s/l"]  # fmt: skip
SERVERS = ["ours-on", "ours-off", "coturn"]
FLAG_BELOW = 50.0  # percent (relay_netns.OFFLOAD_FLAG)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict]:
    tools = ("turnserver", "turnutils_uclient", "turnutils_peer", "taskset", "ip", "ethtool", "clang")
    missing = [t for t in tools if not shutil.which(t)]
    if missing:
        pytest.fail(f"the benchmark needs {', '.join(missing)} (./scripts/install.sh --test-tools)")
    if os.geteuid() != 0:
        pytest.fail("the namespace benchmark needs root (network namespaces, the BPF program)")
    out = tmp_path_factory.mktemp("netns") / "bench.json"
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "relay_netns.py"), "--quick", "--peer", "kernel", "--json", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        stdout, stderr = process.communicate(timeout=150)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGTERM)  # the script removes its namespaces and servers on SIGTERM
        stdout, stderr = process.communicate(timeout=30)
        pytest.fail(f"the quick run took over 150 s: {stderr[-2000:]}")
    assert process.returncode == 0, stdout[-3000:] + stderr[-3000:]
    return stdout, json.loads(out.read_text())


@pytest.mark.slow
def test_quick_run_prints_one_row_per_server_with_every_column(quick_run: tuple[str, dict]) -> None:
    text, data = quick_run
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("scenario"))
    assert all(column in header for column in COLUMNS), header
    assert "echo in the kernel (peer_echo.bpf.c on the peer)" in text  # --peer kernel: the peer's echoes came back
    table = [line for line in lines if line.startswith("UDP ")]
    assert [line.split()[7] for line in table] == SERVERS, table  # family (5 words), clients, nominal
    assert [row["server"] for row in data["rows"]] == SERVERS
    for section in ("Highest offered load sustained", "dropped on the relay host itself", "Targets (issue 12)",
                    "lossless load >= 3x", "CPU/packet <= 0.35x", "lossless load >= 1.0x",
                    "every row: CPU/packet <= 1.0x"):  # fmt: skip
        assert section in text, section
    for row in data["rows"]:
        assert row["error"] == "", row
        assert row["relayed"] > 0 and row["seconds"] > 0 and row["delivered"] > 0, row
        assert row["relayed_total"] >= row["relayed"] and row["host_drops"] >= 0 and row["load_drops"] >= 0, row
        for key in ("host_us", "proc_us", "softirq_us", "sys_us", "soak_us", "ipis_to_server", "ipis_to_load"):
            assert not math.isnan(row[key]), (key, row)
        # With offload on the kernel may carry every packet of the row: the relay process then spends ~0
        assert row["proc_us"] >= 0 if row["server"] == "ours-on" else row["proc_us"] > 0, row
        assert row["host_us"] >= row["proc_us"], row
        # the soaker ran and was read (its figure is noise at the quick row's few thousand packets a second:
        # a few percent of a core from second to second; cycle_soak's own test checks the method)
        assert row["soak_us"] >= 0, row


def test_call_interrupts_are_read_per_cpu_from_the_cal_line() -> None:
    text = (
        "           CPU0       CPU1       CPU2\n"
        "  0:         36          0          0  IR-IO-APIC    2-edge      timer\n"
        "NMI:          0          0          0   Non-maskable interrupts\n"
        "CAL:     771175    8964858         12   Function call interrupts\n"
        "TLB:       4090       3871          1   TLB shootdowns\n"
    )
    assert relay_netns.call_interrupts(text) == {0: 771175, 1: 8964858, 2: 12}
    assert relay_netns.call_interrupts(text.replace("CAL:", "XYZ:")) == {}
    real = relay_netns.call_interrupts()  # this machine's: one count per online CPU
    assert set(real) == {int(cpu) for cpu in os.sched_getaffinity(0)} and all(n >= 0 for n in real.values())


@pytest.mark.slow
def test_the_offload_on_row_was_forwarded_by_the_kernel_and_the_others_were_not(quick_run: tuple[str, dict]) -> None:
    text, data = quick_run
    rows = {row["server"]: row for row in data["rows"]}
    on, off, coturn = rows["ours-on"], rows["ours-off"], rows["coturn"]
    assert on["offloaded_packets"] > 0 and on["offloaded"] > 0, on
    # peer -> client: the quick row is Send indications, so the peer's echoes become Data indications
    # built by the program (turnutils_peer's datagrams are plain UDP: nothing sends them to user space)
    assert on["offloaded_to_client"] > 90.0, on
    # client -> peer: uclient's Send indications put DATA before XOR-PEER-ADDRESS, which the program forwards too
    assert on["offloaded_to_peer"] > 90.0, on
    assert off["offloaded_packets"] == 0 and off["offloaded"] == 0.0, off
    assert math.isnan(coturn["offloaded"]), coturn  # coturn has no such counter: shown as "-"
    for way, key in (("client->peer", "offloaded_to_peer"), ("peer->client", "offloaded_to_client")):
        flagged = any(f"FLAG: offload on, the kernel carried {on[key]:.1f} % {way}" in note for note in on["notes"])
        assert flagged == (on[key] < FLAG_BELOW), (way, on["notes"])
        assert flagged == (f"% {way})" in text.splitlines()[_row_line(text, "ours-on")]), way
    assert not any("FLAG" in note for note in off["notes"] + coturn["notes"])


def _row_line(text: str, server: str) -> int:
    return next(i for i, line in enumerate(text.splitlines()) if line.startswith("UDP ") and f" {server} " in line)


def test_server_cores_takes_the_upper_cpus_and_leaves_the_rest_to_the_load() -> None:
    from relay_vs_coturn import split_cores

    assert split_cores(cores=[0, 1]) == ([1], [0])
    assert split_cores(cores=[3, 0, 2, 1, 5, 4]) == ([3, 4, 5], [0, 1, 2])  # default: half each
    assert split_cores(1, cores=list(range(8))) == ([7], [0, 1, 2, 3, 4, 5, 6])
    assert split_cores(2, cores=list(range(8))) == ([6, 7], [0, 1, 2, 3, 4, 5])
    for wrong in (0, 8):
        with pytest.raises(SystemExit, match=f"--server-cores {wrong}: give 1 to 7 .this machine has 8 CPUs"):
            split_cores(wrong, cores=list(range(8)))


def test_clients_replaces_every_familys_steps() -> None:
    default = relay_netns.scenarios(False, "send")
    assert [(s.family, s.clients) for s in default if s.family == "UDP channels 120 B"] == [
        ("UDP channels 120 B", n) for n in relay_netns.STEPS
    ]
    steps = relay_netns.client_steps("100,1400,2100")
    rows = relay_netns.scenarios(False, "send", steps)
    families = list(dict.fromkeys(s.family for s in default))
    assert [(s.family, s.clients) for s in rows] == [(f, n) for f in families for n in steps]
    for wrong in ("", "100,,200", "100,0", "a lot"):
        with pytest.raises(argparse.ArgumentTypeError, match="give client counts separated by commas"):
            relay_netns.client_steps(wrong)
    with pytest.raises(SystemExit):  # argparse names the option and the problem
        relay_netns.main(["--clients", "100,x"])
