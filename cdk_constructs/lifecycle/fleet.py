"""FleetLifecycle: scale a BBB or TURN fleet in and out without anybody in a meeting noticing.

What it adds to one Auto Scaling group (role `bbb`, `turn` or `single`):

- Lifecycle hooks: launching (DefaultResult ABANDON: a host that never got ready must not serve) and
  terminating (DefaultResult CONTINUE: termination cannot be refused anyway), HeartbeatTimeout 30 min by
  default; the state machines heartbeat every third of it, so a 4 h drain stays inside the hook's global
  timeout (min(100 x heartbeat, 48 h), fixed by AWS).
- One EventBridge rule matching exactly this group's two hooks -> a dispatcher Lambda that starts the
  launch or drain state machine with an execution name derived from the instance id. Duplicated events
  therefore start nothing (Step Functions refuses the name again), and late launch events for a
  terminating instance are dropped. A direct rule->Step Functions target cannot name executions.
- Step Functions Standard state machines (launch, drain): the hours-long waits live in Wait states,
  not in a Lambda; every Task is a step of a Powertools Lambda (see state_machines.py for the diagrams).
- A reconciler every 15 min (Reconciler) and, for TURN, the one-minute STUN prober (TurnProber).
- A deploy-time custom resource (Provider framework) that starts the launch state machine for instances
  that booted before the hooks existed (the first deploy creates the group before its hooks).
- Alarms to the operator topic: every function's Errors, every state machine's failed/timed-out/aborted
  executions, the rule's failed invocations, abandoned launches, drains that hit their maximum and
  repeated Scalelite errors (their texts: fleet_alarms.py; the cdk-nag acknowledgments: fleet_nag.py).

It reads no app configuration: everything comes in as keyword arguments.
"""

from __future__ import annotations

from aws_cdk import CustomResource, Duration, RemovalPolicy, Token
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_route53 as route53
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

import contract
from cdk_constructs.custom_resource_provider import framework_provider
from cdk_constructs.lifecycle import fleet_alarms, names, permissions, state_machines
from cdk_constructs.lifecycle.data_volume import data_volume_function
from cdk_constructs.lifecycle.fleet_nag import acknowledge_fleet
from cdk_constructs.lifecycle.functions import FunctionKit
from cdk_constructs.lifecycle.prober import TurnProber
from cdk_constructs.lifecycle.reconciler import Reconciler
from cdk_constructs.lifecycle.timings import LifecycleTimings, ResolvedTimings


class FleetLifecycle(Construct):
    """Lifecycle automation of one fleet. See the module docstring for what it creates and why."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        auto_scaling_group: autoscaling.IAutoScalingGroup,
        role: str,
        hosted_zone: route53.IHostedZone,
        domain_name: str,
        environment_name: str,
        operator_topic: sns.ITopic,
        bbb_secret: secretsmanager.ISecret | None = None,
        scalelite_secret: secretsmanager.ISecret | None = None,
        scalelite_api_url: str | None = None,
        timings: LifecycleTimings | None = None,
        turn_port: int = contract.TURN_PORT,
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH,
        data_volume_gib: int | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        _validate(role, domain_name, environment_name, bbb_secret, scalelite_secret, scalelite_api_url, turn_port)
        domain = domain_name if Token.is_unresolved(domain_name) else names.normalize_domain(domain_name)
        self.role = role
        self.environment_name = environment_name
        self.timings: ResolvedTimings = (timings or LifecycleTimings()).resolve(role)
        self.group_name = auto_scaling_group.auto_scaling_group_name
        namespace = names.metric_namespace(environment_name)
        t = self.timings

        # --- hooks ---------------------------------------------------------------------------------
        self.launch_hook = auto_scaling_group.add_lifecycle_hook(
            "LaunchHook",
            lifecycle_hook_name=names.LAUNCH_HOOK,
            lifecycle_transition=autoscaling.LifecycleTransition.INSTANCE_LAUNCHING,
            heartbeat_timeout=Duration.seconds(t.heartbeat_timeout),
            default_result=autoscaling.DefaultResult.ABANDON,
        )
        self.terminate_hook = auto_scaling_group.add_lifecycle_hook(
            "TerminateHook",
            lifecycle_hook_name=names.TERMINATE_HOOK,
            lifecycle_transition=autoscaling.LifecycleTransition.INSTANCE_TERMINATING,
            heartbeat_timeout=Duration.seconds(t.heartbeat_timeout),
            default_result=autoscaling.DefaultResult.CONTINUE,
        )

        # --- functions -------------------------------------------------------------------------------
        base_env = {
            "ENVIRONMENT_NAME": environment_name,
            "FLEET_ROLE": role,
            "AUTO_SCALING_GROUP_NAME": self.group_name,
            "DOMAIN_NAME": domain,
            "HOSTED_ZONE_ID": hosted_zone.hosted_zone_id,
            "METRICS_NAMESPACE": namespace,
            "LAUNCH_HOOK_NAME": names.LAUNCH_HOOK,
            "TERMINATE_HOOK_NAME": names.TERMINATE_HOOK,
            "LAUNCH_MAX_SECONDS": str(t.launch_max),
            "DRAIN_MAX_SECONDS": str(t.drain_max),
            "HEARTBEAT_INTERVAL_SECONDS": str(t.heartbeat_interval),
            "UNREACHABLE_AFTER_CHECKS": str(t.unreachable_after),
            "TURN_PORT": str(turn_port),
        }
        if scalelite_api_url:
            base_env["SCALELITE_API_URL"] = scalelite_api_url
        if scalelite_secret is not None:
            base_env["SCALELITE_SECRET_ARN"] = scalelite_secret.secret_arn
        if bbb_secret is not None:
            base_env["BBB_SECRET_ARN"] = bbb_secret.secret_arn
        self.kit = FunctionKit(
            self,
            "Functions",
            operator_topic=operator_topic,
            base_environment=base_env,
            log_retention=log_retention,
        )
        zone_id = hosted_zone.hosted_zone_id
        record_patterns = _record_patterns(role, domain)
        launch_statements = [
            *permissions.record_changes(zone_id, record_patterns, ["UPSERT", "DELETE"]),
            permissions.lifecycle_actions(self.group_name),
            permissions.describe_fleet(group_instances=True),
        ]
        if role == "turn":
            launch_statements += [
                *permissions.health_checks(create=True),
                permissions.probe_alarms(environment_name, write=True),
            ]
        self.launch_function = self.kit.function(
            self,
            "LaunchFunction",
            handler="lifecycle_launch.index.handler",
            service="lifecycle-launch",
            description=f"{environment_name} {role} fleet: launch steps",
            timeout=Duration.minutes(2),
            statements=launch_statements,
            environment={"OPERATOR_TOPIC_ARN": operator_topic.topic_arn},
        )
        drain_statements = [
            *permissions.record_changes(zone_id, record_patterns, ["DELETE"]),
            permissions.lifecycle_actions(self.group_name),
            permissions.describe_fleet(),
            *permissions.run_command(environment_name, role),
        ]
        if role == "turn":
            drain_statements += [
                *permissions.health_checks(create=False),
                permissions.probe_alarms(environment_name, write=False),
                permissions.read_metrics(),
            ]
        self.drain_function = self.kit.function(
            self,
            "DrainFunction",
            handler="turn_drain.index.handler" if role == "turn" else "bbb_drain.index.handler",
            service="lifecycle-drain",
            description=f"{environment_name} {role} fleet: drain steps",
            timeout=Duration.minutes(5),
            statements=drain_statements,
        )
        for secret in (bbb_secret, scalelite_secret):
            if secret is not None:
                secret.grant_read(self.launch_function)
                secret.grant_read(self.drain_function)

        # --- state machines ------------------------------------------------------------------------
        self.launch_state_machine = self._state_machine(
            "LaunchStateMachine",
            state_machines.launch_definition(
                self, self.launch_function, poll=t.launch_poll, data_volume=self._data_volume(data_volume_gib)
            ),
            timeout=t.launch_max + 30 * 60,
            guide=fleet_alarms.launch_guide(role),
        )
        drain = (
            state_machines.turn_drain_definition(self, self.drain_function, poll=t.drain_poll, dns_wait=t.dns_ttl_wait)
            if role == "turn"
            else state_machines.bbb_drain_definition(self, self.drain_function, poll=t.drain_poll)
        )
        self.drain_state_machine = self._state_machine(
            "DrainStateMachine", drain, timeout=t.drain_max + 3600, guide=fleet_alarms.DRAIN_GUIDE
        )
        machines = [self.launch_state_machine, self.drain_state_machine]
        machine_arns = [machine.state_machine_arn for machine in machines]
        machines_env = {
            "LAUNCH_STATE_MACHINE_ARN": self.launch_state_machine.state_machine_arn,
            "DRAIN_STATE_MACHINE_ARN": self.drain_state_machine.state_machine_arn,
        }

        # --- events -> dispatcher ------------------------------------------------------------------
        self.dispatch_function = self.kit.function(
            self,
            "DispatchFunction",
            handler="lifecycle_dispatch.index.handler",
            service="lifecycle-dispatch",
            description=f"{environment_name} {role} fleet: route lifecycle events",
            timeout=Duration.seconds(30),
            statements=[
                *permissions.start_executions(machines),
                # EC2 too: warm-pool wake/park executions are named after the instance's LaunchTime.
                permissions.describe_fleet(group_instances=True),
            ],
            environment=machines_env,
        )
        self.rule = events.Rule(
            self,
            "LifecycleEvents",
            description=f"Lifecycle actions of the {role} fleet of {environment_name}",
            event_pattern=events.EventPattern(
                source=["aws.autoscaling"],
                detail_type=["EC2 Instance-launch Lifecycle Action", "EC2 Instance-terminate Lifecycle Action"],
                detail={
                    "AutoScalingGroupName": [self.group_name],
                    "LifecycleHookName": [names.LAUNCH_HOOK, names.TERMINATE_HOOK],
                },
            ),
            targets=[
                targets.LambdaFunction(
                    self.dispatch_function,
                    retry_attempts=8,
                    max_event_age=Duration.hours(2),
                )
            ],
        )
        fleet_alarms.rule_alarm(self, self.kit, self.rule)

        # --- reconciler, prober, bootstrap ---------------------------------------------------------
        self.reconciler = Reconciler(
            self,
            "Reconciler",
            kit=self.kit,
            role=role,
            environment_name=environment_name,
            zone_id=zone_id,
            record_patterns=record_patterns,
            state_machines=machines,
            scalelite_secret=scalelite_secret,
            every=Duration.seconds(t.reconcile_every),
            environment=machines_env,
        )
        self.prober = TurnProber(self, "Prober", kit=self.kit, namespace=namespace) if role == "turn" else None
        self.bootstrap_function = self.kit.function(
            self,
            "BootstrapFunction",
            handler="custom_resources.fleet_bootstrap.on_event",
            service="lifecycle-bootstrap",
            description=f"{environment_name} {role} fleet: deploy-time bootstrap",
            timeout=Duration.minutes(2),
            environment=machines_env,
            statements=[
                *permissions.start_executions(machines),
                permissions.describe_fleet(groups=True),  # EC2: ready tag and LaunchTime of waiting instances
            ],
        )
        provider, _role = framework_provider(
            self, self.bootstrap_function,
            ids=("BootstrapProviderLogs", "BootstrapProviderRole", "BootstrapProvider"),
            retention=log_retention, removal_policy=RemovalPolicy.DESTROY,
        )
        self.bootstrap = CustomResource(
            self,
            "Bootstrap",
            service_token=provider.service_token,
            resource_type="Custom::BbbOnAwsFleetBootstrap",
            properties={
                "Group": self.group_name,
                "LaunchStateMachine": machine_arns[0],
                "DrainStateMachine": machine_arns[1],
            },
        )
        for dependency in (self.rule, self.launch_hook, self.terminate_hook):
            self.bootstrap.node.add_dependency(dependency)

        # --- alarms on outcomes (fleet_alarms.py) and cdk-nag acknowledgments (fleet_nag.py) ----------
        fleet_alarms.outcome_alarms(self, self.kit, role=role, namespace=namespace, group_name=self.group_name)
        acknowledge_fleet(self, provider)

    def _data_volume(self, size_gib: int | None) -> lambda_.Function | None:
        """The single host's data volume step (data_volume.py); other roles keep their data elsewhere."""
        if size_gib is not None and self.role != "single":
            raise ValueError(f"data_volume_gib is for role 'single' only (its data volume), not {self.role!r}")
        if size_gib is None:
            return None
        self.data_volume_function = data_volume_function(
            self, kit=self.kit, group_name=self.group_name, environment=self.environment_name, size_gib=size_gib
        )
        return self.data_volume_function

    def _state_machine(
        self, construct_id: str, definition: sfn.IChainable, *, timeout: int, guide: str
    ) -> sfn.StateMachine:
        log_group = logs.LogGroup(
            self, f"{construct_id}Logs", retention=self.kit.log_retention, removal_policy=RemovalPolicy.DESTROY
        )
        machine = sfn.StateMachine(
            self,
            construct_id,
            definition_body=sfn.DefinitionBody.from_chainable(definition),
            state_machine_type=sfn.StateMachineType.STANDARD,
            timeout=Duration.seconds(timeout),
            tracing_enabled=True,
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=True),
        )
        fleet_alarms.execution_alarms(self, self.kit, construct_id, machine, guide=guide)
        return machine


def _record_patterns(role: str, domain: str) -> list[str]:
    if role == "bbb":
        return [f"bbb-*.{domain}"]
    if role == "single":
        return [domain]
    return [f"turn-*.{domain}", names.turn_pool_name(domain) if not Token.is_unresolved(domain) else f"turn.{domain}"]


def _validate(
    role: str,
    domain: str,
    environment: str,
    bbb_secret: object,
    scalelite_secret: object,
    scalelite_api_url: str | None,
    turn_port: int,
) -> None:
    if role not in names.ROLES:
        raise ValueError(f"FleetLifecycle role must be one of {', '.join(names.ROLES)}, got {role!r}")
    if not environment or Token.is_unresolved(environment) or not environment.replace("-", "").isalnum():
        raise ValueError(f"environment_name {environment!r} must be a literal of letters, digits and dashes")
    if not Token.is_unresolved(domain):
        names.normalize_domain(domain)
    if role in ("bbb", "single") and bbb_secret is None:
        raise ValueError(f"role {role!r} needs bbb_secret (the fleet's BBB API secret) to check its hosts")
    if role == "bbb":
        if scalelite_secret is None or not scalelite_api_url:
            raise ValueError(
                "role 'bbb' needs scalelite_secret and scalelite_api_url (https://scalelite.<domain>/scalelite/api)"
            )
        if not Token.is_unresolved(scalelite_api_url) and not scalelite_api_url.startswith("https://"):
            raise ValueError(f"scalelite_api_url {scalelite_api_url!r} must start with https://")
    elif scalelite_secret is not None or scalelite_api_url:
        raise ValueError(
            f"role {role!r} does not use Scalelite: pass scalelite_secret/scalelite_api_url only for 'bbb'"
        )
    if not 1 <= turn_port <= 65535:
        raise ValueError(f"turn_port {turn_port} is not a port number")
