"""The data stack: EFS for recordings, Aurora PostgreSQL with per-application databases, the encrypted cache."""

from __future__ import annotations

import json

import pytest

from tests.infra.platform_templates import OPTIONS_VARIANT, only, properties, resources, statements, text
from tests.infra.synth import STAGES, synth

# The first test to ask for a deployment variant pays its synthesis (several seconds).
pytestmark = pytest.mark.slow

ACCESS_POINTS = {"/scalelite/spool", "/scalelite/work", "/scalelite/published", "/scalelite/unpublished"}


def data(stage):
    return synth("scalable", stage).template("data")


def test_single_shape_has_no_data_stack():
    result = synth("single", "dev")
    assert f"{result.config.prefix}-data" not in result.stack_names()


# -- recordings (EFS) ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", STAGES)
def test_file_system_is_encrypted_elastic_with_ia_lifecycle_and_stage_rules(stage):
    _, file_system = only(data(stage), "AWS::EFS::FileSystem")
    props = file_system["Properties"]
    assert props["Encrypted"] is True
    assert props["ThroughputMode"] == "elastic" and props["PerformanceMode"] == "generalPurpose"
    assert {"TransitionToIA": "AFTER_30_DAYS"} in props["LifecyclePolicies"]
    production_like = stage != "dev"
    # stage/prod: the deployment's backup plan covers it (cdk_constructs/backup.py), not EFS's own; dev: none
    assert "BackupPolicy" not in props
    assert file_system["DeletionPolicy"] == ("Retain" if production_like else "Delete")


def test_without_the_backup_plan_production_keeps_efs_automatic_backups():
    template = synth("scalable", "prod", **{"backup.prod.enabled": False}).template("data")
    _, file_system = only(template, "AWS::EFS::FileSystem")
    assert file_system["Properties"]["BackupPolicy"] == {"Status": "ENABLED"}
    assert not [r for r in template["Resources"].values() if r["Type"].startswith("AWS::Backup::")]


def test_file_system_policy_refuses_unencrypted_transport():
    _, file_system = only(data("dev"), "AWS::EFS::FileSystem")
    found = statements(file_system["Properties"]["FileSystemPolicy"])
    (deny,) = [s for s in found if s["Effect"] == "Deny"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} and deny["Action"] == "*"


def test_mount_targets_sit_in_the_application_subnets_behind_the_file_systems_group():
    template = data("dev")
    targets = properties(template, "AWS::EFS::MountTarget")
    assert len(targets) == 3
    assert all("applicationSubnet" in json.dumps(t["SubnetId"]) for t in targets)
    groups = {json.dumps(t["SecurityGroups"]) for t in targets}
    (group_ids,) = groups
    (group_id,) = [k for k in resources(template, "AWS::EC2::SecurityGroup") if k in group_ids]
    assert group_id.startswith("RecordingsSecurityGroup")


def test_access_points_enforce_scalelites_uid_and_gid_on_their_own_paths():
    points = properties(data("dev"), "AWS::EFS::AccessPoint")
    assert {p["RootDirectory"]["Path"] for p in points} == ACCESS_POINTS
    for point in points:
        assert point["PosixUser"] == {"Uid": "1000", "Gid": "1000"}
        assert point["RootDirectory"]["CreationInfo"] == {"OwnerUid": "1000", "OwnerGid": "1000",
                                                          "Permissions": "750"}


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_data_security_groups_open_nothing_and_start_nothing(stage):
    groups = properties(data(stage), "AWS::EC2::SecurityGroup")
    assert len(groups) == 3  # recordings, database, cache
    for group in groups:
        assert "SecurityGroupIngress" not in group  # consumers grant themselves (next to their own code)
        assert [e["CidrIp"] for e in group["SecurityGroupEgress"]] == ["255.255.255.255/32"]


# -- database ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", STAGES)
def test_cluster_is_encrypted_tls_only_backed_up_and_protected_per_stage(stage):
    template = data(stage)
    result = synth("scalable", stage)
    _, cluster = only(template, "AWS::RDS::DBCluster")
    props = cluster["Properties"]
    production_like = stage != "dev"
    assert props["StorageEncrypted"] is True and props["EnableIAMDatabaseAuthentication"] is True
    assert props["ManageMasterUserPassword"] is True and "MasterUserPassword" not in props
    assert props["EngineVersion"] == result.config.database.engine_version
    assert props["BackupRetentionPeriod"] == result.config.backup_retention_days
    assert props["DeletionProtection"] is production_like
    assert cluster["DeletionPolicy"] == ("Snapshot" if production_like else "Delete")
    assert props["EnableHttpEndpoint"] is True and props["EnableCloudwatchLogsExports"] == ["postgresql"]
    assert props["DBSubnetGroupName"]["Ref"] in resources(template, "AWS::RDS::DBSubnetGroup")
    (subnet_group,) = properties(template, "AWS::RDS::DBSubnetGroup")
    assert all("databaseSubnet" in json.dumps(s) for s in subnet_group["SubnetIds"])
    group_id = props["DBClusterParameterGroupName"]["Ref"]
    parameters = template["Resources"][group_id]["Properties"]["Parameters"]
    assert parameters["rds.force_ssl"] == "1"


@pytest.mark.parametrize(("stage", "instances"), [("dev", 1), ("stage", 2), ("prod", 2)])
def test_writer_only_in_dev_and_a_reader_in_another_zone_in_stage_and_prod(stage, instances):
    found = properties(data(stage), "AWS::RDS::DBInstance")
    assert len(found) == instances
    zones = [i["AvailabilityZone"] for i in found]
    assert len(set(zones)) == instances  # each instance in its own zone
    assert all(i["DBInstanceClass"] == "db.serverless" and i["PubliclyAccessible"] is False for i in found)
    if instances == 2:
        assert sorted(i["PromotionTier"] for i in found) == [0, 1]  # the reader scales with the writer


def test_provisioned_capacity_uses_the_configured_instance_class():
    template = synth("scalable", "dev", **OPTIONS_VARIANT).template("data")
    (writer,) = properties(template, "AWS::RDS::DBInstance")
    assert writer["DBInstanceClass"] == "db.r6g.large"
    _, cluster = only(template, "AWS::RDS::DBCluster")
    assert "ServerlessV2ScalingConfiguration" not in cluster["Properties"]


@pytest.mark.parametrize(("stage", "days"), [("dev", 7), ("prod", 365)])
def test_postgres_log_group_exists_before_the_cluster_with_stage_retention(stage, days):
    template = data(stage)
    _, cluster = only(template, "AWS::RDS::DBCluster")
    identifier = cluster["Properties"]["DBClusterIdentifier"]
    (log_id,) = [k for k, v in resources(template, "AWS::Logs::LogGroup").items()
                 if v["Properties"].get("LogGroupName") == f"/aws/rds/cluster/{identifier}/postgresql"]
    assert template["Resources"][log_id]["Properties"]["RetentionInDays"] == days
    assert log_id in cluster["DependsOn"]


@pytest.mark.parametrize("name", ["greenlight", "scalelite"])
@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_each_application_gets_its_own_role_database_and_generated_secret(stage, name):
    template = data(stage)
    users = {v["Properties"]["DatabaseRole"]: v for v in resources(template, "Custom::DatabaseUser").values()}
    assert set(users) == {"greenlight", "scalelite"}
    user = users[name]
    props = user["Properties"]
    assert props["DatabaseName"] == name
    assert props["DropOnDelete"] == ("true" if stage == "dev" else "false")
    cluster_id, _ = only(template, "AWS::RDS::DBCluster")
    assert props["AdminSecretArn"] == {"Fn::GetAtt": [cluster_id, "MasterUserSecret.SecretArn"]}
    writer_ids = [k for k in resources(template, "AWS::RDS::DBInstance") if k.startswith("DatabaseWriter")]
    assert set(writer_ids) <= set(user["DependsOn"])  # Data API needs a running writer
    attachment_id = props["UserSecretArn"]["Ref"]
    attachment = template["Resources"][attachment_id]["Properties"]
    assert attachment["TargetType"] == "AWS::RDS::DBCluster" and attachment["TargetId"] == {"Ref": cluster_id}
    secret = template["Resources"][attachment["SecretId"]["Ref"]]
    generator = secret["Properties"]["GenerateSecretString"]
    assert json.loads(generator["SecretStringTemplate"]) == {"username": name, "dbname": name}
    assert generator["GenerateStringKey"] == "password" and generator["ExcludePunctuation"] is True
    assert secret["DeletionPolicy"] == ("Delete" if stage == "dev" else "Retain")


def test_database_users_handler_may_use_the_data_api_of_this_cluster_only():
    template = data("dev")
    cluster_id, _ = only(template, "AWS::RDS::DBCluster")
    data_api = [s for p in properties(template, "AWS::IAM::Policy") for s in statements(p["PolicyDocument"])
                if "rds-data:ExecuteStatement" in s["Action"]]
    (statement,) = data_api
    assert cluster_id in json.dumps(statement["Resource"]) and "*" not in json.dumps(statement["Resource"])


# -- cache -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", STAGES)
def test_cache_is_encrypted_with_auth_from_secrets_manager(stage):
    template = data(stage)
    _, group = only(template, "AWS::ElastiCache::ReplicationGroup")
    props = group["Properties"]
    assert props["AtRestEncryptionEnabled"] is True
    assert props["TransitEncryptionEnabled"] is True and props["TransitEncryptionMode"] == "required"
    (token_secret,) = [k for k in resources(template, "AWS::SecretsManager::Secret") if k.startswith("CacheAuthToken")]
    assert props["AuthToken"] == {"Fn::Join": ["", ["{{resolve:secretsmanager:", {"Ref": token_secret},
                                                    ":SecretString:::}}"]]}
    assert (props["Engine"], props["EngineVersion"]) == ("valkey", "8.0")
    (subnet_group,) = properties(template, "AWS::ElastiCache::SubnetGroup")
    assert all("databaseSubnet" in json.dumps(s) for s in subnet_group["SubnetIds"])


@pytest.mark.parametrize(("stage", "nodes", "retention"), [("dev", 1, 1), ("stage", 2, 7), ("prod", 2, 30)])
def test_cache_is_multi_az_with_failover_in_stage_and_prod_only(stage, nodes, retention):
    _, group = only(data(stage), "AWS::ElastiCache::ReplicationGroup")
    props = group["Properties"]
    production_like = stage != "dev"
    assert props["NumCacheClusters"] == nodes
    assert props["MultiAZEnabled"] is production_like and props["AutomaticFailoverEnabled"] is production_like
    assert len(set(props["PreferredCacheClusterAZs"])) == nodes
    assert props["SnapshotRetentionLimit"] == retention
    assert group["DeletionPolicy"] == ("Snapshot" if production_like else "Delete")


def test_redis_engine_option_is_honoured():
    template = synth("scalable", "dev", **OPTIONS_VARIANT).template("data")
    _, group = only(template, "AWS::ElastiCache::ReplicationGroup")
    assert (group["Properties"]["Engine"], group["Properties"]["EngineVersion"]) == ("redis", "7.1")


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_no_secret_value_in_plain_text(stage):
    template = data(stage)
    for secret in properties(template, "AWS::SecretsManager::Secret"):
        assert "SecretString" not in secret
    for cluster in properties(template, "AWS::RDS::DBCluster"):
        assert "MasterUserPassword" not in cluster
    rendered = text(template)
    for key in ('"AuthToken": "', '"Password": "', '"MasterUserPassword"'):
        assert key not in rendered
