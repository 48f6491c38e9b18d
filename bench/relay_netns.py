#!/usr/bin/env python3
"""Our relay with the in-kernel path on, with it off, and Debian's coturn, in network namespaces joined
by veth pairs (tests/relay/kernel/netns_kit.py's layout), so the TC program runs on a real interface:

    client ns (turnutils_uclient) -- router ns -- peer ns (turnutils_peer, or --peer kernel: peer_echo.py)
                                        |
                                    relay ns (the server under test, interface relay0)

    sudo .venv/bin/python bench/relay_netns.py            # full run (about 25 minutes on 2 cores)
    sudo .venv/bin/python bench/relay_netns.py --quick    # one small row per server (under a minute)
    sudo .venv/bin/python bench/relay_netns.py --peer kernel   # the echo in the kernel: more load per core
    sudo .venv/bin/python bench/relay_netns.py --peer kernel --server-cores 1 --clients 100,700,1400,2100
        # a machine with more CPUs: the load on the rest, steps past what one load core offers

Needs root (namespaces, the BPF program), clang (the program is compiled here, as the wheel build does),
coturn (turnserver, turnutils_uclient, turnutils_peer), taskset and tc (iproute2, for --peer kernel).

The three servers take turns on the same load, row by row, each started fresh for its row and stopped
after it (so the program is attached only while offload-on is measured). Rows: UDP ChannelData 120 and
1000 B, UDP Send indications 120 B, TCP ChannelData 120 B, clients stepped up past saturation.

Where the CPU goes. With the in-kernel path a relayed packet costs softirq time that no process is
charged for, so the figures come from /proc/stat (per core: user, nice, system, irq, softirq; idle,
iowait and steal are not work, guest time is inside user) as well as from the processes. The servers run
pinned to the upper half of the CPUs (--server-cores N: the upper N) and the load (uclient, peer) to the
rest, and receive packet steering (RPS) puts the relay interface's receive processing on the server
cores and the router's on the load cores: what the relay host does for a packet (its TC program or its
socket path, the server process, the send) lands on the server cores; the emulated network (router
forwarding, delivery to the client's and peer's sockets) and the load generator on the load cores. Per
relayed packet (a packet the relay interface transmitted: counted the same way for all three servers),
over the seconds the relay sent at >= 90 % of its peak rate:

  sys      the server cores' busy time (user+nice+system+irq+softirq) minus their busy rate measured
           idle just before the row: system-wide accounting, right on an otherwise idle machine; when
           other programs keep those cores busy (idle bg), the row's work displaces theirs and this
           figure is noise (flagged)
  proc     the server processes' own utime+stime (/proc/<pid>/stat)
  softirq  the server cores' irq+softirq time minus its idle rate
  host     proc + the share of softirq that ran while the server processes did not (tick accounting,
           no IRQ_TIME_ACCOUNTING: a tick in softirq is charged to whichever task it interrupts, so
           softirq time during the server's own time is already in proc; that share is estimated
           from the server's share of the cores, as if softirq work arrived independently of it); the
           figure the targets used before the soaker
  soak     what the server cores gave to anything but a SCHED_IDLE soaker pinned there (bench/cycle_soak.py):
           the only figure that sees the in-kernel path's softirq bursts, which tick accounting on an
           idle (NO_HZ) core misses; the targets use it. Its idle rate is taken before the row (server up,
           no load) and after it (server stopped), and the mean is the baseline: the soaker runs slower or
           faster as the host's other guests come and go, and a move of more than 3 % is noted on the row
  IPIs     function-call interrupts (the CAL line of /proc/interrupts) per relayed packet, received by the
           server cores / by the load cores: RPS hands a packet to the other core with one when that core's
           backlog was empty. The sender pays for it in its own time (on this VM a write to the x2APIC, a
           VM exit: ~7 of ours' 30 us per TCP message in perf, bench/PROFILE.md). A cost of the emulated
           network, not of a relay host with a NIC; printed so that rows can be told apart by it

Run to run, the same row's CPU per packet moves by up to ~20 % on a shared VM (the same code, minutes
apart); `--repeat N` measures each row N times with the servers interleaved and shows each server's
median run, with the spread of all N beside it.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "relay" / "kernel"))  # netns_kit

import netns_drops
import peer_echo
from cycle_soak import Soaker, busy_share, rate
from netns_drops import DropCounter
from netns_kit import PEER_IP, RELAY_INTERFACE, RELAY_IP, Topology, relay_source
from netns_report import LOAD_DROPS_NOTE, SERVERS, Row, report
from relay_servers import CLOCK_TICKS, Coturn, OurRelay, Server, coturn_version, cpu_seconds
from relay_uclient import Scenario, UclientResult, run
from relay_vs_coturn import (
    CLIENTS_PER_UCLIENT,
    REALM,
    RELAY_RANGE,
    SECRET,
    UCLIENT_CHANNEL_COLLISION,
    raise_fd_limit,
    split_cores,
)

from relay.server.kernel import build
from relay.server.kernel.loader import OBJECT_NAME

ROOT = Path(__file__).resolve().parent.parent
PORT, PEER_PORT, ADMIN = 3478, 3480, 9641  # in their own namespaces: nothing else listens there
TOOLS = ("turnserver", "turnutils_uclient", "turnutils_peer", "taskset", "ip", "ethtool", "clang", "tc")
PEER_DEVICE = "pe0"  # the peer namespace's interface (netns_kit)
SAMPLE_SECONDS = 0.5
WARM_MESSAGES = 5  # the one-client exchange before each row's idle RSS (Bench.measure_once)
METHOD = "Where the CPU goes." + __doc__.split("Where the CPU goes.")[1]  # printed under the table
OFFLOAD_FLAG = 50.0  # percent: below this, an offload-on UDP row is flagged
SOAK_DRIFT_NOTE = 3.0  # percent: a soaker baseline that moved more over a row is noted beside it


STEPS = (100, 250, 400, 550, 700)  # clients (100 msg/s each): the top step is what one load core offers
SHORT_STEPS = STEPS[:3]  # 1000-B channels and TCP: every server is lossless there at the top step already


def scenarios(quick: bool, method: str, clients: tuple[int, ...] | None = None) -> list[Scenario]:
    """The rows; `clients` (--clients) replaces every family's steps (a machine with more load cores)."""
    if quick:
        return [Scenario("udp", method, 120, 30, 10, 250)]
    long, short = (clients, clients) if clients else (STEPS, SHORT_STEPS)
    rows = [Scenario("udp", "channel", 120, n, 10, 600) for n in long]
    rows += [Scenario("udp", "channel", 1000, n, 10, 600) for n in short]
    rows += [Scenario("udp", "send", 120, n, 10, 600) for n in long]
    rows += [Scenario("tcp", "channel", 120, n, 10, 600) for n in short]
    return rows


def client_steps(text: str) -> tuple[int, ...]:
    """--clients: comma-separated client counts, each 1 or more, e.g. 100,700,1400,2100."""
    try:
        steps = tuple(int(word) for word in text.split(","))
    except ValueError:
        steps = ()
    if not steps or min(steps) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give client counts separated by commas, e.g. 100,700,1400")
    return steps


def cpu_ticks() -> dict[int, tuple[int, int]]:
    """Per CPU from /proc/stat, in clock ticks: (user + nice + system + irq + softirq, irq + softirq)."""
    out = {}
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu") and line[3].isdigit():
            name, user, nice, system, _idle, _iowait, irq, softirq, *_ = line.split()
            interrupts = int(irq) + int(softirq)
            out[int(name[3:])] = (int(user) + int(nice) + int(system) + interrupts, interrupts)
    return out


def call_interrupts(text: str | None = None) -> dict[int, int]:
    """Per CPU, the function-call IPIs it received (the CAL line of /proc/interrupts): how RPS hands a
    packet to another core's backlog when that backlog was empty (net_rps_send_ipi)."""
    text = Path("/proc/interrupts").read_text() if text is None else text
    lines = text.splitlines()
    cpus = [int(name[3:]) for name in lines[0].split()]
    for line in lines[1:]:
        name, *counts = line.split()
        if name == "CAL:":
            return {cpu: int(n) for cpu, n in zip(cpus, counts, strict=False)}
    return {}


def tx_packets(pid: int) -> int:
    """Packets the relay interface sent (the namespace of process `pid`): the relayed packets, whichever
    way each left (TC redirect or a socket)."""
    dev = f"/proc/{pid}/net/dev"
    return netns_drops.tx_packets(Path(dev).read_text(), RELAY_INTERFACE, dev)


@dataclass
class Sample:
    at: float
    ticks: dict[int, tuple[int, int]]  # cpu_ticks()
    tx: int
    server_cpu: float
    rss_kib: int
    soak: tuple[float, int]  # cycle_soak.Soaker.read() on the server cores
    ipis: dict[int, int]  # call_interrupts()


class Sampler(threading.Thread):
    """Samples every SAMPLE_SECONDS while uclient runs, so the figures can be taken over the steady
    seconds only (not the set-up and the tail)."""

    def __init__(self, server: Server, soaker: Soaker) -> None:
        super().__init__(daemon=True)
        self.server, self.soaker, self.samples, self.done = server, soaker, [], threading.Event()

    def take(self) -> Sample:
        pids = self.server.pids()
        return Sample(
            time.monotonic(),
            cpu_ticks(),
            tx_packets(pids[0]),
            cpu_seconds(pids),
            self.server.rss_kib(),
            self.soaker.read(),
            call_interrupts(),
        )

    def run(self) -> None:
        self.samples.append(self.take())
        while not self.done.wait(SAMPLE_SECONDS):
            self.samples.append(self.take())

    def stop(self) -> list[Sample]:
        self.done.set()
        self.join()
        self.samples.append(self.take())
        return self.samples


class Bench:
    """The three servers, configured for the relay namespace (ours from a source copy with the program
    compiled here, where the wheel ships it), and one measurement: one server on one row."""

    def __init__(
        self,
        net: Topology,
        server_cores: list[int],
        load_cores: list[int],
        workdir: Path,
        *,
        quick: bool,
        coturn_threads: int = 0,
        soaker: Soaker,
    ) -> None:
        self.net, self.server_cores, self.load_cores = net, server_cores, load_cores
        self.soaker = soaker
        load = {net.client: "client", net.peer: "peer", net.router: "router"}
        self.drops = DropCounter(net.relay, load, server_cores)
        self.idle = 0.5 if quick else 2.0  # seconds of idle baseline before each row
        # uclient sets its clients up 0.1 s apart: fewer per process starts a small row sooner
        self.per_uclient = 10 if quick else CLIENTS_PER_UCLIENT
        obj = build.build(workdir / "bpf")
        if obj is None:
            raise SystemExit("clang is missing: ./scripts/install.sh --test-tools installs it")
        source = relay_source(ROOT, workdir / "source", {OBJECT_NAME: obj.read_bytes()})
        common = {
            "relay_range": RELAY_RANGE,
            "secret": SECRET,
            "realm": REALM,
            "workdir": workdir,
            "host": RELAY_IP,
            "netns": net.relay,
            "inside": lambda probe: net.run_in(net.relay, probe),
        }
        ours = {"workers": len(server_cores), "admin_port": ADMIN, "source": source}
        self.servers: list[Server] = [
            OurRelay(
                server_cores,
                PORT,
                name=name,
                extra=(f"allowed-peer-ip={PEER_IP}", f"kernel-offload={mode}"),
                **ours,
                **common,
            )
            for name, mode in (("ours-on", "on"), ("ours-off", "off"))
        ]
        self.servers.append(Coturn(server_cores, PORT, name="coturn", threads=coturn_threads, **common))

    def measure(self, server: Server, scenario: Scenario) -> Row:
        row = self.measure_once(server, scenario)
        if UCLIENT_CHANNEL_COLLISION in row.error:  # uclient's own channel-number draw (relay_vs_coturn.py)
            first = row.error
            row = self.measure_once(server, scenario)
            row.notes.append(f"run twice, the first time: {first}")
        return row

    def measure_once(self, server: Server, scenario: Scenario) -> Row:
        server.start()
        try:
            # One client's short exchange first, for every server alike: what the first allocation and packet
            # touch once (library pages, first buffers) is then in the idle RSS, not counted per allocation.
            self.load(dataclasses.replace(scenario, clients=1, messages=WARM_MESSAGES), 1)
            before, soaked = cpu_ticks(), self.soaker.read()
            time.sleep(self.idle)
            background = _rate(before, cpu_ticks(), self.idle)
            idle_before = rate(soaked, self.soaker.read())
            counters = _counters(server)
            dropped = self.drops.take()
            sampler = Sampler(server, self.soaker)
            sampler.start()
            try:
                result = self.load(scenario, max(len(self.load_cores), -(-scenario.clients // self.per_uclient)))
            finally:
                samples = sampler.stop()
            after = _counters(server)
            host_drops, load_drops, where = self.drops.split(dropped, self.drops.take())
        finally:
            server.stop()
        # the soaker's idle rate again once the server is gone: the host's other guests change how fast it
        # runs (the baseline drifts); the row uses the mean of both and says when they differ
        soaked = self.soaker.read()
        time.sleep(self.idle)
        idle_after = rate(soaked, self.soaker.read())
        idle_soak_rate = (idle_before + idle_after) / 2
        row = self.row(server.name, scenario, result, samples, background, idle_soak_rate, counters, after)
        row.soak_drift = 100 * (idle_after - idle_before) / idle_before if idle_before > 0 else float("nan")
        if abs(row.soak_drift) > SOAK_DRIFT_NOTE:
            row.notes.append(f"soak baseline moved {row.soak_drift:+.1f} % over the row")
        row.host_drops, row.load_drops = host_drops, load_drops
        if where:
            row.notes.append(LOAD_DROPS_NOTE + ", ".join(f"{label} {n}" for label, n in where.items()))
        row.relayed_total = samples[-1].tx - samples[0].tx
        return row

    def load(self, scenario: Scenario, processes: int) -> UclientResult:
        return run(
            scenario,
            port=PORT,
            secret=SECRET,
            peer_port=PEER_PORT,
            cores=self.load_cores,
            processes=processes,
            server_ip=RELAY_IP,
            peer_ip=PEER_IP,
            netns=self.net.client,
        )

    def row(
        self,
        name: str,
        scenario: Scenario,
        result: UclientResult,
        samples: list[Sample],
        background: dict[int, tuple[float, float]],
        idle_soak_rate: float,
        counters: dict[str, int],
        after: dict[str, int],
    ) -> Row:
        row = Row(scenario, name, result.sent_per_second, result.delivered_per_second, result.loss_percent)
        row.error = result.error
        server_cores = len(self.server_cores)
        row.background = 100 * sum(background[c][0] for c in self.server_cores) / server_cores
        steady = _steady(samples)
        if not steady:
            row.notes.append("no packets left the relay interface")
            return row
        seconds = sum(b.at - a.at for a, b in steady)
        relayed = sum(b.tx - a.tx for a, b in steady)
        busy, interrupts = ({c: sum(b.ticks[c][i] - a.ticks[c][i] for a, b in steady) / CLOCK_TICKS
                             for c in steady[0][0].ticks} for i in (0, 1))  # fmt: skip
        server_busy = sum(busy[c] for c in self.server_cores)
        server_cpu = sum(b.server_cpu - a.server_cpu for a, b in steady)
        softirq = sum(interrupts[c] - background[c][1] * seconds for c in self.server_cores)
        running = min(1.0, server_cpu / (seconds * server_cores))  # the share of the server cores it ran
        row.relayed, row.seconds = relayed, seconds
        row.sys_us = (server_busy - sum(background[c][0] for c in self.server_cores) * seconds) / relayed * 1e6
        row.proc_us = server_cpu / relayed * 1e6
        row.softirq_us = softirq / relayed * 1e6
        row.host_us = row.proc_us + max(0.0, row.softirq_us) * (1 - running)
        # the cores' busy share from the soaker (/proc/stat sees the soaker there), times the steady seconds
        soaked = sum(busy_share(idle_soak_rate, a.soak, b.soak) * (b.soak[0] - a.soak[0]) for a, b in steady)
        row.soak_us = soaked * server_cores / relayed * 1e6
        row.server_busy = 100 * soaked / sum(b.soak[0] - a.soak[0] for a, b in steady)
        row.load_busy = 100 * sum(busy[c] for c in self.load_cores) / (seconds * len(self.load_cores))
        row.ipis_to_server, row.ipis_to_load = (
            sum(b.ipis.get(c, 0) - a.ipis.get(c, 0) for a, b in steady for c in cores) / relayed
            for cores in (self.server_cores, self.load_cores)
        )
        peak_rss = max(s.rss_kib for s in samples)
        row.rss_per_allocation_kib = (peak_rss - samples[0].rss_kib) / scenario.clients
        if counters:
            delta = {key: after[key] - counters[key] for key in counters}
            row.allocations_per_client = delta["allocations"] / scenario.clients
            packets = delta["packets:client_to_peer"] + delta["packets:peer_to_client"]
            row.offloaded_packets = delta["offloaded:client_to_peer"] + delta["offloaded:peer_to_client"]
            row.offloaded = _percent(row.offloaded_packets, packets)
            row.offloaded_to_peer = _percent(delta["offloaded:client_to_peer"], delta["packets:client_to_peer"])
            row.offloaded_to_client = _percent(delta["offloaded:peer_to_client"], delta["packets:peer_to_client"])
        if name == "ours-on":
            row.notes += offload_flags(scenario, row)
        return row


def offload_flags(scenario: Scenario, row: Row) -> list[str]:
    """With offload on, each UDP direction the kernel did not carry (mostly) is flagged."""
    if scenario.transport == "tcp":
        return ["TCP: user space by design"] if row.offloaded_packets == 0 else []
    shares = (("client->peer", row.offloaded_to_peer), ("peer->client", row.offloaded_to_client))
    return [f"FLAG: offload on, the kernel carried {x:.1f} % {way}" for way, x in shares if x < OFFLOAD_FLAG]


def _rate(
    before: dict[int, tuple[int, int]], after: dict[int, tuple[int, int]], seconds: float
) -> dict[int, tuple[float, float]]:
    """Per CPU, the share of one core that was busy, and that was in irq or softirq (0..1 each)."""
    return {c: tuple((after[c][i] - before[c][i]) / CLOCK_TICKS / seconds for i in (0, 1)) for c in after}


def _percent(part: int, whole: int) -> float:
    return 100.0 * part / whole if whole else 0.0


def _counters(server: Server) -> dict[str, int]:
    """Ours: turn_packets_total and turn_offloaded_packets_total by direction."""
    if not isinstance(server, OurRelay):
        return {}
    counters = {
        f"{kind}:{direction}": server.counter(metric, f'direction="{direction}"')
        for kind, metric in (("packets", "turn_packets_total"), ("offloaded", "turn_offloaded_packets_total"))
        for direction in ("client_to_peer", "peer_to_client")
    }
    counters["allocations"] = server.counter("turn_allocations_created_total")
    return counters


def _steady(samples: list[Sample]) -> list[tuple[Sample, Sample]]:
    """The sampling intervals in which the relay sent at >= 90 % of its peak rate."""
    pairs = [(a, b) for a, b in itertools.pairwise(samples) if b.at > a.at]
    rates = [(b.tx - a.tx) / (b.at - a.at) for a, b in pairs]
    if not rates or max(rates) <= 0:
        return []
    return [pair for pair, rate in zip(pairs, rates, strict=True) if rate >= 0.9 * max(rates)]


def steer(net: Topology, server_cores: list[int], load_cores: list[int]) -> None:
    """RPS: the relay interface's receive work on the server cores, the router's on the load cores."""

    def mask(cores: list[int]) -> str:
        return format(sum(1 << c for c in cores), "x")

    for ns, device, cores in ((net.relay, RELAY_INTERFACE, server_cores),
                              *((net.router, d, load_cores) for d in ("gc0", "gp0", "gr0"))):  # fmt: skip
        path = f"/sys/class/net/{device}/queues/rx-0/rps_cpus"
        subprocess.run(["ip", "netns", "exec", ns, "sh", "-c", f"echo {mask(cores)} > {path}"], check=True)


def start_peer(kind: str, net: Topology, load_cores: list[int], workdir: Path) -> subprocess.Popen | None:
    """The echo peer: turnutils_peer on the load cores, or the kernel echo (None: nothing to stop; it goes
    with the namespace)."""
    if kind == "kernel":
        peer_echo.attach(net.peer, PEER_DEVICE, peer_echo.build(workdir / "echo", PEER_PORT))
        return None
    return subprocess.Popen(
        ["taskset", "-c", ",".join(map(str, load_cores)), "ip", "netns", "exec", net.peer,
         "turnutils_peer", "-L", PEER_IP, "-p", str(PEER_PORT)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--quick", action="store_true", help="one small row per server (under a minute)")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    parser.add_argument("--only", action="append", metavar="TEXT",
                        help="only the rows whose family and clients contain TEXT, e.g. 'channels 120 B' "
                        "(repeatable)")  # fmt: skip
    parser.add_argument("--report-from", type=Path, metavar="JSON", help="print the table of a saved --json run")
    parser.add_argument("--workdir", type=Path, help="keep the servers' logs and configurations here")
    parser.add_argument("--nice", type=int, default=0, metavar="N",
                        help="run the servers and the load at this niceness (e.g. -5 on a machine shared with "
                        "other jobs: all three servers and the load get the same; default 0)")  # fmt: skip
    parser.add_argument("--coturn-threads", type=int, default=0, metavar="N",
                        help="coturn's --relay-threads (default: coturn's own default)")  # fmt: skip
    parser.add_argument("--peer", choices=("turnutils", "kernel"), default="turnutils",
                        help="the echo peer: turnutils_peer (default) or a TC program in the peer namespace "
                        "(peer_echo.py: no process, so the load core offers more)")  # fmt: skip
    parser.add_argument("--repeat", type=int, default=1, metavar="N",
                        help="measure every row N times, the servers interleaved; the table shows each server's "
                        "median run and the spread (default 1)")  # fmt: skip
    parser.add_argument("--quick-method", choices=("channel", "send"), default="send",
                        help="--quick's row: UDP Send indications (default) or ChannelData")  # fmt: skip
    parser.add_argument("--server-cores", type=int, metavar="N",
                        help="the servers on the upper N CPUs, the load on the rest (default: half each); "
                        "on a machine with more CPUs, 1 or 2 leave the load enough to pass the servers' "
                        "limits")  # fmt: skip
    parser.add_argument("--clients", type=client_steps, metavar="N,N,...",
                        help=f"the client steps of every family (100 msg/s each; default {','.join(map(str, STEPS))}"
                        f", {','.join(map(str, SHORT_STEPS))} for 1000-B channels and TCP)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.report_from:  # print a saved run's table again (after a change to the report)
        saved = json.loads(args.report_from.read_text())
        rows = [Row(**{**r, "scenario": Scenario(**r["scenario"])}) for r in saved["rows"]]
        print(report(rows, saved["info"], saved.get("mode", "saved"), METHOD))
        return 0
    if args.repeat < 1:
        parser.error(f"--repeat {args.repeat}: give 1 or more runs per row")
    mode = "quick" if args.quick else "full"
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        print(f"missing: {', '.join(missing)} (./scripts/install.sh --test-tools)", file=sys.stderr)
        return 2
    planned = [s for s in scenarios(args.quick, args.quick_method, args.clients) if not args.only or any(
        word.lower() in f"{s.family} {s.clients}".lower() for word in args.only)]  # fmt: skip
    if not planned:
        print(f"--only {', '.join(args.only)} matches none of the rows", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the namespaces and servers are cleaned up
    if args.nice:
        os.nice(args.nice)  # inherited by every server, uclient and turnutils_peer this script starts
    server_cores, load_cores = split_cores(args.server_cores)
    fd_limit = raise_fd_limit()
    started = time.monotonic()
    rows: list[Row] = []
    per_uclient = 0
    net = Topology()
    soaker = Soaker(server_cores)  # forked before any thread of this script starts
    with tempfile.TemporaryDirectory(prefix="relay-netns-") as scratch:
        tmp = args.workdir or Path(scratch)
        tmp.mkdir(parents=True, exist_ok=True)
        try:
            net.create()
            steer(net, server_cores, load_cores)
            threads = args.coturn_threads
            soaker.start()
            bench = Bench(net, server_cores, load_cores, Path(tmp), quick=args.quick, coturn_threads=threads,
                          soaker=soaker)  # fmt: skip
            per_uclient = bench.per_uclient
            print(f"relay_netns ({mode}): servers on CPU {server_cores}, load on CPU {load_cores}", file=sys.stderr)
            peer = start_peer(args.peer, net, load_cores, Path(tmp))
            try:
                for i, scenario in enumerate(planned):
                    for k in range(i, i + args.repeat):  # the servers interleaved, each going first in turn
                        turn = bench.servers[k % 3 :] + bench.servers[: k % 3]
                        for server in turn:
                            began = time.monotonic()
                            row = bench.measure(server, scenario)
                            rows.append(row)
                            print(f"  {scenario.family:<22} {scenario.clients:>4} clients  {server.name:<8} "
                                  f"{row.delivered:>7.0f} msg/s  loss {row.loss:6.3f} %  cpu {row.cpu_us:6.2f} us/pkt "
                                  f" offloaded {row.offloaded:5.1f} %  ({time.monotonic() - began:.0f} s)",
                                  file=sys.stderr, flush=True)  # fmt: skip
            finally:
                if peer is not None:
                    peer.terminate()
                    peer.wait(5)
        finally:
            soaker.stop()
            net.destroy()
    order = list(dict.fromkeys(r.scenario for r in rows))
    rows.sort(key=lambda r: (order.index(r.scenario), SERVERS.index(r.server)))
    info = {
        "CPUs (servers / load)": f"{server_cores} / {load_cores} (taskset; RPS as described below)",
        "ours": f"workers={len(server_cores)}, kernel-offload on / off, Python {sys.version.split()[0]}",
        "coturn": f"{coturn_version()}, "
        + (f"--relay-threads={args.coturn_threads}" if args.coturn_threads else "default --relay-threads"),
        "load": f"turnutils_uclient (-c, REST -W, up to {per_uclient} clients each) -> "
        + ("turnutils_peer echo" if args.peer == "turnutils" else "echo in the kernel (peer_echo.bpf.c on the peer)"),
        "interfaces": "veth, tx checksum offload off on the senders (full checksums, as from a NIC)",
        "niceness": f"{os.nice(0)} (servers and load alike)",
        "server cores' load": "a SCHED_IDLE soaker on each (bench/cycle_soak.py): soak us/pkt, srv busy",
        "fd limit": str(fd_limit),
        "runs per row": f"{args.repeat} (servers interleaved; the table: each server's median run by CPU/packet)"
        if args.repeat > 1
        else "1",
        "duration": f"{time.monotonic() - started:.0f} s",
    }
    print(report(rows, info, mode, METHOD))
    if args.json:
        saved = {"info": info, "mode": mode, "rows": [asdict(r) for r in rows]}
        args.json.write_text(json.dumps(saved, indent=2, default=str))
    return 0 if all(not r.error for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
