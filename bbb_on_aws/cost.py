"""`bbb-on-aws cost`: a monthly estimate of a configuration before it is deployed.

Every billable component the stacks create, priced from the table kept in the repo (prices.json, dated, each
figure with its source), at the fleets' minimum, desired and maximum sizes. Usage-driven lines (media egress,
relayed traffic, storage, logs) come from stated assumptions with flags. A region, instance type, DB class or
cache node the table does not hold is an error naming what to add, never a silent zero.

The resource counts below mirror the stacks (one place each, checked against the synthesized templates by
tests/cli/test_cost.py): they change when the stacks do.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from bbb_on_aws.deployment_config import Config

PRICES = Path(__file__).resolve().parent / "prices.json"
GIB = 2**30

# What the stacks create, per shape (see the module docstring).
# Secrets Manager secrets: shared (6) + data (3) + frontend (1) + the fleet certificate's ACME account and
# certificate (2, scalable only)
SECRETS = {"scalable": 12, "single": 6}
STATIC_ALARMS = {"scalable": 51, "single": 42}  # CloudWatch alarms in the dev templates (fleets, monitoring)
KMS_KEYS = {"scalable": 2, "single": 1}  # shared stack; the fleet certificate's (scalable)
DASHBOARDS = 1
ECS_ROOT_GIB = 30  # cdk_constructs/ecs_cluster.py
PROXY_ROOT_GIB = 10  # cdk_constructs/cluster_proxy.py
# Custom metrics (namespace BBBOnAWS/<env> and the Lambdas' own): a fixed base (the Lambdas', the agent's, the
# relay's 16 and the BBB servers' 7 per group: docs/host-contract.md), plus per TURN instance
# Allocations{group,instance} and TurnProbeHealthy{instance}, per BBB server Meetings and Participants
# {group,instance}. An estimate: CloudWatch bills each series.
BASE_CUSTOM_METRICS = 40
METRICS_PER_TURN_INSTANCE = 2
METRICS_PER_BBB_INSTANCE = 2


class PriceError(ValueError):
    """The price table cannot price this configuration (missing region or item): says what to add."""


@dataclass(frozen=True)
class Usage:
    """Assumptions for usage-driven lines (flags of `cost`)."""

    participant_hours: float = 8800.0  # e.g. 100 participants x 4 h x 22 days
    down_kbps: float = 1200.0  # server -> participant: audio, a few webcams, screen share
    up_kbps: float = 300.0  # participant -> server (free inbound; counts on the relayed hop)
    relayed_share: float = 0.2  # share of participants behind TURN (seed 002: ~80% never need it)
    recordings_gb: float = 100.0  # EFS spool + published recordings
    database_gb: float = 10.0
    log_gb: float = 5.0
    nat_gb: float = 50.0  # image pulls, package updates, AWS APIs from private subnets
    lcu: float = 1.0  # average load-balancer capacity units


@dataclass
class Line:
    component: str
    detail: str
    min: float
    desired: float
    max: float
    sources: list[str] = field(default_factory=list)


class PriceTable:
    def __init__(self, region: str, path: Path = PRICES) -> None:
        table = json.loads(path.read_text())
        self.date: str = table["date"]
        self.source_names: dict[str, str] = table["sources"]
        self.hours: float = table["hoursPerMonth"]
        regions = table["regions"]
        if region not in regions:
            raise PriceError(
                f"no prices for region '{region}' in {path.name} (covered: {', '.join(sorted(regions))}); "
                f"add the region's figures there from the AWS Price List API"
            )
        self.region = region
        self.path = path
        self._prices: dict[str, Any] = regions[region]

    def get(self, key: str, item: str | None = None) -> tuple[Any, str]:
        entry = self._prices.get(key)
        if entry is not None and item is not None:
            entry = entry.get(item)
        if entry is None:
            what = f"{key}['{item}']" if item else key
            raise PriceError(f"no price for {what} in region {self.region} in {self.path.name}; add it (value, source)")
        return entry[0], entry[1]


def _ec2(table: PriceTable, instance_type: str, where: str) -> tuple[float, str]:
    # The type is one EC2 has: the configuration (settings/instance_types.json) refused any other before this.
    try:
        return table.get("ec2", instance_type)
    except PriceError:
        raise PriceError(
            f"{where}: no price for instance type '{instance_type}' in {table.region} in "
            f"{table.path.name}; add it under regions.{table.region}.ec2"
        ) from None


class Estimate:
    """Builds the lines for one configuration."""

    def __init__(self, config: Config, usage: Usage, table: PriceTable) -> None:
        self.c, self.u, self.t = config, usage, table
        self.lines: list[Line] = []

    def add(
        self, component: str, detail: str, per_unit: float, counts: tuple[float, float, float], *sources: str
    ) -> None:
        low, want, high = (cents(per_unit * n) for n in counts)
        self.lines.append(Line(component, detail, low, want, high, sorted(set(sources))))

    def build(self) -> list[Line]:
        c, t = self.c, self.t
        hours = t.hours
        scalable = c.environment.type == "scalable"
        fleets = self._fleets()
        gp3, gp3_src = t.get("ebsGp3GbMonth")
        for name, key, itype, (lo, want, hi), gib in fleets:
            price, src = _ec2(t, itype, f"deployment.{key}.instanceType")
            self.add(f"EC2 {name}", f"{itype} x {lo}/{want}/{hi} x {hours:g} h", price * hours, (lo, want, hi), src)
            self.add(f"EBS {name}", f"gp3 {gib} GiB per instance", gp3 * gib, (lo, want, hi), gp3_src)
        pools = self._warm_pools(fleets) if scalable else []
        for name, key, itype, sizes, gib, running in pools:
            state = "running" if running else "stopped: volumes only"
            self.add(f"EBS {name} warm pool", f"gp3 {gib} GiB per prepared server ({state})", gp3 * gib, sizes,
                     gp3_src)
            if running:
                price, src = _ec2(t, itype, f"deployment.{key}.instanceType")
                self.add(f"EC2 {name} warm pool", f"{itype} x prepared x {hours:g} h", price * hours, sizes, src)
        azs = len(c.network.availability_zones)
        public = [f for f in fleets if f[0] in ("BBB servers", "TURN servers", "BBB+Greenlight host")]
        fixed_ips = (c.nat_gateways if scalable else 0) + (azs if scalable else 0) + azs  # NAT EIPs, ALB, NLB
        ip, ip_src = t.get("publicIpv4Hour")
        # A running prepared server keeps its public IPv4; a stopped one gives it back (a new one on every start).
        counts = tuple(
            fixed_ips + sum(f[3][i] for f in public) + sum(p[3][i] for p in pools if p[5]) for i in range(3)
        )
        self.add("Public IPv4", "instances + NAT + load balancer nodes", ip * hours, counts, ip_src)  # type: ignore[arg-type]
        if scalable:
            nat_h, s1 = t.get("natGatewayHour")
            nat_gb, s2 = t.get("natGatewayGb")
            self._fixed(
                "NAT gateways",
                f"{c.nat_gateways} x {hours:g} h + {self.u.nat_gb:g} GB processed",
                c.nat_gateways * nat_h * hours + self.u.nat_gb * nat_gb,
                s1,
                s2,
            )
            alb_h, s1 = t.get("albHour")
            alb_lcu, s2 = t.get("albLcuHour")
            self._fixed(
                "Application Load Balancer",
                f"{hours:g} h + {self.u.lcu:g} LCU",
                (alb_h + self.u.lcu * alb_lcu) * hours,
                s1,
                s2,
            )
        nlb_h, s1 = t.get("nlbHour")
        nlb_lcu, s2 = t.get("nlbLcuHour")
        self._fixed(
            "Network Load Balancer (turns:443)",
            f"{hours:g} h + {self.u.lcu:g} NLCU",
            (nlb_h + self.u.lcu * nlb_lcu) * hours,
            s1,
            s2,
        )
        if scalable:
            self._data()
            if c.frontend.capacity == "fargate":
                self._fargate()
        self._operations(fleets)
        self._traffic()
        return self.lines

    def _fixed(self, component: str, detail: str, monthly: float, *sources: str) -> None:
        self.add(component, detail, monthly, (1, 1, 1), *sources)

    def _warm_pools(
        self, fleets: list[tuple[str, str, str, tuple[int, int, int], int]]
    ) -> list[tuple[str, str, str, tuple[int, int, int], int, bool]]:
        """(name, cdk.json section, instance type, prepared servers at the fleet's min/desired/max, GiB each,
        running) per enabled pool. Auto Scaling keeps max(minSize, maxPreparedCapacity - instances in the
        group) prepared, maxPreparedCapacity defaulting to the group's maximum: largest when the fleet is
        smallest."""
        out = []
        for name, key, itype, counts, gib in fleets:
            pool = getattr(getattr(self.c, key), "warm_pool", None)
            if pool is None or not pool.enabled:
                continue
            prepared = counts[2] if pool.max_prepared_capacity is None else pool.max_prepared_capacity
            sizes = tuple(max(pool.min_size, prepared - n) for n in counts)
            out.append((name, key, itype, sizes, gib, pool.pool_state == "Running"))
        return out  # type: ignore[return-value]

    def _fleets(self) -> list[tuple[str, str, str, tuple[int, int, int], int]]:
        """(name, cdk.json section, instance type, (min, desired, max), EBS GiB per instance)."""
        c = self.c
        turn, bbb, fe = c.turn, c.bbb, c.frontend
        fleets = [
            (
                "TURN servers",
                "turn",
                turn.instance_type,
                (turn.min_instances, turn.desired_instances, turn.max_instances),
                turn.root_volume_gib,
            )
        ]
        volumes = bbb.root_volume_gib + bbb.data_volume_gib
        if c.environment.type == "single":
            fleets.append(("BBB+Greenlight host", "bbb", bbb.instance_type, (1, 1, 1), volumes))
            return fleets
        fleets.append(
            (
                "BBB servers",
                "bbb",
                bbb.instance_type,
                (bbb.min_instances, bbb.desired_instances, bbb.max_instances),
                volumes,
            )
        )
        if fe.capacity == "ec2":
            fleets.append(
                (
                    "ECS instances",
                    "frontend",
                    fe.instance_type,
                    (fe.min_instances, fe.desired_instances, fe.max_instances),
                    ECS_ROOT_GIB,
                )
            )
        if c.cluster_proxy.enabled:
            n = 2 if c.is_production_like else 1
            fleets.append(("cluster proxy", "clusterProxy", c.cluster_proxy.instance_type, (n, n, n), PROXY_ROOT_GIB))
        return fleets

    def _data(self) -> None:
        c, t, hours = self.c, self.t, self.t.hours
        db = c.database
        instances = 2 if c.is_production_like else 1  # writer (+ reader in another zone)
        if db.capacity == "serverless":
            acu, src = t.get("auroraAcuHour")
            self.add(
                "Aurora PostgreSQL (Serverless v2)",
                f"{instances} instance(s) x {db.serverless_min_acu:g}/{db.serverless_min_acu:g}/"
                f"{db.serverless_max_acu:g} ACU",
                acu * hours * instances,
                (db.serverless_min_acu, db.serverless_min_acu, db.serverless_max_acu),
                src,
            )
        else:
            try:
                price, src = t.get("auroraInstance", db.instance_class)
            except PriceError as error:
                raise PriceError(f"deployment.database.instanceClass: {error}") from None
            self._fixed(
                "Aurora PostgreSQL (provisioned)", f"{db.instance_class} x {instances}", price * hours * instances, src
            )
        storage, src = t.get("auroraStorageGbMonth")
        self._fixed("Aurora storage", f"{self.u.database_gb:g} GB", storage * self.u.database_gb, src)
        try:
            node, src = t.get("elasticacheRedis", c.cache.node_type)
        except PriceError as error:
            raise PriceError(f"deployment.cache.nodeType: {error}") from None
        sources = [src]
        if c.cache.engine == "valkey":
            discount, dsrc = t.get("valkeyDiscount")
            node *= 1 - discount
            sources.append(dsrc)
        nodes = 2 if c.is_production_like else 1
        self._fixed(f"ElastiCache ({c.cache.engine})", f"{c.cache.node_type} x {nodes}", node * hours * nodes, *sources)
        efs, src = t.get("efsStandardGbMonth")
        self._fixed("EFS recordings", f"{self.u.recordings_gb:g} GB Standard", efs * self.u.recordings_gb, src)

    def _fargate(self) -> None:
        fe, hours = self.c.frontend, self.t.hours
        vcpu, s1 = self.t.get("fargateVcpuHour")
        gb, s2 = self.t.get("fargateGbHour")
        tasks = [
            ("greenlight", fe.greenlight_tasks, [fe.greenlight]),
            ("scalelite web", fe.scalelite_api_tasks, [fe.scalelite_api, fe.scalelite_nginx]),
            ("scalelite poller", 1, [fe.scalelite_poller]),
            ("scalelite importer", 1, [fe.scalelite_importer]),
        ]
        for name, count, containers in tasks:
            cpu = sum(ct.cpu for ct in containers) / 1024
            mem = sum(ct.memory_mib for ct in containers) / 1024
            self._fixed(
                f"Fargate {name}",
                f"{count} task(s) x {cpu:g} vCPU / {mem:g} GB",
                count * (cpu * vcpu + mem * gb) * hours,
                s1,
                s2,
            )

    def _operations(self, fleets: list[tuple[str, str, str, tuple[int, int, int], int]]) -> None:
        t, shape = self.t, self.c.environment.type
        turn = next(f[3] for f in fleets if f[0] == "TURN servers")
        bbb = next(f[3] for f in fleets if f[0] in ("BBB servers", "BBB+Greenlight host"))
        secret, src = t.get("secretMonth")
        self._fixed("Secrets Manager", f"{SECRETS[shape]} secrets", secret * SECRETS[shape], src)
        kms, src = t.get("kmsKeyMonth")
        keys = KMS_KEYS[shape]
        self._fixed("KMS", f"{keys} customer managed key{'s' if keys > 1 else ''}", kms * keys, src)
        alarm, s1 = t.get("cloudwatchAlarmMonth")
        self.add(
            "CloudWatch alarms",
            f"{STATIC_ALARMS[shape]} + 1 probe alarm per TURN server",
            alarm,
            tuple(STATIC_ALARMS[shape] + n for n in turn),
            s1,
        )  # type: ignore[arg-type]
        metric, s1 = t.get("cloudwatchMetricMonth")
        self.add(
            "CloudWatch custom metrics",
            f"~{BASE_CUSTOM_METRICS} + {METRICS_PER_TURN_INSTANCE} per TURN server"
            f" + {METRICS_PER_BBB_INSTANCE} per BBB server",
            metric,
            tuple(
                BASE_CUSTOM_METRICS + METRICS_PER_TURN_INSTANCE * n + METRICS_PER_BBB_INSTANCE * b
                for n, b in zip(turn, bbb, strict=True)
            ),
            s1,
        )  # type: ignore[arg-type]
        dash, s1 = t.get("cloudwatchDashboardMonth")
        logs, s2 = t.get("cloudwatchLogsGb")
        self._fixed(
            "CloudWatch dashboard + logs",
            f"{DASHBOARDS} dashboard, {self.u.log_gb:g} GB ingested",
            dash * DASHBOARDS + logs * self.u.log_gb,
            s1,
            s2,
        )
        zone, s1 = t.get("route53ZoneMonth")
        self._fixed("Route 53 hosted zone", "1 zone (existing, used by the deployment)", zone, s1)
        check, s1 = t.get("route53HealthCheckMonth")
        self.add("Route 53 health checks", "1 per TURN server (CloudWatch-alarm based)", check, turn, s1)  # type: ignore[arg-type]

    def _traffic(self) -> None:
        u, t = self.u, self.t
        egress_gb = u.participant_hours * 3600 * u.down_kbps * 1000 / 8 / GIB
        tiers, src = t.get("dataTransferOutTiersGb")
        self._fixed(
            "Data transfer out (media)",
            f"{u.participant_hours:g} participant-h x {u.down_kbps:g} kbit/s = {egress_gb:,.0f} GB",
            tiered(egress_gb, tiers),
            src,
        )
        relayed_gb = u.participant_hours * u.relayed_share * 3600 * (u.down_kbps + u.up_kbps) * 1000 / 8 / GIB
        hop, src = t.get("intraRegionPublicGb")
        self._fixed(
            "Relayed TURN traffic (TURN <-> BBB hop)",
            f"{u.relayed_share:.0%} relayed, {relayed_gb:,.0f} GB, charged on both sides",
            relayed_gb * hop * 2,
            src,
        )


def dump_prices(table: dict[str, Any]) -> str:
    """prices.json's text: indented, one price ([value, source]) per line, so a diff shows each change."""
    text = json.dumps(table, indent=1)
    for _ in range(3):  # innermost lists first: a price, then the tier pairs, then the tier list
        text = re.sub(r"\[\s+([^\[\]{}]*?)\s+\]", lambda m: "[" + re.sub(r"\s*\n\s*", " ", m.group(1)) + "]", text)
    return text + "\n"


def cents(amount: float) -> float:
    """Rounded to the cent, halves up as on an invoice (binary floats would turn 20.805 into 20.80)."""
    return float(Decimal(f"{amount:.6f}").quantize(Decimal("0.01"), ROUND_HALF_UP))


def tiered(gb: float, tiers: list[list[float | None]]) -> float:
    """Cost of `gb` over AWS's volume tiers [[upper bound GB or None, price per GB], ...]."""
    total, below = 0.0, 0.0
    for upper, price in tiers:
        top = gb if upper is None else min(gb, float(upper))
        if top > below:
            total += (top - below) * float(price)  # type: ignore[arg-type]
            below = top
    return total


def estimate(config: Config, usage: Usage | None = None, prices: Path = PRICES) -> dict[str, Any]:
    """The estimate as plain data (what `--json` prints): lines, totals at min/desired/max, the table used."""
    table = PriceTable(config.environment.region, prices)
    lines = Estimate(config, usage or Usage(), table).build()
    used = sorted({s for line in lines for s in line.sources})
    return {
        "region": table.region,
        "currency": "USD",
        "period": "month",
        "prices": {"file": table.path.name, "date": table.date, "sources": {k: table.source_names[k] for k in used}},
        "assumptions": asdict(usage or Usage()),
        "lines": [asdict(line) for line in lines],
        "total": cents(sum(line.desired for line in lines)),
        "total_min": cents(sum(line.min for line in lines)),
        "total_max": cents(sum(line.max for line in lines)),
    }


def render(result: dict[str, Any]) -> str:
    rows = [
        (line["component"], line["detail"], line["min"], line["desired"], line["max"], ",".join(line["sources"]))
        for line in result["lines"]
    ]
    width = max(len(r[0]) for r in rows)
    dwidth = max(len(r[1]) for r in rows)
    out = [
        f"Monthly estimate, {result['region']}, USD (prices of {result['prices']['date']}, {result['prices']['file']})",
        f"{'component':<{width}}  {'detail':<{dwidth}}  {'min':>9}  {'desired':>9}  {'max':>9}  src",
    ]
    out += [
        f"{c:<{width}}  {d:<{dwidth}}  {lo:>9,.2f}  {want:>9,.2f}  {hi:>9,.2f}  {s}" for c, d, lo, want, hi, s in rows
    ]
    out.append(
        f"{'TOTAL':<{width}}  {'':<{dwidth}}  {result['total_min']:>9,.2f}  {result['total']:>9,.2f}  "
        f"{result['total_max']:>9,.2f}"
    )
    out += [f"src {key}: {text}" for key, text in result["prices"]["sources"].items()]
    return "\n".join(out)
