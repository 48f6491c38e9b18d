"""The namespace benchmark's rows and what it prints from them (bench/relay_netns.py measures): the table,
the highest load each server sustained, and issue 12's targets against coturn.

Loss is judged twice. End to end, as turnutils_uclient counts it; and on the relay host alone, from the
kernel's drop counters (bench/netns_drops.py): on a machine where the load generator saturates its core
first, the end-to-end loss is the load's, and the server's own limit is above the highest step run.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from relay_uclient import Scenario
from relay_vs_coturn import MAX_LOSS, ratio

SERVERS = ("ours-on", "ours-off", "coturn")


@dataclass
class Row:
    scenario: Scenario
    server: str
    sent: float = 0.0
    delivered: float = 0.0
    loss: float = 0.0
    relayed: int = 0  # relay interface tx packets over the steady seconds
    seconds: float = 0.0  # the steady seconds
    sys_us: float = float("nan")  # server cores' busy time - their idle rate, per packet
    host_us: float = float("nan")  # the server processes + the softirq/irq time not charged to them
    proc_us: float = float("nan")  # the server processes' utime + stime
    softirq_us: float = float("nan")  # server cores' irq + softirq - their idle rate
    soak_us: float = float("nan")  # server cores' busy share by the soaker (cycle_soak), per packet
    server_busy: float = 0.0  # percent of the server cores
    load_busy: float = 0.0  # percent of the load cores
    background: float = 0.0  # percent of the server cores busy before the row, idle
    rss_per_allocation_kib: float = float("nan")  # per uclient client, whatever allocations it made
    allocations_per_client: float = float("nan")  # ours: turn_allocations_created_total over the row / clients
    offloaded: float = float("nan")  # percent of turn_packets_total (ours)
    offloaded_packets: int = 0
    offloaded_to_peer: float = float("nan")  # percent, client -> peer
    offloaded_to_client: float = float("nan")  # percent, peer -> client
    relayed_total: int = 0  # relay interface tx packets over the whole row
    host_drops: int = 0  # packets dropped on the relay host over the row (netns_drops)
    load_drops: int = 0  # ... in the load: the client's and peer's namespaces, the router, the load cores
    ipis_to_server: float = float("nan")  # function-call IPIs the server cores received, per relayed packet
    ipis_to_load: float = float("nan")  # ... the load cores received (mostly sent by the server cores' RPS)
    soak_drift: float = float("nan")  # percent the soaker's idle rate moved from before the row to after it
    runs: int = 1  # with --repeat: how many runs this row is the median of
    error: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def cpu_us(self) -> float:
        """The CPU per relayed packet the targets use: the soaker's (every cycle the server cores gave to
        anything else) when it ran, else `host` (the process's own time plus the softirq share ticks saw).
        Never below `proc`: the server's own time was spent on the server cores, so the soaker lost at least
        that much; a soak figure below it is the soaker's baseline drifting (other VMs), not the server."""
        if self.soak_us != self.soak_us:
            return self.host_us
        return max(self.soak_us, self.proc_us) if self.proc_us == self.proc_us else self.soak_us

    @property
    def host_loss(self) -> float:
        """Percent of the packets the relay host sent that it dropped (the server's own loss)."""
        return 100.0 * self.host_drops / self.relayed_total if self.relayed_total else 0.0


LOSS_FIELDS = ("sent", "delivered", "loss", "relayed_total", "host_drops", "load_drops")
LOAD_DROPS_NOTE = "load drops: "  # a row's note naming where the load dropped (relay_netns)


def medians(rows: list[Row]) -> list[Row]:
    """One row per scenario and server: with `--repeat`, the run whose CPU per packet (Row.cpu_us) is the
    median (the lower middle one of an even count; runs that failed or measured nothing rank last), with the
    loss columns (LOSS_FIELDS) of the run whose loss is the median and the median KiB/client: each figure is
    its own median, so one lossy run at a load's edge neither decides nor hides the lossless load. A note
    gives the spread of all runs. One run: the row itself."""
    groups: dict[tuple[Scenario, str], list[Row]] = {}
    for row in rows:
        groups.setdefault((row.scenario, row.server), []).append(row)
    out = []
    for runs in groups.values():
        if len(runs) == 1:
            out.append(runs[0])
            continue
        measured = sorted((r for r in runs if not r.error and r.cpu_us == r.cpu_us), key=lambda r: r.cpu_us)
        failed = [r for r in runs if r not in measured]
        ranked = measured + failed
        chosen = ranked[(len(measured) - 1) // 2 if measured else 0]
        row = replace(chosen, runs=len(runs), notes=list(chosen.notes))
        if measured:
            by_loss = sorted(measured, key=lambda r: r.loss)[(len(measured) - 1) // 2]
            for name in LOSS_FIELDS:
                setattr(row, name, getattr(by_loss, name))
            # where the drops were is told by the run whose drops are shown
            row.notes = [n for n in row.notes if not n.startswith(LOAD_DROPS_NOTE)]
            row.notes += [n for n in by_loss.notes if n.startswith(LOAD_DROPS_NOTE)]
            rss = sorted(r.rss_per_allocation_kib for r in measured)
            row.rss_per_allocation_kib = rss[(len(rss) - 1) // 2]
            cpu = [r.cpu_us for r in measured]
            loss = [r.loss for r in measured]
            row.notes.append(
                f"median of {len(runs)} runs: cpu {min(cpu):.2f}-{max(cpu):.2f} us/pkt, "
                f"loss {min(loss):.3f}-{max(loss):.3f} %"
                + (f", {len(failed)} failed or measured nothing" if failed else "")
            )
        else:
            row.notes.append(f"none of {len(runs)} runs measured anything")
        out.append(row)
    return out


def sustained(rows: list[Row], *, host: bool = False) -> dict[str, dict[str, tuple[float, bool]]]:
    """Per family and server: the highest offered load with <= MAX_LOSS loss (end to end, or with `host`
    the relay host's own drops), and whether that was the highest step run (then the server's own limit
    is higher still)."""
    out: dict[str, dict[str, tuple[float, bool]]] = {}
    for family in dict.fromkeys(r.scenario.family for r in rows):
        top = max(r.scenario.offered for r in rows if r.scenario.family == family)
        for name in SERVERS:
            ok = [r.scenario.offered for r in rows if r.scenario.family == family and r.server == name
                  and (r.host_loss if host else r.loss) <= MAX_LOSS and not r.error]  # fmt: skip
            best = max(ok, default=0.0)
            out.setdefault(family, {})[name] = (best, best == top)
    return out


def targets(rows: list[Row]) -> list[str]:
    rows = medians(rows)
    best, on_host = sustained(rows), sustained(rows, host=True)
    by_key = {(r.scenario, r.server): r for r in rows}
    lines = []

    def cpu_ratios(name: str, family: str | None) -> list[float]:
        """ours/coturn CPU per packet (Row.cpu_us) at each load both carried without loss (all rows if none)."""
        pairs = [(by_key[(s, name)], by_key[(s, "coturn")]) for s, n in by_key
                 if n == "coturn" and (s, name) in by_key and (family is None or s.family == family)]  # fmt: skip
        lossless = [(o, t) for o, t in pairs if o.loss <= MAX_LOSS and t.loss <= MAX_LOSS]
        return [o.cpu_us / t.cpu_us for o, t in (lossless or pairs) if t.cpu_us > 0 and o.cpu_us == o.cpu_us]

    def result(
        value: float | None,
        bound: float,
        at_least: bool,
        tops: tuple[bool, bool] = (False, False),
        why: str = "",
    ) -> str:
        """The ratio and its verdict. `tops`: (ours, coturn's) lossless load was the highest step run, so
        the limit is above it."""
        if value is None:
            return f"-      {why}"
        met = value >= bound if at_least else value <= bound
        verdict = "met" if met else "MISSED"
        if at_least and not met and tops[0]:
            verdict = (
                "not shown (both lossless at the highest load run: the load generator's limit)"
                if tops[1]
                else "or more: not shown (ours lossless at the highest load run: the load generator's limit)"
            )
        return f"{value:5.2f}x  {verdict}"

    def line(text: str, value: float | None, bound: float, at_least: bool) -> str:
        return f"  {text:<58} {result(value, bound, at_least)}"

    def load_line(text: str, family: str, ours: str, bound: float) -> str:
        """A lossless-load target; not judged when the loss that limits it was the load's, not the host's."""
        value, why = _load_ratio(best[family][ours][0], best[family]["coturn"][0])
        shown = result(value, bound, True, (best[family][ours][1], best[family]["coturn"][1]), why)
        host_best, host_top = on_host[family][ours]
        if host_top and host_best > best[family][ours][0] and (value is None or value < bound):
            return (
                f"  {text:<58} -      not shown: the load's loss (ours dropped <= {MAX_LOSS} % on the relay "
                f"host up to the highest step, {host_best:.0f} msg/s; end to end: {shown.strip()})"
            )
        return f"  {text:<58} {shown}"

    for family in best:
        if not family.startswith("UDP"):
            continue
        lines.append(load_line(f"offload on, {family}: lossless load >= 3x", family, "ours-on", 3.0))
        cpu = cpu_ratios("ours-on", family)
        lines.append(line(f"offload on, {family}: CPU/packet <= 0.35x", max(cpu, default=None), 0.35, False))
    for family in best:
        lines.append(load_line(f"user space, {family}: lossless load >= 1.0x", family, "ours-off", 1.0))
    cpu = cpu_ratios("ours-off", None)
    lines.append(line("user space, every row: CPU/packet <= 1.0x (worst row*)", max(cpu, default=None), 1.0, False))
    coturn_rss = {r.scenario: r.rss_per_allocation_kib for r in rows if r.server == "coturn"}
    rss = [r.rss_per_allocation_kib / coturn_rss[r.scenario] for r in rows
           if r.server != "coturn" and r.scenario.clients >= 100 and coturn_rss.get(r.scenario, 0) > 0]  # fmt: skip
    if rss:
        lines.append(line("RSS per allocation <= 0.2x (worst row, offload on or off)", max(rss), 0.2, False))
    return lines


def _load_ratio(ours: float, coturn: float) -> tuple[float | None, str]:
    if coturn:
        return ours / coturn, ""
    return None, f"(coturn lost > {MAX_LOSS} % at every load run; ours sustained {ours:.0f} msg/s)"


def report(rows: list[Row], info: dict[str, str], mode: str, method: str) -> str:
    """The whole printout; `method` is the measuring script's own account of where the CPU goes. Repeated
    runs of a row (--repeat) are shown and judged by their medians."""
    rows = medians(rows)
    lines = [f"TURN relay in network namespaces ({mode}): offload on / off / coturn, the same load", ""]
    lines += [f"  {key:<24} {value}" for key, value in info.items()]
    header = (
        f"{'scenario':<22} {'clients':>7} {'nominal':>7} {'server':<8} {'sent/s':>7} {'msg/s':>7} {'loss %':>7} "
        f"{'host':>6} {'proc':>6} {'softirq':>7} {'sys':>6} {'soak':>6} {'srv busy':>8} {'load busy':>9} "
        f"{'idle bg':>7} {'KiB/client':>10} {'offloaded c>p/p>c':>17} {'x coturn cpu':>13} {'drops host/load':>15} "
        f"{'IPIs s/l':>9}"
    )
    lines += ["", header, "-" * len(header)]
    by_key = {(r.scenario, r.server): r for r in rows}
    for row in rows:
        theirs = by_key.get((row.scenario, "coturn"))
        compare = ratio(row.cpu_us, theirs.cpu_us) if theirs is not None and row.server != "coturn" else ""
        offloaded = (
            f"{row.offloaded_to_peer:.1f}/{row.offloaded_to_client:.1f}%" if row.offloaded == row.offloaded else "-"
        )
        lines.append(
            f"{row.scenario.family:<22} {row.scenario.clients:>7} {row.scenario.offered:>7.0f} {row.server:<8} "
            f"{row.sent:>7.0f} {row.delivered:>7.0f} {row.loss:>7.3f} {row.host_us:>6.2f} {row.proc_us:>6.2f} "
            f"{row.softirq_us:>7.2f} {row.sys_us:>6.2f} {row.soak_us:>6.2f} {row.server_busy:>7.0f}% "
            f"{row.load_busy:>8.0f}% {row.background:>6.0f}% {row.rss_per_allocation_kib:>10.1f} {offloaded:>17} "
            f"{compare:>13} "
            f"{f'{row.host_drops}/{row.load_drops}':>15} "
            f"{f'{row.ipis_to_server:.2f}/{row.ipis_to_load:.2f}':>9}"
            + (f"  ERROR {row.error}" if row.error else "")
            + "".join(f"  ({note})" for note in row.notes)
        )
    lines += [
        "",
        f"Highest offered load sustained with <= {MAX_LOSS} % loss (messages/s; + = at the highest step run):",
    ]
    for family, servers in sustained(rows).items():
        cells = "   ".join(f"{n} {v:>7.0f}{'+' if top else ' '}" for n, (v, top) in servers.items())
        lines.append(f"  {family:<22} {cells}")
    lines.append(f"... with <= {MAX_LOSS} % dropped on the relay host itself (the rest of the loss was the load's):")
    for family, servers in sustained(rows, host=True).items():
        cells = "   ".join(f"{n} {v:>7.0f}{'+' if top else ' '}" for n, (v, top) in servers.items())
        lines.append(f"  {family:<22} {cells}")
    lines += ["", "Targets (issue 12), ratios against coturn in this run; printed, never asserted:", *targets(rows)]
    lines.append("  * CPU/packet: soak (never below proc; else host) us/pkt over coturn's, the worst of the loads both "
                 f"carried with <= {MAX_LOSS} % loss (of all loads when there is none)")  # fmt: skip
    counted = sorted({r.allocations_per_client for r in rows if r.allocations_per_client == r.allocations_per_client})
    per_client = f" (each made {'/'.join(f'{n:g}' for n in counted)} allocations on ours)" if counted else ""
    lines += ["", *(line.rstrip() for line in method.strip("\n").splitlines())]
    lines += [
        "msg/s, sent/s and loss from turnutils_uclient (its seconds of peak sending); srv/load busy = share of",
        "the server/load cores busy over the steady seconds; idle bg = the server cores' busy share idle before",
        "the row; KiB/client = (peak - idle RSS) / uclient clients, the idle RSS taken after a one-client warm-up"
        f"{per_client}; offloaded = turn_offloaded_packets_total /",
        "turn_packets_total over the row (ours), client->peer / peer->client; soak = us/pkt of the server cores",
        "taken from a SCHED_IDLE soaker (bench/cycle_soak.py; while it runs, srv busy is its figure and /proc/stat",
        "sees the cores busy: sys and idle bg are then meaningless); x coturn cpu = soak (>= proc; else host)",
        "us/pkt over coturn's at the same load, the figure the targets use; drops host/load = packets the kernel",
        "dropped over the row on the relay host / in the load (client, peer, router namespaces and the load",
        "cores' backlog: UDP InErrors and SndbufErrors, interface drops; bench/netns_drops.py); IPIs s/l =",
        "function-call interrupts per relayed packet received by the server / load cores (RPS handing packets",
        "between them).",
    ]
    return "\n".join(lines)
