"""The data tier of the scalable shape, built into the data stack's scope (so the logical IDs are the stack's):
recordings on EFS, Aurora PostgreSQL with Greenlight's and Scalelite's own roles and databases, and the
Valkey/Redis cache.

Every security group here starts without an inbound rule and without outbound: the consumers grant
themselves access where they meet these resources, so each open port is visible next to the consumer.
"""

from __future__ import annotations

import json

from aws_cdk import Acknowledgment, ArnFormat, CustomResource, Duration, Stack, Validations
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_efs as efs
from aws_cdk import aws_elasticache as elasticache
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_rds as rds
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from cdk_constructs.custom_resource_provider import PythonCustomResourceProvider
from cdk_constructs.nag import acknowledge, resource_finding
from settings import Cache, Database, Deployment
from settings.stage_rules import data_removal_policy, log_removal_policy, log_retention

# Scalelite's images run as scalelite:scalelite = 1000:1000 (dockerfiles/v1/*: `adduser -u 1000`). Every
# access point enforces that identity for every client, so the recordings that BBB's post_publish script
# writes into the spool as its local `bigbluebutton` user (a different uid on each host) land as 1000:1000
# and the importer can read and delete them; no shared group (Scalelite's 2000 `scalelite-spool`) is needed.
SCALELITE_UID = "1000"
SCALELITE_GID = "1000"
ACCESS_POINTS = {  # Scalelite's RECORDING_{SPOOL,WORK,PUBLISH,UNPUBLISH}_DIR, each its own access point
    "spool": "/scalelite/spool",
    "work": "/scalelite/work",
    "published": "/scalelite/published",
    "unpublished": "/scalelite/unpublished",
}
APPLICATION_DATABASES = ("greenlight", "scalelite")  # role name = database name
DATABASE_ADMIN = "clusteradmin"
CACHE_PORT = 6379


def data_security_group(scope: Construct, construct_id: str, vpc: ec2.IVpc, description: str) -> ec2.SecurityGroup:
    # No outbound: these are servers; nothing they do starts a connection.
    return ec2.SecurityGroup(scope, construct_id, vpc=vpc, description=description, allow_all_outbound=False)


# --- recordings------------------------------------------------------------------------------------------

def recordings(
    scope: Construct, *, vpc: ec2.IVpc, subnets: ec2.SubnetSelection, deployment: Deployment,
    backup_plan: bool = False,
) -> tuple[efs.FileSystem, dict[str, efs.IAccessPoint]]:
    """The recordings file system (EFS, TLS only) with one access point per Scalelite directory. With the
    deployment's own backup plan (`backup_plan`), EFS's automatic daily backup is off: one plan, one vault."""
    file_system = efs.FileSystem(
        scope,
        "Recordings",
        vpc=vpc,
        vpc_subnets=subnets,  # one mount target per application subnet
        security_group=data_security_group(
            scope, "RecordingsSecurityGroup", vpc,
            "Recordings EFS: NFS only from the consumers that grant themselves access",
        ),
        encrypted=True,
        performance_mode=efs.PerformanceMode.GENERAL_PURPOSE,
        # Bursty (an import after each meeting, playback on demand): pay per use, no burst credits to run out.
        throughput_mode=efs.ThroughputMode.ELASTIC,
        lifecycle_policy=efs.LifecyclePolicy.AFTER_30_DAYS,  # old recordings are rarely played again
        out_of_infrequent_access_policy=efs.OutOfInfrequentAccessPolicy.AFTER_1_ACCESS,
        enable_automatic_backups=deployment.is_production_like and not backup_plan,
        removal_policy=data_removal_policy(deployment),
    )
    file_system.add_to_resource_policy(
        iam.PolicyStatement(
            sid="DenyUnencryptedTransport",
            effect=iam.Effect.DENY,
            principals=[iam.AnyPrincipal()],
            actions=["*"],
            conditions={"Bool": {"aws:SecureTransport": "false"}},
        )
    )
    access_points: dict[str, efs.IAccessPoint] = {
        name: file_system.add_access_point(
            f"{name.capitalize()}AccessPoint",
            path=path,
            posix_user=efs.PosixUser(uid=SCALELITE_UID, gid=SCALELITE_GID),
            create_acl=efs.Acl(owner_uid=SCALELITE_UID, owner_gid=SCALELITE_GID, permissions="750"),
        )
        for name, path in ACCESS_POINTS.items()
    }
    return file_system, access_points

# --- database--------------------------------------------------------------------------------------------

RDS_OS_METRICS = "RDSOSMetrics"  # the log group Enhanced Monitoring writes to (fixed by RDS)


def aurora(
    scope: Construct, *, vpc: ec2.IVpc, subnets: ec2.SubnetSelection, database: Database,
    availability_zones: list[str], deployment: Deployment,
) -> rds.DatabaseCluster:
    """Aurora PostgreSQL (TLS required, IAM auth, Data API), writer plus a reader in another zone off dev."""
    db = database
    production_like = deployment.is_production_like
    azs = availability_zones
    engine = rds.DatabaseClusterEngine.aurora_postgres(
        version=rds.AuroraPostgresEngineVersion.of(db.engine_version, db.engine_version.split(".")[0])
    )
    parameters = rds.ParameterGroup(
        scope,
        "ClusterParameters",
        engine=engine,
        description=f"{deployment.prefix}: TLS required for every connection",
        parameters={"rds.force_ssl": "1", "ssl_min_protocol_version": "TLSv1.2"},
    )
    serverless = db.capacity == "serverless"
    if serverless:
        writer = rds.ClusterInstance.serverless_v2("Writer", availability_zone=azs[0])
        # Scales with the writer, so a failover lands on an instance of the same size.
        readers = [rds.ClusterInstance.serverless_v2("Reader", scale_with_writer=True, availability_zone=azs[1])]
    else:
        instance_type = ec2.InstanceType(db.instance_class.removeprefix("db."))
        writer = rds.ClusterInstance.provisioned("Writer", instance_type=instance_type, availability_zone=azs[0])
        readers = [rds.ClusterInstance.provisioned("Reader", instance_type=instance_type, promotion_tier=1,
                                                   availability_zone=azs[1])]
    identifier = f"{deployment.prefix}-aurora"
    # Created before the cluster so that its retention and removal follow the stage (RDS would otherwise
    # create it on first export, kept forever).
    log_group = logs.LogGroup(
        scope,
        "DatabaseLogs",
        log_group_name=f"/aws/rds/cluster/{identifier}/postgresql",
        retention=log_retention(deployment),
        removal_policy=log_removal_policy(deployment),
    )
    cluster = rds.DatabaseCluster(
        scope,
        "Database",
        engine=engine,
        cluster_identifier=identifier,
        # RDS generates, stores and rotates the admin password in Secrets Manager; nobody ever sees it.
        manage_master_user_password=True,
        credentials=rds.Credentials.from_username(DATABASE_ADMIN),
        writer=writer,
        readers=readers if production_like else [],
        serverless_v2_min_capacity=db.serverless_min_acu if serverless else None,
        serverless_v2_max_capacity=db.serverless_max_acu if serverless else None,
        vpc=vpc,
        vpc_subnets=subnets,
        security_groups=[data_security_group(
            scope, "DatabaseSecurityGroup", vpc,
            "Aurora: PostgreSQL only from the consumers that grant themselves access",
        )],
        parameter_group=parameters,
        storage_encrypted=True,
        iam_authentication=True,
        deletion_protection=production_like,
        backup=rds.BackupProps(retention=Duration.days(deployment.backup_retention_days)),
        copy_tags_to_snapshot=True,
        cloudwatch_logs_exports=["postgresql"],
        enable_data_api=True,  # the database-users custom resource needs no VPC access
        removal_policy=data_removal_policy(deployment, snapshot=True),
        monitoring_interval=Duration.seconds(deployment.database_monitoring_interval_seconds),
        monitoring_role=_monitoring_role(scope, deployment),
    )
    cluster.node.add_dependency(log_group)
    for instance in ("Writer", "Reader"):
        if cluster.node.try_find_child(instance):
            Validations.of(cluster.node.find_child(instance)).acknowledge(Acknowledgment(
                id="CloudFormation-Validate::W3010",
                reason="Zones pinned on purpose (from cdk.json, no lookup): the reader must sit in another "
                       "zone than the writer",
            ))
    if not production_like:
        acknowledge(cluster, "RDS10",
                    "dev stage: the database is destroyed with the stack by design (stage/prod: protected)")
    return cluster

def _monitoring_role(scope: Construct, deployment: Deployment) -> iam.Role:
    """Enhanced Monitoring's role: what AWS's AmazonRDSEnhancedMonitoringRole grants on `RDS*` log groups
    anywhere, here on the one log group RDS writes OS metrics to (RDSOSMetrics), in this account and region."""
    role = iam.Role(
        scope, "DatabaseMonitoringRole", assumed_by=iam.ServicePrincipal("monitoring.rds.amazonaws.com"),
        description=f"{deployment.prefix}: Aurora Enhanced Monitoring writes OS metrics to RDSOSMetrics",
    )
    group = Stack.of(scope).format_arn(service="logs", resource="log-group", resource_name=RDS_OS_METRICS,
                                       arn_format=ArnFormat.COLON_RESOURCE_NAME)
    streams = f"{group}:log-stream:*"
    role.add_to_policy(iam.PolicyStatement(actions=["logs:CreateLogGroup", "logs:PutRetentionPolicy"],
                                           resources=[group]))
    role.add_to_policy(iam.PolicyStatement(
        actions=["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams", "logs:GetLogEvents"],
        resources=[streams],
    ))
    acknowledge(role, resource_finding(role, "IAM5", streams),
                "RDS names one log stream per instance resource id in RDSOSMetrics; the group is pinned")
    return role


def application_databases(
    scope: Construct, *, cluster: rds.DatabaseCluster, deployment: Deployment
) -> dict[str, secretsmanager.ISecret]:
    """Greenlight's and Scalelite's own login role and database, each with its own generated secret."""
    provider = PythonCustomResourceProvider(
        scope, "DatabaseUsersProvider", deployment=deployment, folder="database_users",
        description="Creates the applications' own PostgreSQL roles and databases through the RDS Data API",
    )
    handler = provider.handler.function
    cluster.grant_data_api_access(handler)
    secrets: dict[str, secretsmanager.ISecret] = {}
    for name in APPLICATION_DATABASES:
        title = name.capitalize()
        generated = secretsmanager.Secret(
            scope,
            f"{title}DatabaseSecret",
            description=f"{deployment.prefix}: {title}'s PostgreSQL login (RDS secret JSON with dbname)",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                secret_string_template=json.dumps({"username": name, "dbname": name}),
                generate_string_key="password",
                password_length=32,
                # Alphanumeric: goes into DATABASE_URL unencoded (Greenlight parses the URL naively).
                exclude_punctuation=True,
                include_space=False,
            ),
            removal_policy=data_removal_policy(deployment),  # a retained database keeps its login
        )
        acknowledge(
            generated,
            "SMG4",
            f"{title}'s DB password is re-applied by the database-users custom resource on deploy; a Lambda "
            "rotation would break running tasks, which read it only at start (rotate + redeploy instead)",
        )
        secret = generated.attach(cluster)  # adds host, port, engine, dbClusterIdentifier
        secret.grant_read(handler)
        resource = CustomResource(
            scope,
            f"{title}DatabaseUser",
            service_token=provider.service_token,
            resource_type="Custom::DatabaseUser",
            properties={
                "ClusterArn": cluster.cluster_arn,
                "AdminSecretArn": cluster.secret.secret_arn,  # type: ignore[union-attr]
                "UserSecretArn": secret.secret_arn,
                "DatabaseRole": name,
                "DatabaseName": name,
                "DropOnDelete": "false" if deployment.is_production_like else "true",
            },
        )
        resource.node.add_dependency(cluster)  # the writer instance must be up, not only the cluster
        secrets[name] = secret
    return secrets

# --- cache-----------------------------------------------------------------------------------------------

def cache(
    scope: Construct, *, vpc: ec2.IVpc, subnets: ec2.SubnetSelection, settings: Cache, availability_zones: list[str],
    deployment: Deployment,
) -> tuple[elasticache.CfnReplicationGroup, secretsmanager.ISecret, ec2.Connections]:
    """Valkey/Redis with TLS and AUTH (the token in Secrets Manager), two nodes Multi-AZ off dev."""
    production_like = deployment.is_production_like
    auth = secretsmanager.Secret(
        scope,
        "CacheAuthToken",
        description=f"{deployment.prefix}: AUTH token of the cache (plain string)",
        generate_secret_string=secretsmanager.SecretStringGenerator(
            password_length=64,
            exclude_punctuation=True,  # ElastiCache rejects some punctuation; REDIS_URL needs none
            include_space=False,
        ),
    )
    acknowledge(
        auth,
        "SMG4",
        "The cache AUTH token is set on the replication group by CloudFormation; rotating it needs the "
        "ElastiCache ROTATE strategy and a task redeploy, not a Secrets Manager rotation Lambda",
    )
    subnet_group = elasticache.CfnSubnetGroup(
        scope,
        "CacheSubnets",
        description=f"{deployment.prefix}: isolated database subnets",
        subnet_ids=vpc.select_subnets(subnet_group_name=subnets.subnet_group_name).subnet_ids,
    )
    security_group = data_security_group(
        scope, "CacheSecurityGroup", vpc, "Cache: Redis protocol only from the consumers that grant themselves access"
    )
    nodes = 2 if production_like else 1
    cache = elasticache.CfnReplicationGroup(
        scope,
        "Cache",
        replication_group_description=f"{deployment.prefix}: Scalelite and Greenlight cache",
        engine=settings.engine,
        engine_version=settings.engine_version,
        cache_node_type=settings.node_type,
        num_cache_clusters=nodes,
        multi_az_enabled=production_like,
        automatic_failover_enabled=production_like,
        preferred_cache_cluster_a_zs=list(availability_zones[:nodes]),
        at_rest_encryption_enabled=True,
        transit_encryption_enabled=True,
        transit_encryption_mode="required",
        # A CloudFormation dynamic reference: the token is resolved at deploy time, never in the template.
        auth_token=auth.secret_value.unsafe_unwrap(),
        cache_subnet_group_name=subnet_group.ref,
        security_group_ids=[security_group.security_group_id],
        port=CACHE_PORT,
        snapshot_retention_limit=deployment.backup_retention_days,
        auto_minor_version_upgrade=True,
    )
    cache.apply_removal_policy(data_removal_policy(deployment, snapshot=True))
    acknowledge(
        cache,
        "AEC5",
        "Port 6379 kept: isolated subnets, TLS and AUTH required, and no inbound rule until a consumer "
        "grants; an unusual port would hide nothing from a client allowed to connect",
    )
    if not production_like:
        acknowledge(cache, "AEC4",
                    "dev stage: one cache node by design (stage/prod: two nodes, Multi-AZ, automatic failover)")
    connections = ec2.Connections(security_groups=[security_group], default_port=ec2.Port.tcp(CACHE_PORT))
    return cache, auth, connections
