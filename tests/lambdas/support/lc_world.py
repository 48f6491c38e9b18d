"""The world the end-to-end lifecycle tests run in.

- AWS is moto, set up like a deployment: hosted zone, secrets, operator topic, an Auto Scaling group whose
  instances carry the contract tags, and the synthesized state machines created in moto's Step Functions.
- The functions are the template's functions: handler and environment come from the synthesized
  template (tokens resolved to the moto resources); only what points outside moto is overridden (the fake
  Scalelite/BBB URLs, the STUN port, the imported zone and secret ARNs).
- Executions started in moto are run by the ASL interpreter on the synthesized definitions, with a fake
  clock; listeners on the clock play the hosts (Scalelite's poller, meetings ending, recordings moving
  through BBB's pipeline, the relay's Allocations metric).
- What moto lacks is filled in at the edges only: lifecycle-action calls go to a botocore Stubber that
  asserts their exact parameters; SSM Run Command outputs come from really running the sent script with
  sh against a per-instance fake filesystem (moto records the command but runs nothing).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import lc_test_stack as stack
from botocore.stub import Stubber
from common import aws, http, lifecycle
from lc_asl import Execution, FakeClock, Interpreter
from lc_fake_bbb import FakeBbbWorld
from moto.autoscaling.models import autoscaling_backends
from moto.ec2.models import ec2_backends

ACCOUNT = stack.ACCOUNT
REGION = stack.REGION
PREFIXES = {"bbb": "BbbLifecycle", "turn": "TurnLifecycle", "single": "SingleLifecycle"}
LB_SECRET = "scalelite-loadbalancer-secret-0123456789"
BBB_SECRET = "bbbsecret0123456789abcdefghijklmnopqrstu"


@dataclass
class FakeContext:
    function_name: str
    memory_limit_in_mb: int = 256
    aws_request_id: str = "req"

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def resolve(value: Any, refs: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((key, arg),) = value.items()
        if key == "Ref":
            if arg not in refs:
                raise AssertionError(f"the test world cannot resolve Ref {arg}")
            return refs[arg]
        if key == "Fn::GetAtt":
            name = f"{arg[0]}.{arg[1]}"
            if name not in refs:
                raise AssertionError(f"the test world cannot resolve GetAtt {name}")
            return refs[name]
        if key == "Fn::Join":
            return arg[0].join(str(resolve(v, refs)) for v in arg[1])
    raise AssertionError(f"unsupported intrinsic in the template: {value!r}")


@contextlib.contextmanager
def environ(values: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


class World:
    def __init__(
        self,
        template: dict[str, Any],
        role: str,
        tmp_path: Path,
        monkeypatch: Any,
        *,
        env_overrides: dict[str, str] | None = None,
    ) -> None:
        self.role = role
        self.template = template
        self.tmp = tmp_path
        self.clock = FakeClock()
        self.events: list[tuple[datetime, str, dict[str, Any]]] = []
        self.executions: dict[str, Execution] = {}
        self.group = stack.GROUP_NAMES[role]
        self.fake = FakeBbbWorld(LB_SECRET, log=self.log).start() if role in ("bbb", "single") else None
        self._setup_aws()
        self._setup_functions(env_overrides or {})
        self._setup_lifecycle_stub(monkeypatch)
        monkeypatch.setattr(http, "_sleep", lambda seconds: self.log("backoff", {"seconds": seconds}))
        self._setup_ssm_agent()
        self._setup_route53_log()

    # --- logging -------------------------------------------------------------------------------------
    def log(self, kind: str, detail: dict[str, Any]) -> None:
        self.events.append((self.clock.now, kind, detail))

    def kinds(self) -> list[str]:
        return [kind for _t, kind, _d in self.events]

    def first(self, kind: str, /, *, after: int = -1, **match: Any) -> int:
        """Position of the first such event in the log after position `after` (for ordering assertions)."""
        for index, (_moment, found, detail) in enumerate(self.events):
            if index > after and found == kind and all(detail.get(k) == v for k, v in match.items()):
                return index
        raise AssertionError(f"no {kind} {match} in {self.kinds()}")

    def when(self, kind: str, /, **match: Any) -> datetime:
        """Fake time of the first such event."""
        return self.events[self.first(kind, **match)][0]

    def close(self) -> None:
        if self.fake is not None:
            self.fake.stop()

    # --- AWS -----------------------------------------------------------------------------------------
    def _setup_aws(self) -> None:
        r53 = boto3.client("route53")
        self.zone_id = r53.create_hosted_zone(Name=stack.DOMAIN, CallerReference="lc")["HostedZone"]["Id"].split("/")[
            -1
        ]
        sm = boto3.client("secretsmanager")
        self.secret_arns = {
            "bbb": sm.create_secret(Name="lctest-bbb", SecretString=BBB_SECRET)["ARN"],
            "scalelite": sm.create_secret(Name="lctest-scalelite", SecretString=LB_SECRET)["ARN"],
        }
        self.topic_arn = boto3.client("sns").create_topic(Name="lctest-operator")["TopicArn"]
        assert self.topic_arn == stack.TOPIC_ARN
        ec2 = boto3.client("ec2")
        image = "ami-03cf127a"  # one of moto's built-in images (describing them all costs seconds)
        ec2.create_launch_template(
            LaunchTemplateName=f"{self.group}-lt", LaunchTemplateData={"ImageId": image, "InstanceType": "c5.large"}
        )
        subnet = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
        boto3.client("autoscaling").create_auto_scaling_group(
            AutoScalingGroupName=self.group,
            MinSize=0,
            MaxSize=10,
            DesiredCapacity=0,
            LaunchTemplate={"LaunchTemplateName": f"{self.group}-lt"},
            VPCZoneIdentifier=subnet,
            Tags=[
                {"Key": "bbb-on-aws:environment", "Value": stack.ENVIRONMENT, "PropagateAtLaunch": True},
                {"Key": "bbb-on-aws:role", "Value": self.role, "PropagateAtLaunch": True},
            ],
        )

    def launch_instances(self, count: int, *, state: str = "Pending:Wait") -> list[str]:
        """Add `count` instances to the group (moto puts them InService; we set the lifecycle state)."""
        client = boto3.client("autoscaling")
        before = {i.instance.id for i in self._group().instance_states}
        in_service = len(self._group().active_instances())  # what moto counts against the desired capacity
        client.set_desired_capacity(AutoScalingGroupName=self.group, DesiredCapacity=in_service + count)
        new = [s for s in self._group().instance_states if s.instance.id not in before]
        for member in new:
            member.lifecycle_state = state
        ids = [m.instance.id for m in new]
        if self.fake is not None:
            for iid in ids:
                self.fake.add_host(self.host(iid), BBB_SECRET)
        return ids

    def _group(self) -> Any:
        return autoscaling_backends[ACCOUNT][REGION].autoscaling_groups[self.group]

    def set_lifecycle_state(self, instance_id: str, state: str) -> None:
        for member in self._group().instance_states:
            if member.instance.id == instance_id:
                member.lifecycle_state = state
                return
        raise AssertionError(f"{instance_id} is not in {self.group}")

    def set_public_ip(self, instance_id: str, ip: str) -> None:
        ec2_backends[ACCOUNT][REGION].get_instance(instance_id).nics[0].public_ip = ip

    def public_ip(self, instance_id: str) -> str:
        return ec2_backends[ACCOUNT][REGION].get_instance(instance_id).nics[0].public_ip

    def tag_ready(self, instance_id: str) -> None:
        boto3.client("ec2").create_tags(
            Resources=[instance_id], Tags=[{"Key": "bbb-on-aws:ready", "Value": str(int(self.clock.now.timestamp()))}]
        )
        self.log("host-ready", {"instance": instance_id})

    def host(self, instance_id: str) -> str:
        if self.role == "single":
            return stack.DOMAIN
        prefix = "turn" if self.role == "turn" else "bbb"
        return f"{prefix}-{instance_id[2:]}.{stack.DOMAIN}"

    def records(self) -> list[dict[str, Any]]:
        return [
            r
            for r in boto3.client("route53").list_resource_record_sets(HostedZoneId=self.zone_id)["ResourceRecordSets"]
            if r["Type"] == "A"
        ]

    def record_names(self) -> set[tuple[str, str | None]]:
        return {(r["Name"].rstrip("."), r.get("SetIdentifier")) for r in self.records()}

    # --- functions from the template -----------------------------------------------------------------
    def _setup_functions(self, env_overrides: dict[str, str]) -> None:
        resources = self.template["Resources"]
        prefix = PREFIXES[self.role]
        refs: dict[str, str] = {
            "AWS::Region": REGION,
            "AWS::Partition": "aws",
            "AWS::AccountId": ACCOUNT,
            "AWS::URLSuffix": "amazonaws.com",
        }
        for lid, res in resources.items():
            if res["Type"] == "AWS::AutoScaling::AutoScalingGroup":
                refs[lid] = res["Properties"]["AutoScalingGroupName"]
            if res["Type"] == "AWS::Lambda::Function":
                refs[f"{lid}.Arn"] = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{lid}"
            if res["Type"] == "AWS::StepFunctions::StateMachine":
                refs[lid] = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{lid}"
            if res["Type"] == "AWS::CloudWatch::Alarm":
                refs[lid] = lid  # the alarm's name (the roll-out stops on the fleet's LaunchAbandoned alarm)
        sfn = boto3.client("stepfunctions")
        self.state_machines: dict[str, dict[str, Any]] = {}
        for lid, res in resources.items():
            if res["Type"] == "AWS::StepFunctions::StateMachine" and lid.startswith(prefix):
                definition = json.loads(resolve(res["Properties"]["DefinitionString"], refs))
                sfn.create_state_machine(
                    name=lid, definition=json.dumps(definition), roleArn=f"arn:aws:iam::{ACCOUNT}:role/sfn"
                )
                kind = "launch" if "Launch" in lid else "drain"
                self.state_machines[kind] = {"arn": refs[lid], "definition": definition}
        overrides = {
            "HOSTED_ZONE_ID": self.zone_id,
            "AWS_REGION": REGION,
            "BBB_SECRET_ARN": self.secret_arns["bbb"],
            "SCALELITE_SECRET_ARN": self.secret_arns["scalelite"],
        }
        if self.fake is not None:
            overrides.update(SCALELITE_API_URL=self.fake.scalelite_url, BBB_API_URL_TEMPLATE=self.fake.bbb_url_template)
        overrides.update(env_overrides)
        self.functions: dict[str, dict[str, Any]] = {}
        for lid, res in resources.items():
            own = lid.startswith(prefix) or lid.startswith(f"{self.role.capitalize()}Rollout")
            if res["Type"] != "AWS::Lambda::Function" or not own:
                continue
            props = res["Properties"]
            env = {k: str(resolve(v, refs)) for k, v in props.get("Environment", {}).get("Variables", {}).items()}
            for key, value in overrides.items():
                if key in env or key in ("AWS_REGION", "BBB_API_URL_TEMPLATE", "PROBE_TIMEOUT_SECONDS"):
                    env[key] = value
            self.functions[lid] = {"handler": props["Handler"], "env": env}

    def function_id(self, handler_prefix: str) -> str:
        found = [lid for lid, f in self.functions.items() if f["handler"].startswith(handler_prefix)]
        assert len(found) == 1, f"{handler_prefix}: {found}"
        return found[0]

    def invoke(self, logical_id: str, payload: Any) -> Any:
        function = self.functions[logical_id]
        module_name, attr = function["handler"].rsplit(".", 1)
        with environ(function["env"]):
            module = importlib.import_module(module_name)
            return getattr(module, attr)(payload, FakeContext(logical_id))

    def invoke_handler(self, handler_prefix: str, payload: Any) -> Any:
        return self.invoke(self.function_id(handler_prefix), payload)

    def _invoke_resource(self, resource: str, payload: Any) -> Any:
        logical_id = resource.rsplit(":", 1)[-1]
        step = payload.get("step") if isinstance(payload, dict) else None
        result = self.invoke(logical_id, payload)
        summary = {k: result.get(k) for k in ("status", "reason")} if isinstance(result, dict) else {}
        self.log("task", {"function": logical_id, "step": step, **summary})
        return result

    # --- events and executions -----------------------------------------------------------------------
    def lifecycle_event(self, instance_id: str, kind: str, token: str | None = None) -> dict[str, Any]:
        launch = kind == "launch"
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "source": "aws.autoscaling",
            "account": ACCOUNT,
            "region": REGION,
            "time": self.clock.iso(),
            "resources": [],
            "detail-type": f"EC2 Instance-{'launch' if launch else 'terminate'} Lifecycle Action",
            "detail": {
                "LifecycleActionToken": token or str(uuid.uuid4()),
                "AutoScalingGroupName": self.group,
                "LifecycleHookName": "bbb-on-aws-launch" if launch else "bbb-on-aws-terminate",
                "EC2InstanceId": instance_id,
                "LifecycleTransition": f"autoscaling:EC2_INSTANCE_{'LAUNCHING' if launch else 'TERMINATING'}",
                "Origin": "EC2" if launch else "AutoScalingGroup",
                "Destination": "AutoScalingGroup" if launch else "EC2",
            },
        }

    def deliver(self, event: dict[str, Any]) -> dict[str, Any]:
        result = self.invoke_handler("lifecycle_dispatch.", event)
        self.log("dispatch", {"instance": event["detail"]["EC2InstanceId"], "outcome": result["outcome"]})
        return result

    def run_executions(self) -> dict[str, Execution]:
        """Run every execution moto holds that the interpreter has not run yet; return those run now."""
        sfn = boto3.client("stepfunctions")
        ran: dict[str, Execution] = {}
        for kind, machine in self.state_machines.items():
            listed = sfn.list_executions(stateMachineArn=machine["arn"])["executions"]
            for item in sorted(listed, key=lambda e: e["name"]):  # deterministic: tests queue stub answers
                if item["name"] in self.executions:
                    continue
                described = sfn.describe_execution(executionArn=item["executionArn"])
                interpreter = Interpreter(machine["definition"], self._invoke_resource, self.clock)
                self.log("execution-start", {"name": item["name"], "kind": kind})
                execution = interpreter.run(json.loads(described["input"]), item["name"])
                self.log("execution-end", {"name": item["name"], "status": execution.status})
                self.executions[item["name"]] = ran[item["name"]] = execution
        return ran

    def execution_count(self) -> int:
        sfn = boto3.client("stepfunctions")
        return sum(
            len(sfn.list_executions(stateMachineArn=m["arn"])["executions"]) for m in self.state_machines.values()
        )

    def at(self, seconds_from_now: float, action: Callable[[], None]) -> None:
        """Run `action` once the fake clock passes now + seconds (checked at every clock tick)."""
        due = self.clock.now.timestamp() + seconds_from_now
        done = False

        def listener(_before: datetime, after: datetime) -> None:
            nonlocal done
            if not done and after.timestamp() >= due:
                done = True
                action()

        self.clock.listeners.append(listener)

    def every_tick(self, action: Callable[[datetime], None]) -> None:
        self.clock.listeners.append(lambda _before, after: action(after))

    # --- lifecycle actions (not in moto): Stubber with exact parameters -------------------------------
    def _setup_lifecycle_stub(self, monkeypatch: Any) -> None:
        self.lifecycle_client = boto3.client("autoscaling", region_name=REGION)
        self.stubber = Stubber(self.lifecycle_client)
        self.stubber.activate()
        self.lifecycle_client.meta.events.register("before-parameter-build.auto-scaling", self._log_lifecycle_call)
        monkeypatch.setattr(lifecycle, "_client", lambda: self.lifecycle_client)

    def _log_lifecycle_call(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.log(model.name, {"instance": params.get("InstanceId"), "result": params.get("LifecycleActionResult")})

    @staticmethod
    def _params(instance_id: str, hook: str, group: str, token: str | None) -> dict[str, str]:
        params = {"AutoScalingGroupName": group, "LifecycleHookName": hook, "InstanceId": instance_id}
        if token:
            params["LifecycleActionToken"] = token
        return params

    def expect_heartbeats(self, instance_id: str, hook: str, count: int, token: str | None = None) -> None:
        for _ in range(count):
            self.stubber.add_response(
                "record_lifecycle_action_heartbeat", {}, self._params(instance_id, hook, self.group, token)
            )

    def expect_complete(
        self, instance_id: str, hook: str, result: str, token: str | None = None, *, active: bool = True
    ) -> None:
        params = {**self._params(instance_id, hook, self.group, token), "LifecycleActionResult": result}
        if active:
            self.stubber.add_response("complete_lifecycle_action", {}, params)
        else:
            self.stubber.add_client_error(
                "complete_lifecycle_action",
                service_error_code="ValidationError",
                service_message=f"No active Lifecycle Action found with instance ID {instance_id}",
                expected_params=params,
            )

    # --- SSM Run Command: run the sent script for real, per instance ----------------------------------
    def _setup_ssm_agent(self) -> None:
        self.fakebin = self.tmp / "fakebin"
        self.fakebin.mkdir(parents=True, exist_ok=True)
        systemctl = self.fakebin / "systemctl"
        systemctl.write_text('#!/bin/sh\necho "$@" >> "$BBB_ON_AWS_ROOT/systemctl.log"\n')
        systemctl.chmod(0o755)
        self._ssm_outputs: dict[tuple[str, str], tuple[str, str, int]] = {}
        aws.client("ssm").meta.events.register("after-call.ssm.GetCommandInvocation", self._fill_invocation)
        self._ssm_reader = boto3.client("ssm", region_name=REGION)

    def instance_root(self, instance_id: str) -> Path:
        root = self.tmp / "hosts" / instance_id
        root.mkdir(parents=True, exist_ok=True)
        return root

    def _fill_invocation(self, http_response: Any, parsed: dict[str, Any], **_: Any) -> None:
        key = (parsed["CommandId"], parsed["InstanceId"])
        if key not in self._ssm_outputs:
            command = self._ssm_reader.list_commands(CommandId=key[0])["Commands"][0]
            assert command["DocumentName"] == "AWS-RunShellScript"
            script = command["Parameters"]["commands"][0]
            root = self.instance_root(key[1])
            done = subprocess.run(
                ["sh", "-c", script],
                capture_output=True,
                text=True,
                timeout=30,
                env={"BBB_ON_AWS_ROOT": str(root), "PATH": f"{self.fakebin}:/usr/bin:/bin"},
            )
            self._ssm_outputs[key] = (done.stdout, done.stderr, done.returncode)
            self.log("ssm-command", {"instance": key[1], "script": script.splitlines()[0][:60], "rc": done.returncode})
        stdout, stderr, code = self._ssm_outputs[key]
        parsed.update(
            StandardOutputContent=stdout,
            StandardErrorContent=stderr,
            ResponseCode=code,
            Status="Success" if code == 0 else "Failed",
        )

    def systemctl_calls(self, instance_id: str) -> list[str]:
        log = self.instance_root(instance_id) / "systemctl.log"
        return log.read_text().splitlines() if log.exists() else []

    def recording(self, instance_id: str, meeting: str, stage: str) -> None:
        """Move a recording through BBB's pipeline on the fake host (status files as BBB writes them)."""
        status = self.instance_root(instance_id) / "var/bigbluebutton/recording/status"
        files = {
            "ended": [f"ended/{meeting}.done"],
            "archived": [f"archived/{meeting}.done"],
            "published": [
                f"sanity/{meeting}.done",
                f"processed/{meeting}-presentation.done",
                f"published/{meeting}-presentation.done",
            ],
            "transferred": [f"published/{meeting}-sender.done"],
            "failed": [f"processed/{meeting}-presentation.fail"],
        }[stage]
        if stage == "archived":
            (status / f"ended/{meeting}.done").unlink(missing_ok=True)
        for name in files:
            path = status / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("")
        self.log("recording", {"instance": instance_id, "meeting": meeting, "stage": stage})

    # --- Route 53 changes, for ordering assertions -------------------------------------------------
    def _setup_route53_log(self) -> None:
        def log_change(params: dict[str, Any], **_: Any) -> None:
            for change in params["ChangeBatch"]["Changes"]:
                rrset = change["ResourceRecordSet"]
                self.log(
                    "route53",
                    {"action": change["Action"], "name": rrset["Name"].rstrip("."), "set": rrset.get("SetIdentifier")},
                )

        aws.client("route53").meta.events.register(
            "before-parameter-build.route-53.ChangeResourceRecordSets", log_change
        )
