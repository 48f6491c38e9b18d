"""Scalelite on ECS: the api + nginx web service behind the shared HTTPS load balancer, the poller and the one
recording importer.

- `scalelite.<domain>` -> Scalelite's nginx (port 80), which proxies the API to the api container in the same
  task and serves published recordings from EFS.
- The poller runs as one task without a load balancer; the recording importer as exactly one task (Scalelite
  forbids two: desired 1, a deployment stops the old task before starting the new one, and it is never
  autoscaled).

Only the api container prepares the database (`rake db:prepare` before its image's `bin/start`); poller and
importer start after the web service is stable, so they never race it on a fresh database.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from cdk_constructs.container_command import ENTRY_POINT, NGINX_LOCALHOST_START, Prologue
from cdk_constructs.ecs_cluster import FrontendCluster
from cdk_constructs.frontend.tasks import (
    RECORDING_ENV,
    Cache,
    Recordings,
    acknowledge_plain_environment,
    database_secrets,
)
from cdk_constructs.https_alb import HttpsLoadBalancer
from cdk_constructs.web_service import Exposure, Scaling, WebService
from settings import Container, Deployment, Frontend
from settings.stage_rules import log_removal_policy, log_retention

SCALELITE_API_PORT = 3000
NGINX_PORT = 80
SCALELITE_API_START = "bin/start"  # api image CMD, then puma (WORKDIR /srv/scalelite)
# Only the api prepares the database: `db:prepare` creates the schema on a fresh database and migrates an
# existing one (PostgreSQL advisory lock: several api tasks starting at once are safe). Newer api images'
# bin/start migrates too, older ones do not; running it here makes the schema independent of the image tag.
SCALELITE_API_PREPARE = "bundle exec rake db:prepare || exit 1"
SCALELITE_POLLER_START = "bin/start-poller"
SCALELITE_IMPORTER_START = "bin/start-recording-importer"


@dataclass(frozen=True, kw_only=True)
class ScaleliteEnvironment:
    """What Scalelite's containers are told: its host name, the data tier and the secrets."""

    host: str  # scalelite.<domain>
    key_base: secretsmanager.ISecret  # Rails SECRET_KEY_BASE
    loadbalancer: secretsmanager.ISecret  # LOADBALANCER_SECRET (the API's shared secret)
    database: secretsmanager.ISecret  # RDS-shaped: Scalelite's own user and database
    cache: Cache
    recordings: Recordings


def api_url(host: str) -> str:
    """Scalelite's BigBlueButton API endpoint on `host` (what Greenlight calls; it must end with "/")."""
    return f"https://{host}/bigbluebutton/api/"


class Scalelite:
    """Scalelite's log group, web service, poller and importer, built into `scope` (see the package doc)."""

    def __init__(
        self,
        scope: Construct,
        *,
        cluster: FrontendCluster,
        load_balancer: HttpsLoadBalancer,
        frontend: Frontend,
        environment: ScaleliteEnvironment,
        deployment: Deployment,
    ) -> None:
        self.cluster, self.environment, fe = cluster, environment, frontend
        self.log_group = logs.LogGroup(scope, "ScaleliteLogs", retention=log_retention(deployment),
                                       removal_policy=log_removal_policy(deployment))
        cluster.allow_task_logs(self.log_group)

        # -- api + nginx -----------------------------------------------------------------------------------
        web_task = cluster.task_definition(
            scope, "ScaleliteWebTask", cpu=fe.scalelite_api.cpu + fe.scalelite_nginx.cpu,
            memory_mib=fe.scalelite_api.memory_mib + fe.scalelite_nginx.memory_mib,
        )
        api = self._rails_container(
            web_task, "api", fe.scalelite_api, start=SCALELITE_API_START,
            environment={"SCALELITE_API_PORT": str(SCALELITE_API_PORT)}, loadbalancer_secret=True,
            prepare=SCALELITE_API_PREPARE,
            # publishRecordings/deleteRecordings move and remove recordings in both directories.
            mounts={"published": False, "unpublished": False},
        )
        api.add_port_mappings(ecs.PortMapping(container_port=SCALELITE_API_PORT))
        nginx = self._nginx_container(web_task, fe.scalelite_nginx)
        nginx.add_container_dependencies(ecs.ContainerDependency(
            container=api, condition=ecs.ContainerDependencyCondition.START
        ))
        if not cluster.fargate:
            nginx.add_link(api, "scalelite-api")  # bridge mode: the templates' proxy_pass host
        web_task.default_container = nginx
        self.web = WebService(
            scope, "Scalelite", cluster=cluster, load_balancer=load_balancer, task_definition=web_task,
            description="Scalelite nginx",
            exposure=Exposure(
                host=environment.host, priority=20, container_name="nginx", container_port=NGINX_PORT,
                # nginx proxies /health_check to the api (database and Redis); no Host-header check there
                # because URL_HOST is not set on the api container.
                health_check_path="/health_check", grace_period=Duration.minutes(5),
            ),
            scaling=Scaling(min_tasks=fe.scalelite_api_tasks, max_tasks=min(fe.scalelite_api_tasks * 3, 20)),
        )

        # -- poller and the one recording importer -----------------------------------------------------------
        poller_task = cluster.task_definition(
            scope, "ScalelitePollerTask", cpu=fe.scalelite_poller.cpu, memory_mib=fe.scalelite_poller.memory_mib
        )
        self._rails_container(poller_task, "poller", fe.scalelite_poller, start=SCALELITE_POLLER_START,
                              environment={}, mounts={})
        self.poller = cluster.service(
            scope, "ScalelitePoller", task_definition=poller_task, desired_count=1,
            # One poller suffices and two do no harm (Scalelite docs): start the new one before stopping the old.
            min_healthy_percent=100, max_healthy_percent=200, description="Scalelite poller",
        )
        importer_task = cluster.task_definition(
            scope, "ScaleliteImporterTask", cpu=fe.scalelite_importer.cpu,
            memory_mib=fe.scalelite_importer.memory_mib,
        )
        self._rails_container(
            importer_task, "importer", fe.scalelite_importer, start=SCALELITE_IMPORTER_START,
            # EFS (NFS) raises no inotify events: poll the spool directory.
            environment={"RECORDING_IMPORT_POLL": "true", "RECORDING_IMPORT_POLL_INTERVAL": "60"},
            mounts={"spool": False, "work": False, "published": False, "unpublished": False},
        )
        # Exactly one importer, ever: desired 1; deployments stop the old task before starting the new one
        # (min 0 %, max 100 %); no autoscaling target is created for this service.
        self.importer = cluster.service(
            scope, "ScaleliteImporter", task_definition=importer_task, desired_count=1,
            min_healthy_percent=0, max_healthy_percent=100, description="Scalelite recording importer",
        )
        for background in (self.poller, self.importer):
            background.node.add_dependency(self.web.service)  # after the api has migrated the database

    @property
    def api_url(self) -> str:
        return api_url(self.environment.host)

    def _rails_container(
        self, task: ecs.TaskDefinition, name: str, size: Container, *, start: str, environment: dict[str, str],
        mounts: dict[str, bool], loadbalancer_secret: bool = False, prepare: str | None = None,
    ) -> ecs.ContainerDefinition:
        env = self.environment
        cache_env, cache_secrets = env.cache.settings()
        secrets = {
            "SECRET_KEY_BASE": ecs.Secret.from_secrets_manager(env.key_base),
            **database_secrets(env.database),
            **cache_secrets,
        }
        if loadbalancer_secret:
            secrets["LOADBALANCER_SECRET"] = ecs.Secret.from_secrets_manager(env.loadbalancer)
        container = task.add_container(
            name, container_name=name, image=ecs.ContainerImage.from_registry(size.image),
            cpu=size.cpu, memory_limit_mib=size.memory_mib, entry_point=ENTRY_POINT,
            command=[Prologue(database=True, redis=True).then(f"{prepare}\nexec {start}")] if prepare
            else Prologue(database=True, redis=True).command(start),
            # URL_HOST stays unset on the Rails containers: it turns on Rails' Host check, which rejects the
            # load balancer's health checks (they carry the task's IP as Host).
            environment={"RAILS_LOG_TO_STDOUT": "true", **RECORDING_ENV, **cache_env, **environment},
            secrets=secrets, logging=ecs.LogDrivers.aws_logs(stream_prefix="scalelite", log_group=self.log_group),
            essential=True,
        )
        env.recordings.mount(task, container, mounts)
        acknowledge_plain_environment(task)
        return container

    def _nginx_container(self, task: ecs.TaskDefinition, size: Container) -> ecs.ContainerDefinition:
        environment = {
            # TLS ends at the load balancer: the proxy template passes its X-Forwarded-Proto on to Rails.
            "NGINX_BEHIND_PROXY": "true",
            "BEHIND_PROXY": "true",  # the same switch in older nginx/start scripts
            "URL_HOST": self.environment.host,
            "SCALELITE_API_PORT": str(SCALELITE_API_PORT),
        }
        options: dict[str, object] = {}
        if self.cluster.fargate:
            options = {"entry_point": ENTRY_POINT, "command": [NGINX_LOCALHOST_START]}
        nginx = task.add_container(
            "nginx", container_name="nginx", image=ecs.ContainerImage.from_registry(size.image),
            cpu=size.cpu, memory_limit_mib=size.memory_mib, environment=environment,
            logging=ecs.LogDrivers.aws_logs(stream_prefix="scalelite", log_group=self.log_group), essential=True,
            port_mappings=[ecs.PortMapping(container_port=NGINX_PORT, host_port=self.cluster.host_port(NGINX_PORT))],
            **options,  # type: ignore[arg-type]
        )
        self.environment.recordings.mount(task, nginx, {"published": True})  # serves recordings, never writes them
        return nginx
