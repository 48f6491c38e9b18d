"""Instance types: the catalogue (settings/instance_types.json, generated from the pinned botocore and cfn-lint) and the
configuration's checks against it. A typo or a type the hosts' image cannot boot fails loading, naming the key,
the value and real types to use instead, together with every other problem."""

from __future__ import annotations

import copy
import importlib.util
import json
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import botocore
import pytest

from cdk_constructs import fleet_host
from settings import ConfigError, instance_types, load_config

ROOT = Path(__file__).resolve().parents[2]
BASE = json.loads((ROOT / "cdk.json").read_text())["context"]["deployment"]
GENERATOR = ROOT / "scripts" / "gen_instance_types.py"
PRICES = json.loads((ROOT / "bbb_on_aws" / "prices.json").read_text())
SNAPSHOTS = ROOT / "tests" / "infra" / "__snapshots__" / "test_quality_gates"

# Every key that holds an EC2 instance type, with the hosts it launches as the message names them.
HOST_KEYS = {
    "frontend.instanceType": "the ECS container instances run the x86_64 ECS-optimized Amazon Linux 2023 image",
    "bbb.instanceType": "the BBB servers (and the single host) run the amd64 Ubuntu 22.04 image and BBB, which is "
    "built for amd64 only",
    "turn.instanceType": "the TURN hosts run the amd64 Ubuntu 22.04 image",
    "clusterProxy.instanceType": "the cluster proxy hosts run the amd64 Ubuntu 22.04 image",
}


def context(**changes: Any) -> dict[str, Any]:
    section = copy.deepcopy(BASE)
    for path, value in changes.items():
        *parents, leaf = path.split(".")
        node = section
        for part in parents:
            node = node[part]
        node[leaf] = value
    return {"deployment": section}


def problems(**changes: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(context(**changes))
    return info.value.problems


def loads(**changes: Any) -> Any:
    return load_config(context(**changes))


# -- the catalogue ------------------------------------------------------------------------------------------


def test_catalogue_is_current_for_the_pinned_botocore_and_cfn_lint():
    result = subprocess.run(
        [sys.executable, str(GENERATOR), "--check"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert f"botocore {botocore.__version__}" in instance_types.source()


def test_check_fails_on_a_stale_catalogue(tmp_path, monkeypatch, capsys):
    """`--check` compares every type and architecture: one type dropped or one architecture changed is stale."""
    spec = importlib.util.spec_from_file_location("gen_instance_types", GENERATOR)
    assert spec and spec.loader
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    kept = json.loads(instance_types.CATALOGUE.read_text())
    stale = tmp_path / "instance_types.json"
    monkeypatch.setattr(generator, "OUTPUT", stale)

    stale.write_text(json.dumps({**kept, "generated": "2000-01-01"}))
    assert generator.main(["--check"]) == 0  # the date alone does not make it stale

    for broken in (
        {"types": {k: v for k, v in kept["types"].items() if k != "c5a.2xlarge"}},
        {"types": {**kept["types"], "t4g.small": "x86_64"}},
        {"auroraPostgresqlClasses": kept["auroraPostgresqlClasses"][1:]},
        {"cacheNodeTypes": [*kept["cacheNodeTypes"], "cache.t4g.huge"]},
    ):
        stale.write_text(json.dumps({**kept, **broken}))
        assert generator.main(["--check"]) == 1
        assert "is stale for botocore" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("name", "arch"),
    [
        ("c7g.large", "arm64"),
        ("c7gn.xlarge", "arm64"),
        ("m6gd.large", "arm64"),
        ("t4g.small", "arm64"),
        ("r8g.large", "arm64"),
        ("a1.large", "arm64"),
        ("is4gen.large", "arm64"),
        ("g5g.xlarge", "arm64"),
        ("p6e-gb200.36xlarge", "arm64"),
        ("c5a.2xlarge", "x86_64"),
        ("t3.small", "x86_64"),
        ("g4dn.xlarge", "x86_64"),
        ("g6e.xlarge", "x86_64"),
        ("p6-b200.48xlarge", "x86_64"),
        ("m7i-flex.large", "x86_64"),
        ("mac2.metal", "mac"),
        ("mac1.metal", "mac"),
    ],
)
def test_architecture(name, arch):
    assert instance_types.architecture(name) == arch


def test_unknown_type_names_the_nearest_real_ones():
    assert not instance_types.known("t3.smal")
    assert instance_types.nearest("t3.smal")[0] == "t3.small"
    with pytest.raises(instance_types.UnknownInstanceType, match=r"did you mean t3\.small"):
        instance_types.check("t3.smal")
    with pytest.raises(instance_types.UnknownInstanceType, match=r"see settings/instance_types\.json"):
        instance_types.architecture("zzzz.nothing-like-it")


@pytest.mark.parametrize(
    ("arm", "x86"),
    [
        ("t4g.small", ["t3.small", "t3a.small", "t2.small"]),
        ("c7g.2xlarge", ["c7a.2xlarge", "c7i.2xlarge", "c7i-flex.2xlarge"]),
        ("m6gd.large", ["m6id.large", "m6idn.large", "m6a.large"]),
        ("a1.large", []),  # no x86_64 type of class `a`
    ],
)
def test_alternatives_keep_the_size_and_class(arm, x86):
    assert instance_types.alternatives(arm, "x86_64") == x86
    assert all(instance_types.architecture(name) == "x86_64" for name in x86)


def test_every_priced_type_is_in_the_catalogue():
    """The cost estimate prices only configurations the catalogue accepted: a priced type it lacks is dead."""
    for region, table in PRICES["regions"].items():
        for name in table["ec2"]:
            assert instance_types.known(name), (region, name)
        for name in table["auroraInstance"]:
            assert instance_types.unknown_class(name, "auroraPostgresqlClasses") is None, (region, name)
        for name in table["elasticacheRedis"]:
            assert instance_types.unknown_class(name, "cacheNodeTypes") is None, (region, name)


def test_service_classes_come_from_cfn_lint_not_from_ec2():
    """RDS has classes EC2 lacks (db.x2g; EC2 has only x2gd) and Aurora lacks classes RDS has (db.m5)."""
    assert instance_types.unknown_class("db.x2g.large", "auroraPostgresqlClasses") is None
    assert not instance_types.known("x2g.large")
    assert instance_types.unknown_class("db.m5.large", "auroraPostgresqlClasses")
    assert instance_types.unknown_class("db.serverless", "auroraPostgresqlClasses")  # that is database.capacity


# -- the configuration's checks -----------------------------------------------------------------------------


@pytest.mark.parametrize("key", HOST_KEYS)
def test_typo_names_key_value_and_nearest_types(key):
    (message,) = problems(**{key: "c5a.2xlarg"})
    assert message == (
        f"deployment.{key}: 'c5a.2xlarg' is not an EC2 instance type (botocore {botocore.__version__}'s EC2 "
        "model); did you mean c5a.2xlarge, c5ad.2xlarge, c5a.24xlarge?"
    )


def test_nothing_like_a_type_points_at_the_list():
    (message,) = problems(**{"turn.instanceType": "zzzz"})
    assert message.startswith("deployment.turn.instanceType: 'zzzz' is not an EC2 instance type")
    assert message.endswith("see settings/instance_types.json for the list")


@pytest.mark.parametrize(
    ("key", "arm", "kind", "x86"),
    [
        ("frontend.instanceType", "m7g.large", "arm64 (Graviton)", "m7a.large, m7i.large, m7i-flex.large"),
        ("bbb.instanceType", "c7g.2xlarge", "arm64 (Graviton)", "c7a.2xlarge, c7i.2xlarge, c7i-flex.2xlarge"),
        ("turn.instanceType", "t4g.small", "arm64 (Graviton)", "t3.small, t3a.small, t2.small"),
        ("clusterProxy.instanceType", "t4g.micro", "arm64 (Graviton)", "t3.micro, t3a.micro, t2.micro"),
        # No x86_64 type of the same size and class: the key's default is offered.
        ("bbb.instanceType", "a1.2xlarge", "arm64 (Graviton)", "c5a.2xlarge"),
        ("turn.instanceType", "mac2.metal", "a Mac type (macOS on a Dedicated Host)", "t3.small"),
    ],
)
def test_type_the_hosts_cannot_boot_names_the_hosts_and_x86_types(key, arm, kind, x86):
    (message,) = problems(**{key: arm})
    assert message == f"deployment.{key}: '{arm}' is {kind}, but {HOST_KEYS[key]}; use an x86_64 type such as {x86}"
    for name in x86.split(", "):  # what the message offers is accepted
        assert loads(**{key: name})


def test_the_single_host_is_checked_too():
    (message,) = problems(**{"environment.type": "single", "bbb.instanceType": "m7g.2xlarge"})
    assert message.startswith("deployment.bbb.instanceType: 'm7g.2xlarge' is arm64 (Graviton), but the BBB servers")


@pytest.mark.parametrize(
    "changes",
    [
        {
            "frontend.instanceType": "m6i.large",
            "bbb.instanceType": "m7i.2xlarge",
            "turn.instanceType": "c6i.large",
            "clusterProxy.instanceType": "t3a.small",
        },
        {"bbb.instanceType": "c7a.4xlarge", "turn.instanceType": "c5n.large", "frontend.instanceType": "m5.xlarge"},
    ],
)
def test_valid_x86_types_pass(changes):
    config = loads(**changes)
    read = {
        "frontend.instanceType": config.frontend.instance_type,
        "bbb.instanceType": config.bbb.instance_type,
        "turn.instanceType": config.turn.instance_type,
        "clusterProxy.instanceType": config.cluster_proxy.instance_type,
    }
    assert {key: read[key] for key in changes} == changes


def test_every_problem_is_reported_at_once():
    found = problems(
        **{
            "bbb.instanceType": "c5a.2xlarg",
            "turn.instanceType": "t4g.small",
            "frontend.instanceType": "c7gd.large",
            "operatorEmail": "nobody",
        }
    )
    assert [p.split(":")[0] for p in found] == [
        "deployment.operatorEmail",
        "deployment.frontend.instanceType",
        "deployment.bbb.instanceType",
        "deployment.turn.instanceType",
    ]


@pytest.mark.parametrize(
    ("key", "value", "what", "nearest"),
    [
        (
            "database.instanceClass",
            "db.t4g.mediun",
            "an Aurora PostgreSQL instance class",
            "db.t4g.medium, db.t3.medium, db.t4g.large",
        ),
        (
            "database.instanceClass",
            "db.m5.large",
            "an Aurora PostgreSQL instance class",
            "db.r5.large, db.r5.xlarge, db.r5.8xlarge",
        ),
        (
            "cache.nodeType",
            "cache.t4g.mikro",
            "an ElastiCache node type",
            "cache.t4g.micro, cache.t3.micro, cache.t2.micro",
        ),
    ],
)
def test_db_and_cache_class_mistakes_name_the_nearest_classes(key, value, what, nearest):
    (message,) = problems(**{key: value})
    assert message == (
        f"deployment.{key}: '{value}' is not {what} (cfn-lint {version('cfn-lint')}'s list, any region); "
        f"did you mean {nearest}?"
    )


def test_db_and_cache_classes_may_be_graviton():
    """RDS and ElastiCache run their own images: arm64 classes are as good as x86_64 ones (and db.x2g, which
    EC2 lacks, is a real Aurora class)."""
    config = loads(
        **{
            "database.capacity": "provisioned",
            "database.instanceClass": "db.x2g.large",
            "cache.nodeType": "cache.r7g.large",
        }
    )
    assert (config.database.instance_class, config.cache.node_type) == ("db.x2g.large", "cache.r7g.large")


def test_a_class_without_its_prefix_gets_one_message():
    assert problems(**{"database.instanceClass": "t4g.medium", "cache.nodeType": "t4g.micro"}) == [
        "deployment.database.instanceClass: 't4g.medium' must be a DB instance class such as db.t4g.medium",
        "deployment.cache.nodeType: 't4g.micro' must be a cache node type such as cache.t4g.micro",
    ]


# -- what the hosts boot: the claims above hold for the synthesized templates --------------------------------

# The images the model's host descriptions name, by the public SSM parameter each launch template reads.
X86_IMAGES = {
    fleet_host.UBUNTU_2204_AMI_PARAMETER: "the amd64 Ubuntu 22.04 image",
    # Amazon Linux 2023's x86_64 build (the arm64 one is .../amazon-linux-2023/arm64/recommended/image_id).
    "/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id": (
        "the x86_64 ECS-optimized Amazon Linux 2023 image"
    ),
}


def test_every_launch_template_boots_an_x86_image():
    """If a host moves to an arm64 image, settings/model.py's Hosts for its key must change with it."""
    assert "/amd64/" in fleet_host.UBUNTU_2204_AMI_PARAMETER and "/22.04/" in fleet_host.UBUNTU_2204_AMI_PARAMETER
    seen = set()
    for path in SNAPSHOTS.glob("*.json"):
        template = json.loads(path.read_text())
        defaults = {name: p.get("Default") for name, p in template.get("Parameters", {}).items()}
        for resource in template["Resources"].values():
            if resource["Type"] == "AWS::EC2::LaunchTemplate":
                image = resource["Properties"]["LaunchTemplateData"]["ImageId"]
                seen.add(defaults[image["Ref"]])
    assert seen == set(X86_IMAGES)
    for hosts in HOST_KEYS.values():
        assert any(image in hosts for image in X86_IMAGES.values()), hosts
