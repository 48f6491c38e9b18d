"""Builds the CDK App for one deployment: reads the config first, then composes the stacks.

`app.py` and the tests both call `build_app`, so `python app.py` and `cdk synth` produce the same
templates: cdk.json's context is loaded here explicitly (the CLI passes it in `CDK_CONTEXT_JSON` too,
and its values, including `-c` overrides, win).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

import contract
from cdk_json import read_cdk_json
from settings import Config, load_config
from stacks.data import DataStack
from stacks.email import EmailStack
from stacks.fleets import FleetsStack
from stacks.frontend import FrontendStack
from stacks.monitoring import MonitoringStack
from stacks.network import NetworkStack
from stacks.shared import SharedStack, ses_region

ROOT = Path(__file__).resolve().parent.parent


def cdk_json_context() -> dict[str, Any]:
    """cdk.json's context; a malformed file raises CdkJsonError with its line and column."""
    return read_cdk_json(ROOT / "cdk.json")["context"]


# What the CLI sets by default; set here too so that `python app.py` writes the very same templates.
CLI_DEFAULTS = {
    "aws:cdk:enable-path-metadata": True,
    "aws:cdk:enable-asset-metadata": True,
    "aws:cdk:version-reporting": False,  # cdk.json: "versionReporting": false
}


def effective_context(overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    context = dict(CLI_DEFAULTS)
    context.update(cdk_json_context())
    context.update(json.loads(os.environ.get("CDK_CONTEXT_JSON", "{}")))
    context.update(overrides or {})
    return context


def build_app(
    *, context: Mapping[str, Any] | None = None, outdir: str | None = None, nag: bool = True
) -> tuple[cdk.App, Config]:
    """Validate the configuration (raising ConfigError before any construct exists), then build the app."""
    merged = effective_context(context)
    config = load_config(merged)
    # Run alone, `python app.py` writes where the CLI would (the CLI sets CDK_OUTDIR itself).
    app = cdk.App(context=merged, outdir=outdir or os.environ.get("CDK_OUTDIR") or str(ROOT / "cdk.out"))
    if nag:
        cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    compose(app, config)
    return app, config


def compose(app: cdk.App, config: Config) -> None:
    """The deployment's stacks and how they depend on each other (explicit keyword arguments only)."""
    env = cdk.Environment(region=config.environment.region)
    name = config.prefix
    tags = {contract.TAG_ENVIRONMENT: config.environment.name}

    def stack_props(part: str, description: str) -> dict[str, Any]:
        return {"stack_name": f"{name}-{part}", "env": env, "description": f"BigBlueButton on AWS ({name}): "
                + description, "tags": tags, "termination_protection": config.is_production_like}

    network = NetworkStack(app, f"{name}-network", config=config, **stack_props("network", "VPC, NAT, flow logs"))
    shared = SharedStack(
        app, f"{name}-shared", config=config,
        **stack_props("shared", "certificate, operator topic, platform secrets, SES SMTP credentials"),
    ).shared
    # In the SES region (its own env), so that nothing crosses regions: it needs only config values.
    EmailStack(app, f"{name}-email", config=config, **{
        **stack_props("email", "SES domain identity, DKIM, MAIL FROM, DMARC"),
        "env": cdk.Environment(region=ses_region(config)),
    })
    data_stack = (
        DataStack(
            app, f"{name}-data", config=config, vpc=network.vpc,
            application_subnets=network.application_subnets, database_subnets=network.database_subnets,
            **stack_props("data", "recordings EFS, Aurora PostgreSQL, Valkey/Redis cache"),
        )
        if config.environment.type == "scalable"
        else None
    )
    data = None if data_stack is None else data_stack.data
    frontend = None
    if data is not None:
        frontend = FrontendStack(
            app, f"{name}-frontend", config=config, vpc=network.vpc, shared=shared, data=data,
            public_subnets=network.public_subnets, application_subnets=network.application_subnets,
            **stack_props("frontend", "ECS running Greenlight v3 and Scalelite behind an HTTPS load balancer"),
        )
    fleets = FleetsStack(
        app, f"{name}-fleets", config=config, vpc=network.vpc, shared=shared, data=data,
        **stack_props("fleets", "TURN relays behind DNS and an NLB, BigBlueButton servers, lifecycle automation"),
    )
    MonitoringStack(
        app, f"{name}-monitoring", config=config, shared=shared, fleets=fleets, frontend=frontend, data=data_stack,
        ses_region=ses_region(config), **stack_props("monitoring", "operations dashboard, alarms to the operator"),
    )
