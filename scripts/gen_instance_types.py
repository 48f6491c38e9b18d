#!/usr/bin/env python3
"""Write settings/instance_types.json: every EC2 instance type the pinned botocore knows, with its architecture,
and the Aurora PostgreSQL instance classes and ElastiCache node types the pinned cfn-lint knows.

The list comes from the EC2 service model shipped with botocore (the `InstanceType` enum), so it needs no
credentials or network and changes only when botocore's pin does: run this script after bumping botocore
(`--check` fails when the committed file is stale). Architecture is derived from the family name, because the
service model does not carry it: Graviton families have a `g` right after the generation digit (c7g, c7gn,
m6gd, t4g, r8gb, is4gen) plus `a1`, and the NVIDIA Grace families carry `-gb<digits>` (p6e-gb200); `mac*` is
marked `mac` (dedicated hosts only); everything else is x86_64.

botocore's RDS and ElastiCache models have no such list (DBInstanceClass and CacheNodeType are plain strings),
and the classes are not EC2 types behind a prefix (db.x2g exists, EC2 x2g does not). cfn-lint ships them per
region, from AWS's price list, in its schema extensions: the union over regions is kept (a class offered
somewhere; whether the deployment's region offers it is left to cfn-lint on the template and to RDS).
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import sys
from importlib.metadata import version
from pathlib import Path

import botocore
import botocore.session
import cfnlint

OUTPUT = Path(__file__).resolve().parent.parent / "settings" / "instance_types.json"
_GRAVITON = re.compile(r"^[a-z]+\d+g[a-z]*$")
_GRACE = re.compile(r"-gb\d+$")  # NVIDIA Grace Blackwell superchips: an arm64 host CPU


def architecture(instance_type: str) -> str:
    family = instance_type.split(".", 1)[0]
    if family.startswith("mac"):
        return "mac"
    if family == "a1" or _GRAVITON.match(family) or _GRACE.search(family):
        return "arm64"
    return "x86_64"


_CFN_LINT_EXTENSIONS = Path(cfnlint.__file__).resolve().parent / "data" / "schemas" / "extensions"


def aurora_postgresql_classes() -> list[str]:
    by_region = json.loads((_CFN_LINT_EXTENSIONS / "aws_rds_dbinstance" / "dbinstanceclass_enum.json").read_text())
    classes: set[str] = set()
    for rules in by_region.values():
        for rule in rules["allOf"]:
            if rule["if"]["properties"].get("Engine", {}).get("const") == "aurora-postgresql":
                classes.update(rule["then"]["properties"]["DBInstanceClass"]["enum"])
    return sorted(classes - {"db.serverless"})  # Serverless v2 is database.capacity, not a provisioned class


def cache_node_types() -> list[str]:
    by_region = json.loads(
        (_CFN_LINT_EXTENSIONS / "aws_elasticache_cachecluster" / "cachenodetype_enum.json").read_text()
    )
    return sorted({name for rules in by_region.values() if isinstance(rules, dict) for name in rules["enum"]})


def catalogue(today: datetime.date) -> dict[str, object]:
    model = botocore.session.get_session().get_service_model("ec2")
    names = sorted(set(model.shape_for("InstanceType").enum))
    return {
        "source": f"botocore {botocore.__version__}, EC2 service model {model.api_version}, shape InstanceType "
        "(scripts/gen_instance_types.py)",
        "botocore": botocore.__version__,
        "cfnLint": version("cfn-lint"),
        "generated": today.isoformat(),
        "types": {name: architecture(name) for name in names},
        "auroraPostgresqlClasses": aurora_postgresql_classes(),
        "cacheNodeTypes": cache_node_types(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the committed file differs (date ignored)")
    args = parser.parse_args(argv)
    fresh = catalogue(datetime.datetime.now(datetime.timezone.utc).date())
    if args.check:
        kept = json.loads(OUTPUT.read_text())
        if {k: v for k, v in kept.items() if k != "generated"} != {k: v for k, v in fresh.items() if k != "generated"}:
            print(
                f"{OUTPUT} is stale for botocore {botocore.__version__} and cfn-lint {version('cfn-lint')}: "
                "run scripts/gen_instance_types.py",
                file=sys.stderr,
            )
            return 1
        return 0
    OUTPUT.write_text(json.dumps(fresh, indent=1) + "\n")
    print(f"wrote {len(fresh['types'])} instance types to {OUTPUT}")  # type: ignore[arg-type]
    return 0


if __name__ == "__main__":
    sys.exit(main())
