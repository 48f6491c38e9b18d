"""The deployment's settings: the one typed, validated model read from cdk.json's context.

- model.py: the sections and their operator docs (the README's parameter table is generated from them),
  `Config` and the `Deployment` value every construct receives besides its own section.
- loading.py: cdk.json context (and `-c` overrides) -> Config, every single-value problem at once.
- rules.py: rules across keys (the relay port range among them), each naming the cdk.json keys.
- instance_types.py (+ instance_types.json, generated from the pinned botocore): which EC2 types exist and
  their architecture; loading refuses an unknown type or class, or one the hosts' image cannot boot.
- stage_rules.py: the stage as CDK values (log retention, removal policies); the only CDK import here.

Stacks and constructs import this package; it imports only `contract` (and CDK in stage_rules.py).
"""

from settings.loading import camel, load_config, parameters
from settings.model import (
    CONTEXT_KEY,
    Backup,
    Bbb,
    Cache,
    ClusterProxy,
    Config,
    ConfigError,
    Container,
    Database,
    Deployment,
    Domain,
    Environment,
    Frontend,
    Monitoring,
    Names,
    Network,
    PortRange,
    Rollout,
    Turn,
    WarmPool,
)
from settings.rules import fargate_pair_ok

__all__ = [
    "CONTEXT_KEY",
    "Backup",
    "Bbb",
    "Cache",
    "ClusterProxy",
    "Config",
    "ConfigError",
    "Container",
    "Database",
    "Deployment",
    "Domain",
    "Environment",
    "Frontend",
    "Monitoring",
    "Names",
    "Network",
    "PortRange",
    "Rollout",
    "Turn",
    "WarmPool",
    "camel",
    "fargate_pair_ok",
    "load_config",
    "parameters",
]
