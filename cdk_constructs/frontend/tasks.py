"""What the Greenlight and Scalelite containers share: the data tier's parts as ECS secrets and plain
environment, the recordings on EFS, and the plain-environment acknowledgment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_efs as efs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_secretsmanager as secretsmanager

from cdk_constructs.nag import acknowledge

# Scalelite's recording directories (its defaults) and the EFS access point each one is.
RECORDING_DIRS = {
    "spool": "/var/bigbluebutton/spool",
    "work": "/var/bigbluebutton/recording/scalelite",
    "published": "/var/bigbluebutton/published",
    "unpublished": "/var/bigbluebutton/unpublished",
}
RECORDING_ENV = {
    "RECORDING_SPOOL_DIR": RECORDING_DIRS["spool"],
    "RECORDING_WORK_DIR": RECORDING_DIRS["work"],
    "RECORDING_PUBLISH_DIR": RECORDING_DIRS["published"],
    "RECORDING_UNPUBLISH_DIR": RECORDING_DIRS["unpublished"],
}


def database_secrets(secret: secretsmanager.ISecret) -> dict[str, ecs.Secret]:
    """The parts of an RDS-shaped secret the container prologue composes DATABASE_URL from."""
    fields = {"DB_USER": "username", "DB_PASSWORD": "password", "DB_HOST": "host", "DB_PORT": "port",
              "DB_NAME": "dbname"}
    return {name: ecs.Secret.from_secrets_manager(secret, field) for name, field in fields.items()}


@dataclass(frozen=True)
class Cache:
    """The Valkey/Redis endpoint (plain environment) and its AUTH token (an ECS secret)."""

    host: str
    port: str
    auth: secretsmanager.ISecret

    def settings(self) -> tuple[dict[str, str], dict[str, ecs.Secret]]:
        return {"REDIS_HOST": self.host, "REDIS_PORT": self.port}, {
            "REDIS_PASSWORD": ecs.Secret.from_secrets_manager(self.auth)}


@dataclass
class Recordings:
    """The recordings file system and its access points (spool, work, published, unpublished)."""

    file_system: efs.IFileSystem
    access_points: Mapping[str, efs.IAccessPoint]
    _volumes: dict[str, set[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        missing = set(RECORDING_DIRS) - set(self.access_points)
        if missing:
            raise ValueError(f"Data.access_points lacks {sorted(missing)}; the data stack must provide all four")

    def mount(self, task: ecs.TaskDefinition, container: ecs.ContainerDefinition, mounts: Mapping[str, bool]) -> None:
        """Mount each named access point at Scalelite's directory (True = read-only), over TLS with IAM."""
        fs = self.file_system
        volumes = self._volumes.setdefault(task.node.path, set())
        for name, read_only in mounts.items():
            point = self.access_points[name]
            volume = f"recordings-{name}"
            if volume not in volumes:
                task.add_volume(name=volume, efs_volume_configuration=ecs.EfsVolumeConfiguration(
                    file_system_id=fs.file_system_id, transit_encryption="ENABLED",
                    authorization_config=ecs.AuthorizationConfig(access_point_id=point.access_point_id, iam="ENABLED"),
                ))
                volumes.add(volume)
            container.add_mount_points(ecs.MountPoint(
                container_path=RECORDING_DIRS[name], source_volume=volume, read_only=read_only
            ))
            actions = ["elasticfilesystem:ClientMount"] + ([] if read_only else ["elasticfilesystem:ClientWrite"])
            task.add_to_task_role_policy(iam.PolicyStatement(
                actions=actions, resources=[fs.file_system_arn],
                conditions={"StringEquals": {"elasticfilesystem:AccessPointArn": point.access_point_arn}},
            ))


def acknowledge_plain_environment(task: ecs.TaskDefinition) -> None:
    acknowledge(task, "ECS2", "Plain environment holds only non-secret settings (host names, ports, flags, "
                "paths); every password, token and key arrives via Secrets (asserted by the infra tests)")
