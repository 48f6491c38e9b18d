"""The frontend stack's template as the real app composes it: HTTPS only, host routing, exactly one importer,
secrets only as ECS secrets, health checks, EFS mounts, security groups, outputs and the admin resource.

One synthesis per capacity (and prod for the stage rules), shared with the quality gates.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cdk_constructs.frontend.greenlight import ADMIN_PASSWORD_EXCLUDE
from cdk_constructs.frontend.tasks import RECORDING_DIRS
from tests.conftest import ROOT
from tests.infra.frontend_fixtures import frontend_synth

CAPACITIES = ("ec2", "fargate")
SECRET_NAME = re.compile(r"(SECRET|PASSWORD|KEY_BASE|TOKEN)", re.IGNORECASE)


def resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: r for k, r in template["Resources"].items() if r["Type"] == kind}


def containers(template: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    """container name -> (task definition logical id, definition); admin's greenlight is 'admin'."""
    found: dict[str, tuple[str, dict[str, Any]]] = {}
    for logical, task in resources(template, "AWS::ECS::TaskDefinition").items():
        for definition in task["Properties"]["ContainerDefinitions"]:
            name = "admin" if logical.startswith("GreenlightAdminTask") else definition["Name"]
            assert name not in found, f"container {name} appears twice"
            found[name] = (logical, definition)
    return found


def environment(definition: dict[str, Any]) -> dict[str, Any]:
    return {e["Name"]: e["Value"] for e in definition.get("Environment", [])}


def secret_names(definition: dict[str, Any]) -> set[str]:
    return {s["Name"] for s in definition.get("Secrets", [])}


def service_of(template: dict[str, Any], container: str) -> tuple[str, dict[str, Any]]:
    task_logical, _ = containers(template)[container]
    (found,) = [(k, s) for k, s in resources(template, "AWS::ECS::Service").items()
                if s["Properties"]["TaskDefinition"] == {"Ref": task_logical}]
    return found


@pytest.fixture(scope="module", params=CAPACITIES)
def synthesized(request):
    return frontend_synth(request.param)


@pytest.fixture(scope="module")
def ec2_template():
    return frontend_synth("ec2").template


# -- quality gates -------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_cdk_nag_is_clean_on_the_frontend(synthesized):
    assert synthesized.findings() == []
    for rule, path, reason in synthesized.acknowledged():
        assert len(reason) >= 20, f"{rule} at {path}: acknowledgment without a real reason"


def test_cfn_lint_finds_no_error(synthesized):
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    assert cfn_lint.exists(), f"{cfn_lint} missing: cfn-lint is pinned in requirements-dev.txt"
    run = subprocess.run(
        [str(cfn_lint), "--config-file", str(ROOT / ".cfnlintrc.yaml"), "--regions", "eu-west-1",
         "--format", "parseable", "--", str(synthesized.template_path)],
        capture_output=True, text=True, cwd=ROOT, check=False,
    )
    # Exit status is a bit mask: 2 error, 4 warning, 8 informational; 1 means cfn-lint itself failed.
    assert run.returncode & ~(4 | 8) == 0, run.stdout + run.stderr


# -- HTTPS only -----------------------------------------------------------------------------------------------


def test_load_balancer_is_internet_facing_drops_invalid_headers_and_logs(ec2_template):
    (alb,) = resources(ec2_template, "AWS::ElasticLoadBalancingV2::LoadBalancer").values()
    props = alb["Properties"]
    assert props["Scheme"] == "internet-facing"
    attributes = {a["Key"]: a["Value"] for a in props["LoadBalancerAttributes"]}
    assert attributes["routing.http.drop_invalid_header_fields.enabled"] == "true"
    assert attributes["access_logs.s3.enabled"] == "true"


def test_only_https_serves_and_http_only_redirects(synthesized):
    listeners = [r["Properties"] for r in resources(synthesized.template, "AWS::ElasticLoadBalancingV2::Listener")
                 .values()]
    by_port = {listener["Port"]: listener for listener in listeners}
    assert set(by_port) == {80, 443}
    https = by_port[443]
    assert https["Protocol"] == "HTTPS"
    assert https["SslPolicy"].startswith("ELBSecurityPolicy-TLS13-1-2")
    assert len(https["Certificates"]) == 1
    assert https["DefaultActions"] == [{"Type": "fixed-response", "FixedResponseConfig": {
        "StatusCode": "404", "ContentType": "text/plain", "MessageBody": "Not found"}}]
    http = by_port[80]
    assert http["Protocol"] == "HTTP"
    assert http["DefaultActions"] == [{"Type": "redirect", "RedirectConfig": {
        "Protocol": "HTTPS", "Port": "443", "StatusCode": "HTTP_301"}}]
    rules = resources(synthesized.template, "AWS::ElasticLoadBalancingV2::ListenerRule").values()
    https_ref = next(k for k, r in resources(synthesized.template, "AWS::ElasticLoadBalancingV2::Listener").items()
                     if r["Properties"]["Port"] == 443)
    assert all(rule["Properties"]["ListenerArn"] == {"Ref": https_ref} for rule in rules), "no rule on port 80"


def test_host_rules_route_greenlight_and_scalelite(synthesized):
    template, names = synthesized.template, synthesized.config.names
    groups = resources(template, "AWS::ElasticLoadBalancingV2::TargetGroup")
    routes = {}
    for rule in resources(template, "AWS::ElasticLoadBalancingV2::ListenerRule").values():
        (condition,) = rule["Properties"]["Conditions"]
        (action,) = rule["Properties"]["Actions"]
        (host,) = condition["HostHeaderConfig"]["Values"]
        routes[host] = groups[action["TargetGroupArn"]["Ref"]]["Properties"]["Port"]
    assert routes == {names.greenlight: 3000, names.scalelite: 80}


def test_dns_alias_records_for_both_names(ec2_template):
    records = {r["Properties"]["Name"]: r["Properties"]
               for r in resources(ec2_template, "AWS::Route53::RecordSet").values()}
    assert set(records) == {"bbb.example.com.", "scalelite.bbb.example.com."}
    assert all(r["Type"] == "A" and "AliasTarget" in r for r in records.values())


def test_access_log_bucket_is_encrypted_tls_only_and_expires_per_stage():
    for stage, days, policy in (("dev", 7, "Delete"), ("prod", 365, "Retain")):
        template = frontend_synth("ec2", stage).template
        (bucket,) = resources(template, "AWS::S3::Bucket").values()
        rule = bucket["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
        assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
        assert bucket["Properties"]["LifecycleConfiguration"]["Rules"][0]["ExpirationInDays"] == days
        assert bucket["DeletionPolicy"] == policy
        (policy_doc,) = resources(template, "AWS::S3::BucketPolicy").values()
        assert any(s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
                   for s in policy_doc["Properties"]["PolicyDocument"]["Statement"])


# -- services -------------------------------------------------------------------------------------------------


def test_exactly_one_importer_never_two_and_never_scaled(synthesized):
    template = synthesized.template
    importers = [name for name, (_, d) in containers(template).items() if "recording-importer" in d["Image"]]
    assert importers == ["importer"]
    logical, service = service_of(template, "importer")
    props = service["Properties"]
    assert props["DesiredCount"] == 1
    assert props["DeploymentConfiguration"]["MaximumPercent"] == 100
    assert props["DeploymentConfiguration"]["MinimumHealthyPercent"] == 0
    targets = resources(template, "AWS::ApplicationAutoScaling::ScalableTarget").values()
    assert not any(logical in json.dumps(t["Properties"]["ResourceId"]) for t in targets)


def test_web_services_autoscale_within_bounds_and_others_do_not(synthesized):
    template, fe = synthesized.template, synthesized.config.frontend
    scaled = {}
    for target in resources(template, "AWS::ApplicationAutoScaling::ScalableTarget").values():
        service = json.dumps(target["Properties"]["ResourceId"])
        scaled[service] = (target["Properties"]["MinCapacity"], target["Properties"]["MaxCapacity"])
    greenlight, _ = service_of(template, "greenlight")
    nginx, _ = service_of(template, "nginx")
    assert len(scaled) == 2
    assert next(v for k, v in scaled.items() if greenlight in k) == (fe.greenlight_tasks, fe.greenlight_tasks * 3)
    assert next(v for k, v in scaled.items() if nginx in k) == (fe.scalelite_api_tasks, fe.scalelite_api_tasks * 3)
    policies = [p["Properties"]["TargetTrackingScalingPolicyConfiguration"]["PredefinedMetricSpecification"]
                ["PredefinedMetricType"] for p in resources(template, "AWS::ApplicationAutoScaling::ScalingPolicy")
                .values()]
    assert sorted(policies) == sorted(["ECSServiceAverageCPUUtilization", "ALBRequestCountPerTarget"] * 2)


def test_every_service_rolls_back_and_sets_min_healthy_explicitly(synthesized):
    expected = {"greenlight": (100, 200), "nginx": (100, 200), "poller": (100, 200), "importer": (0, 100)}
    for container, (low, high) in expected.items():
        _, service = service_of(synthesized.template, container)
        deployment = service["Properties"]["DeploymentConfiguration"]
        assert (deployment["MinimumHealthyPercent"], deployment["MaximumPercent"]) == (low, high), container
        assert deployment["DeploymentCircuitBreaker"] == {"Enable": True, "Rollback": True}
        assert service["Properties"]["EnableExecuteCommand"] is False


def test_poller_and_importer_start_after_the_api_migrated(ec2_template):
    web, _ = service_of(ec2_template, "nginx")
    for container in ("poller", "importer"):
        _, service = service_of(ec2_template, container)
        assert web in service.get("DependsOn", []), container


def test_health_checks_use_traffic_port_and_health_paths(synthesized):
    groups = resources(synthesized.template, "AWS::ElasticLoadBalancingV2::TargetGroup").values()
    checks = {g["Properties"]["Port"]: g["Properties"] for g in groups}
    for port in (3000, 80):
        assert checks[port]["HealthCheckPort"] == "traffic-port"
        assert checks[port]["HealthCheckPath"] == "/health_check"
        assert checks[port]["Matcher"] == {"HttpCode": "200"}
    expected_type = "ip" if synthesized.config.frontend.capacity == "fargate" else "instance"
    assert {g["Properties"]["TargetType"] for g in groups} == {expected_type}


# -- containers and secrets -----------------------------------------------------------------------------------


def test_no_secret_travels_as_plain_environment(synthesized):
    template = synthesized.template
    secret_resources = set(resources(template, "AWS::SecretsManager::Secret"))
    for name, (_, definition) in containers(template).items():
        env = environment(definition)
        leaked = [k for k in env if SECRET_NAME.search(k) and not k.endswith("_DISABLED")]
        assert leaked == [], f"{name}: secret-looking variables in plain environment: {leaked}"
        rendered = json.dumps(env)
        assert "SecretsManager" not in rendered and "secretsmanager" not in rendered
        assert not any(logical in rendered for logical in secret_resources), name
        for key, value in env.items():  # literals, or references to non-secret attributes (cache endpoint)
            ok = re.fullmatch(r"[\w./:@ -]*", value) if isinstance(value, str) else \
                "secret" not in json.dumps(value).lower() and "Fn::GetStackOutput" in value
            assert ok, f"{name}: {key}={value}"


def test_each_container_gets_exactly_its_secrets(synthesized):
    found = {name: secret_names(d) for name, (_, d) in containers(synthesized.template).items()}
    database = {"DB_USER", "DB_PASSWORD", "DB_HOST", "DB_PORT", "DB_NAME"}
    greenlight = {"SECRET_KEY_BASE", "BIGBLUEBUTTON_SECRET", "SMTP_SERVER", "SMTP_PORT", "SMTP_USERNAME",
                  "SMTP_PASSWORD", "REDIS_PASSWORD"} | database
    scalelite = {"SECRET_KEY_BASE", "REDIS_PASSWORD"} | database
    assert found == {
        "greenlight": greenlight,
        "admin": greenlight | {"ADMIN_PASSWORD"},
        "api": scalelite | {"LOADBALANCER_SECRET"},
        "nginx": set(),
        "poller": scalelite,
        "importer": scalelite,
    }


def test_admin_password_is_only_in_the_admin_task(synthesized):
    template = synthesized.template
    (admin_secret,) = [k for k in resources(template, "AWS::SecretsManager::Secret") if "AdminPassword" in k]
    for name, (_, definition) in containers(template).items():
        uses = admin_secret in json.dumps(definition)
        assert uses == (name == "admin"), name


def test_greenlight_points_at_scalelite_with_a_trailing_slash(synthesized):
    names = synthesized.config.names
    for name in ("greenlight", "admin"):
        env = environment(containers(synthesized.template)[name][1])
        assert env["BIGBLUEBUTTON_ENDPOINT"] == f"https://{names.scalelite}/bigbluebutton/api/"
        assert env["BIGBLUEBUTTON_ENDPOINT"].endswith("/")
        assert env["RELATIVE_URL_ROOT"] == "/"
        assert env["SMTP_SENDER_EMAIL"].endswith(f"@{names.greenlight}")
        assert env["SMTP_HEALTH_CHECK_DISABLED"] == env["BBB_HEALTH_CHECK_DISABLED"] == "true"
        assert "URL_HOST" not in env


def test_start_commands_compose_urls_and_only_the_api_migrates(synthesized):
    defs = {name: d for name, (_, d) in containers(synthesized.template).items()}
    starts = {"greenlight": "exec ./bin/start", "api": "exec bin/start", "poller": "exec bin/start-poller",
              "importer": "exec bin/start-recording-importer"}
    for name, start in starts.items():
        assert defs[name]["EntryPoint"] == ["sh", "-c"]
        (script,) = defs[name]["Command"]
        assert script.rstrip().endswith(start), name
        assert "DATABASE_URL" in script and "REDIS_URL" in script
        prepares = "bundle exec rake db:prepare || exit 1" in script
        assert prepares == (name == "api"), f"only the api prepares the database, not {name}"
        assert script.count("db:") == int(prepares), name
    scalelite_env = environment(defs["api"])
    assert "URL_HOST" not in scalelite_env
    assert environment(defs["importer"])["RECORDING_IMPORT_POLL"] == "true"
    for name in ("api", "poller", "importer"):
        env = environment(defs[name])
        assert {k: env[k] for k in ("RECORDING_SPOOL_DIR", "RECORDING_WORK_DIR", "RECORDING_PUBLISH_DIR",
                                    "RECORDING_UNPUBLISH_DIR")} == {
            "RECORDING_SPOOL_DIR": RECORDING_DIRS["spool"], "RECORDING_WORK_DIR": RECORDING_DIRS["work"],
            "RECORDING_PUBLISH_DIR": RECORDING_DIRS["published"],
            "RECORDING_UNPUBLISH_DIR": RECORDING_DIRS["unpublished"]}


def test_nginx_reaches_the_api_by_link_on_ec2_and_localhost_on_fargate(synthesized):
    nginx = containers(synthesized.template)["nginx"][1]
    env = environment(nginx)
    assert env["NGINX_BEHIND_PROXY"] == "true" and env["URL_HOST"] == synthesized.config.names.scalelite
    if synthesized.config.frontend.capacity == "fargate":
        (script,) = nginx["Command"]
        assert "s/scalelite-api/127.0.0.1/g" in script and script.endswith("exec /etc/nginx/start -g 'daemon off;'")
        assert "Links" not in nginx
    else:
        assert nginx["Links"] == ["api:scalelite-api"]
        assert "Command" not in nginx and "EntryPoint" not in nginx


# -- EFS --------------------------------------------------------------------------------------------------------


def test_recordings_are_mounted_over_tls_with_iam_only_where_needed(synthesized):
    template = synthesized.template
    tasks = resources(template, "AWS::ECS::TaskDefinition")
    mounts = {}
    for name, (logical, definition) in containers(template).items():
        volumes = {v["Name"]: v for v in tasks[logical]["Properties"].get("Volumes", [])}
        for volume in volumes.values():
            efs = volume["EFSVolumeConfiguration"]
            assert efs["TransitEncryption"] == "ENABLED"
            assert efs["AuthorizationConfig"]["IAM"] == "ENABLED" and efs["AuthorizationConfig"]["AccessPointId"]
        mounts[name] = {m["ContainerPath"]: m["ReadOnly"] for m in definition.get("MountPoints", [])}
    d = RECORDING_DIRS
    assert mounts == {
        "greenlight": {}, "admin": {}, "poller": {},
        "nginx": {d["published"]: True},
        "api": {d["published"]: False, d["unpublished"]: False},
        "importer": {d["spool"]: False, d["work"]: False, d["published"]: False, d["unpublished"]: False},
    }


def test_task_roles_may_mount_only_their_access_points(synthesized):
    grants: dict[str, set[tuple[tuple[str, ...], str]]] = {}
    for policy in resources(synthesized.template, "AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            if any(a.startswith("elasticfilesystem:") for a in actions):
                point = json.dumps(statement["Condition"]["StringEquals"]["elasticfilesystem:AccessPointArn"])
                for role in policy["Properties"]["Roles"]:
                    grants.setdefault(role["Ref"], set()).add((tuple(sorted(actions)), point))
    write = ("elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite")
    web, importer = sorted(grants.values(), key=len)
    # One role per task: the web task (api writes published + unpublished; nginx's read-only mount of
    # published is enforced by the mount point) and the importer (all four).
    assert [actions for actions, _ in web] == [write] * 2
    assert [actions for actions, _ in importer] == [write] * 4
    assert {p for _, p in importer} > {p for _, p in web}


# -- security groups ------------------------------------------------------------------------------------------


def port(value: Any) -> Any:
    return value if isinstance(value, int) else json.dumps(value)  # a cross-stack port (the database's)


def ingress_rules(template: dict[str, Any]) -> list[tuple[str, Any, Any, str, str]]:
    """(group, from, to, source, description) for every inbound rule, inline or separate."""
    rules = []
    for logical, group in resources(template, "AWS::EC2::SecurityGroup").items():
        for rule in group["Properties"].get("SecurityGroupIngress", []):
            rules.append((logical, rule["FromPort"], rule["ToPort"], rule.get("CidrIp", "?"), rule["Description"]))
    for rule in resources(template, "AWS::EC2::SecurityGroupIngress").values():
        props = rule["Properties"]
        source = json.dumps(props.get("SourceSecurityGroupId") or props.get("CidrIp"))
        rules.append((json.dumps(props["GroupId"]), port(props["FromPort"]), port(props["ToPort"]), source,
                      props["Description"]))
    return rules


def test_security_groups_open_exactly_the_intended_ports(synthesized):
    template = synthesized.template
    fargate = synthesized.config.frontend.capacity == "fargate"
    rules = ingress_rules(template)
    alb_sg = next(k for k in resources(template, "AWS::EC2::SecurityGroup") if k.startswith("WebSecurityGroup"))
    public = sorted((f, t) for g, f, t, s, _ in rules if s == "0.0.0.0/0")
    assert public == [(80, 80), (443, 443)]
    assert all(g == alb_sg for g, _, _, s, _ in rules if s == "0.0.0.0/0")
    from_alb = sorted((f, t) for _, f, t, s, _ in rules if alb_sg in s)
    assert from_alb == ([(80, 80), (3000, 3000)] if fargate else [(32768, 65535)])
    others = [r for r in rules if r[3] != "0.0.0.0/0" and alb_sg not in r[3]]
    assert all('"bbb-data"' in g for g, *_ in others), "every other rule opens the data tier to the tasks"
    clients = {kind: {s for *_, s, d in others if d.endswith(kind)} for kind in ("PostgreSQL", "Redis", "EFS")}
    assert sum(len(c) for c in clients.values()) == len(others)
    assert {f for _, f, _, _, d in others if d.endswith("Redis")} == {6379}
    assert {f for _, f, _, _, d in others if d.endswith("EFS")} == {2049}
    if fargate:  # greenlight, web, poller, importer and the admin task reach database and cache; two reach EFS
        assert (len(clients["PostgreSQL"]), len(clients["Redis"]), len(clients["EFS"])) == (5, 5, 2)
    else:  # bridge mode: the instances' group, once
        assert len(clients["PostgreSQL"]) == len(clients["Redis"]) == len(clients["EFS"]) == 1
    assert len(rules) == len(set(rules)), "duplicate ingress rules"


def test_task_egress_is_limited_to_https_and_smtp(synthesized):
    for logical, group in resources(synthesized.template, "AWS::EC2::SecurityGroup").items():
        if logical.startswith("WebSecurityGroup"):
            continue
        egress = {(r["FromPort"], r.get("CidrIp")) for r in group["Properties"]["SecurityGroupEgress"]}
        assert egress == {(443, "0.0.0.0/0"), (587, "0.0.0.0/0")}, logical


def test_container_instances_are_hardened():
    template = frontend_synth("ec2").template
    (lt,) = resources(template, "AWS::EC2::LaunchTemplate").values()
    data = lt["Properties"]["LaunchTemplateData"]
    assert data["MetadataOptions"]["HttpTokens"] == "required"
    assert data["MetadataOptions"]["HttpPutResponseHopLimit"] == 1
    assert data["BlockDeviceMappings"][0]["Ebs"]["Encrypted"] is True
    image = data["ImageId"]["Ref"]
    assert "amazon-linux-2023" in template["Parameters"][image]["Default"]
    assert template["Parameters"][image]["Type"] == "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>"
    (group,) = resources(template, "AWS::AutoScaling::AutoScalingGroup").values()
    assert group["UpdatePolicy"]["AutoScalingScheduledAction"]["IgnoreUnmodifiedGroupSizeProperties"] is True
    assert group["Properties"]["NotificationConfigurations"]
    (cluster,) = resources(template, "AWS::ECS::Cluster").values()
    assert {"Name": "containerInsights", "Value": "enhanced"} in cluster["Properties"]["ClusterSettings"]


def test_fargate_has_no_instances():
    template = frontend_synth("fargate").template
    assert resources(template, "AWS::AutoScaling::AutoScalingGroup") == {}
    for service in resources(template, "AWS::ECS::Service").values():
        assert service["Properties"]["LaunchType"] == "FARGATE"
        assert service["Properties"]["NetworkConfiguration"]["AwsvpcConfiguration"]["AssignPublicIp"] == "DISABLED"


# -- Greenlight's administrator and the outputs ---------------------------------------------------------------


def test_admin_password_is_generated_for_greenlights_rules(ec2_template):
    (secret,) = [r for k, r in resources(ec2_template, "AWS::SecretsManager::Secret").items() if "Admin" in k]
    generator = secret["Properties"]["GenerateSecretString"]
    assert generator["RequireEachIncludedType"] is True and generator["PasswordLength"] >= 16
    assert set(",'\"`$\\ []") <= set(generator["ExcludeCharacters"]) == set(ADMIN_PASSWORD_EXCLUDE)
    symbols = set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~") - set(generator["ExcludeCharacters"])
    assert symbols and symbols <= set("`@%~!#£$\\^&*()][+={}/|:;\"'<>-,.?_ ")  # Greenlight's symbol class


def test_admin_custom_resource_runs_the_admin_task_without_secrets(synthesized):
    template = synthesized.template
    (resource,) = resources(template, "Custom::GreenlightAdmin").values()
    props = resource["Properties"]
    tasks = resources(template, "AWS::ECS::TaskDefinition")
    assert props["TaskDefinition"]["Ref"].startswith("GreenlightAdminTask") and props["TaskDefinition"]["Ref"] in tasks
    assert props["ContainerName"] == "greenlight" and props["AdminEmail"] == synthesized.config.operator_email
    (script,) = props["Command"]
    assert 'admin:create[$ADMIN_NAME,$ADMIN_EMAIL,$ADMIN_PASSWORD]' in script
    assert 'grep -vF -- "$ADMIN_PASSWORD"' in script
    admin_secret = next(k for k in resources(template, "AWS::SecretsManager::Secret") if "Admin" in k)
    assert admin_secret not in json.dumps(props)
    greenlight, _ = service_of(template, "greenlight")
    assert greenlight in resource.get("DependsOn", [])
    if synthesized.config.frontend.capacity == "fargate":
        assert props["LaunchType"] == "FARGATE" and len(props["Subnets"]) == 3 and len(props["SecurityGroups"]) == 1
    else:
        assert "CapacityProvider" in props and props["Subnets"] == []


def test_admin_handler_permissions_are_scoped(ec2_template):
    statements = [s for p in resources(ec2_template, "AWS::IAM::Policy").values()
                  for s in p["Properties"]["PolicyDocument"]["Statement"]]
    (run,) = [s for s in statements if s["Action"] == "ecs:RunTask"]
    assert run["Resource"]["Ref"].startswith("GreenlightAdminTask")
    assert "ecs:cluster" in run["Condition"]["ArnEquals"]
    (pass_role,) = [s for s in statements if s["Action"] == "iam:PassRole"]
    assert pass_role["Condition"] == {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}
    assert len(pass_role["Resource"]) == 2
    (describe,) = [s for s in statements if s["Action"] == "ecs:DescribeTasks"]
    assert "ecs:cluster" in describe["Condition"]["ArnEquals"]


def test_outputs(synthesized):
    outputs = synthesized.template["Outputs"]
    names = synthesized.config.names
    assert outputs["GreenlightUrl"]["Value"] == f"https://{names.greenlight}/"
    assert outputs["ScaleliteApiUrl"]["Value"] == f"https://{names.scalelite}/bigbluebutton/api/"
    assert "AdminSecretName" in outputs and "ScaleliteSecretName" in outputs
