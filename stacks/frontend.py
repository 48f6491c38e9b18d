"""Frontend (scalable shape): Greenlight v3 and Scalelite on ECS behind one HTTPS-only load balancer.

- `<domain>` -> Greenlight (port 3000); `scalelite.<domain>` -> Scalelite's nginx (port 80), which proxies
  the API to the api container in the same task and serves published recordings from EFS.
- Scalelite's poller runs as one task without a load balancer; the recording importer as exactly one task
  (Scalelite forbids two: desired 1, a deployment stops the old task before starting the new one, and it is
  never autoscaled).
- Every secret reaches a container as an ECS secret; URLs that need a password are composed inside the
  container (cdk_constructs/container_command.py).
- Greenlight's first administrator is created once at deploy time by a one-off task (RunTaskOnce) with a
  generated password kept in Secrets Manager.

Only the api container prepares the database (`rake db:prepare` before its image's `bin/start`); poller and
importer start after the web service is stable, so they never race it on a fresh database.
"""

from __future__ import annotations

from aws_cdk import CfnOutput, Duration, Stack, Token
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_route53 as route53
from aws_cdk import aws_route53_targets as targets
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from cdk_constructs.container_command import ENTRY_POINT, NGINX_LOCALHOST_START, Prologue
from cdk_constructs.ecs_cluster import FrontendCluster, task_security_group
from cdk_constructs.https_alb import HttpsLoadBalancer
from cdk_constructs.nag import acknowledge
from cdk_constructs.run_task_once import RunTaskOnce
from cdk_constructs.web_service import Exposure, Scaling, WebService
from settings import Config, Container
from settings.stage_rules import log_removal_policy, log_retention
from stacks.interfaces import Data, Shared

GREENLIGHT_PORT = 3000
SCALELITE_API_PORT = 3000
NGINX_PORT = 80
GREENLIGHT_START = "./bin/start"  # the Greenlight v3 image's entrypoint (WORKDIR /usr/src/app)
SCALELITE_API_START = "bin/start"  # api image CMD, then puma (WORKDIR /srv/scalelite)
# Only the api prepares the database: `db:prepare` creates the schema on a fresh database and migrates an
# existing one (PostgreSQL advisory lock: several api tasks starting at once are safe). Newer api images'
# bin/start migrates too, older ones do not; running it here makes the schema independent of the image tag.
SCALELITE_API_PREPARE = "bundle exec rake db:prepare || exit 1"
SCALELITE_POLLER_START = "bin/start-poller"
SCALELITE_IMPORTER_START = "bin/start-recording-importer"
ADMIN_NAME = "Administrator"

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
# Characters left out of the generated admin password: everything a shell, a rake argument list
# (`task[a,b,c]`) or a URL would treat specially. What remains of the punctuation (#%+-.:=@^_~) is all in
# Greenlight's required-symbol class.
ADMIN_PASSWORD_EXCLUDE = " \"'`$\\,;&|<>()[]{}*?!/"


class FrontendStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: Config,
        vpc: ec2.IVpc,
        shared: Shared,
        data: Data,
        public_subnets: ec2.SubnetSelection | None = None,
        application_subnets: ec2.SubnetSelection | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        if config.environment.type != "scalable":
            raise ValueError("FrontendStack belongs to the scalable shape; the single shape runs Greenlight on "
                             "its BBB host (deployment.environment.type)")
        missing = {"spool", "work", "published", "unpublished"} - set(data.access_points)
        if missing:
            raise ValueError(f"Data.access_points lacks {sorted(missing)}; the data stack must provide all four")
        self.config = config
        self.shared = shared
        self.data = data
        names = config.names
        fe = config.frontend
        public = public_subnets or ec2.SubnetSelection(subnet_group_name="public")
        application = application_subnets or ec2.SubnetSelection(subnet_group_name="application")

        self.cluster = FrontendCluster(
            self, "Ecs", vpc=vpc, subnets=application, frontend=fe, notifications=shared.topic
        )
        self.lb = HttpsLoadBalancer(
            self, "Web", vpc=vpc, subnets=public, certificate=shared.certificate,
            log_expiry_days=config.log_retention_days, retain_logs=config.is_production_like,
        )

        # -- Greenlight ------------------------------------------------------------------------------------
        greenlight_logs = self._log_group("GreenlightLogs")
        greenlight_task = self.cluster.task_definition(
            self, "GreenlightTask", cpu=fe.greenlight.cpu, memory_mib=fe.greenlight.memory_mib
        )
        self._greenlight_container(greenlight_task, greenlight_logs, fe.greenlight,
                                   command=Prologue(database=True, redis=True).command(GREENLIGHT_START))
        greenlight_task.default_container.add_port_mappings(  # type: ignore[union-attr]
            ecs.PortMapping(container_port=GREENLIGHT_PORT, host_port=self._host_port(GREENLIGHT_PORT))
        )
        self.greenlight = WebService(
            self, "Greenlight", cluster=self.cluster, load_balancer=self.lb, task_definition=greenlight_task,
            description="Greenlight",
            exposure=Exposure(
                host=names.greenlight, priority=10, container_name="greenlight", container_port=GREENLIGHT_PORT,
                # /health_check with its database and Redis checks; its SMTP and BBB checks are switched off
                # (see _greenlight_container) so that SES or Scalelite trouble does not make ECS replace
                # healthy Greenlight tasks in a loop.
                health_check_path="/health_check",
                # bin/start waits for the database, migrates and precompiles assets before it listens.
                grace_period=Duration.minutes(10),
            ),
            scaling=Scaling(min_tasks=fe.greenlight_tasks, max_tasks=min(fe.greenlight_tasks * 3, 20)),
        )

        # -- Scalelite api + nginx -----------------------------------------------------------------------
        scalelite_logs = self._log_group("ScaleliteLogs")
        web_task = self.cluster.task_definition(
            self, "ScaleliteWebTask", cpu=fe.scalelite_api.cpu + fe.scalelite_nginx.cpu,
            memory_mib=fe.scalelite_api.memory_mib + fe.scalelite_nginx.memory_mib,
        )
        api = self._scalelite_container(
            web_task, "api", fe.scalelite_api, scalelite_logs, start=SCALELITE_API_START,
            environment={"SCALELITE_API_PORT": str(SCALELITE_API_PORT)}, loadbalancer_secret=True,
            prepare=SCALELITE_API_PREPARE,
            # publishRecordings/deleteRecordings move and remove recordings in both directories.
            mounts={"published": False, "unpublished": False},
        )
        api.add_port_mappings(ecs.PortMapping(container_port=SCALELITE_API_PORT))
        nginx = self._nginx_container(web_task, fe.scalelite_nginx, scalelite_logs)
        nginx.add_container_dependencies(ecs.ContainerDependency(
            container=api, condition=ecs.ContainerDependencyCondition.START
        ))
        if not self.cluster.fargate:
            nginx.add_link(api, "scalelite-api")  # bridge mode: the templates' proxy_pass host
        web_task.default_container = nginx
        self.scalelite = WebService(
            self, "Scalelite", cluster=self.cluster, load_balancer=self.lb, task_definition=web_task,
            description="Scalelite nginx",
            exposure=Exposure(
                host=names.scalelite, priority=20, container_name="nginx", container_port=NGINX_PORT,
                # nginx proxies /health_check to the api (database and Redis); no Host-header check there
                # because URL_HOST is not set on the api container.
                health_check_path="/health_check", grace_period=Duration.minutes(5),
            ),
            scaling=Scaling(min_tasks=fe.scalelite_api_tasks, max_tasks=min(fe.scalelite_api_tasks * 3, 20)),
        )

        # -- Scalelite poller and the one recording importer ------------------------------------------------
        poller_task = self.cluster.task_definition(
            self, "ScalelitePollerTask", cpu=fe.scalelite_poller.cpu, memory_mib=fe.scalelite_poller.memory_mib
        )
        self._scalelite_container(poller_task, "poller", fe.scalelite_poller, scalelite_logs,
                                  start=SCALELITE_POLLER_START, environment={}, mounts={})
        self.poller = self.cluster.service(
            self, "ScalelitePoller", task_definition=poller_task, desired_count=1,
            # One poller suffices and two do no harm (Scalelite docs): start the new one before stopping the old.
            min_healthy_percent=100, max_healthy_percent=200, description="Scalelite poller",
        )
        importer_task = self.cluster.task_definition(
            self, "ScaleliteImporterTask", cpu=fe.scalelite_importer.cpu,
            memory_mib=fe.scalelite_importer.memory_mib,
        )
        self._scalelite_container(
            importer_task, "importer", fe.scalelite_importer, scalelite_logs, start=SCALELITE_IMPORTER_START,
            # EFS (NFS) raises no inotify events: poll the spool directory.
            environment={"RECORDING_IMPORT_POLL": "true", "RECORDING_IMPORT_POLL_INTERVAL": "60"},
            mounts={"spool": False, "work": False, "published": False, "unpublished": False},
        )
        # Exactly one importer, ever: desired 1; deployments stop the old task before starting the new one
        # (min 0 %, max 100 %); no autoscaling target is created for this service.
        self.importer = self.cluster.service(
            self, "ScaleliteImporter", task_definition=importer_task, desired_count=1,
            min_healthy_percent=0, max_healthy_percent=100, description="Scalelite recording importer",
        )
        for background in (self.poller, self.importer):
            background.node.add_dependency(self.scalelite.service)  # after the api has migrated the database

        # -- network access to the data tier ---------------------------------------------------------------
        if self.cluster.fargate:
            for name, service in (("Greenlight", self.greenlight.service), ("Scalelite web", self.scalelite.service),
                                  ("Scalelite poller", self.poller), ("Scalelite importer", self.importer)):
                self._allow_data_access(name, service.connections,
                                        efs=service in (self.scalelite.service, self.importer))
        else:  # bridge mode: every task sends from the instances' group
            self._allow_data_access("ECS instances (Greenlight and Scalelite tasks)",
                                    self.cluster.task_connections(self.greenlight.service), efs=True)

        # -- Greenlight's first administrator --------------------------------------------------------------
        self.admin_secret = secretsmanager.Secret(
            self, "GreenlightAdminPassword",
            description=f"Greenlight administrator {config.operator_email}: password (created once at deploy)",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=24, require_each_included_type=True, exclude_characters=ADMIN_PASSWORD_EXCLUDE,
            ),
        )
        acknowledge(
            self.admin_secret, "SMG4",
            "The administrator's login password: Greenlight stores its own hash at creation, so rotating this "
            "secret would not change the login; the operator changes it in Greenlight",
        )
        self._admin(greenlight_logs)

        # -- DNS and outputs -------------------------------------------------------------------------------
        alias = route53.RecordTarget.from_alias(targets.LoadBalancerTarget(self.lb.alb))
        route53.ARecord(self, "GreenlightRecord", zone=shared.zone, record_name=names.greenlight, target=alias)
        route53.ARecord(self, "ScaleliteRecord", zone=shared.zone, record_name=names.scalelite, target=alias)
        CfnOutput(self, "GreenlightUrl", value=f"https://{names.greenlight}/", description="Greenlight")
        CfnOutput(self, "ScaleliteApiUrl", value=scalelite_api_url(config),
                  description="Scalelite's BigBlueButton API endpoint (what Greenlight and other front ends call)")
        CfnOutput(self, "AdminSecretName", value=self.admin_secret.secret_name,
                  description=f"Secrets Manager secret with the password of Greenlight's administrator "
                              f"{config.operator_email}")
        CfnOutput(self, "ScaleliteSecretName", value=secret_identifier(self, shared.secrets.scalelite_loadbalancer),
                  description="Secrets Manager secret (name, or ARN if the shared stack lets CloudFormation name "
                              "it) with Scalelite's LOADBALANCER_SECRET")

    # -- containers -----------------------------------------------------------------------------------------

    def _host_port(self, container_port: int) -> int:
        return container_port if self.cluster.fargate else 0  # 0: Docker picks a dynamic host port

    def _log_group(self, construct_id: str) -> logs.LogGroup:
        return logs.LogGroup(self, construct_id, retention=log_retention(self.config),
                             removal_policy=log_removal_policy(self.config))

    def _database_secrets(self, secret: secretsmanager.ISecret) -> dict[str, ecs.Secret]:
        fields = {"DB_USER": "username", "DB_PASSWORD": "password", "DB_HOST": "host", "DB_PORT": "port",
                  "DB_NAME": "dbname"}
        return {name: ecs.Secret.from_secrets_manager(secret, field) for name, field in fields.items()}

    def _cache(self) -> tuple[dict[str, str], dict[str, ecs.Secret]]:
        env = {"REDIS_HOST": self.data.cache_host, "REDIS_PORT": self.data.cache_port}
        return env, {"REDIS_PASSWORD": ecs.Secret.from_secrets_manager(self.data.cache_auth)}

    def _greenlight_settings(self) -> tuple[dict[str, str], dict[str, ecs.Secret]]:
        """Greenlight v3's environment (config/application.rb, config/environments/production.rb)."""
        mail_domain = self.shared.mail_from.rsplit("@", 1)[-1]
        cache_env, cache_secrets = self._cache()
        environment = {
            # Greenlight appends API calls to this by string concatenation: it must end with "/".
            "BIGBLUEBUTTON_ENDPOINT": scalelite_api_url(self.config),
            "RELATIVE_URL_ROOT": "/",  # served at the root of <domain>
            "PORT": str(GREENLIGHT_PORT),
            "RAILS_LOG_TO_STDOUT": "true",
            "SMTP_DOMAIN": mail_domain,
            "SMTP_AUTH": "login",
            "SMTP_STARTTLS_AUTO": "true",
            "SMTP_SENDER_EMAIL": self.shared.mail_from,
            "SMTP_SENDER_NAME": "Greenlight",
            # /health_check is the load balancer's probe: a failed SMTP login or an unreachable Scalelite
            # must not make ECS replace every Greenlight task (it would not fix either and drops sessions).
            "SMTP_HEALTH_CHECK_DISABLED": "true",
            "BBB_HEALTH_CHECK_DISABLED": "true",
            **cache_env,
        }
        smtp = self.shared.smtp
        secrets = {
            "SECRET_KEY_BASE": ecs.Secret.from_secrets_manager(self.shared.secrets.greenlight_key_base),
            "BIGBLUEBUTTON_SECRET": ecs.Secret.from_secrets_manager(self.shared.secrets.scalelite_loadbalancer),
            "SMTP_SERVER": ecs.Secret.from_secrets_manager(smtp, "host"),
            "SMTP_PORT": ecs.Secret.from_secrets_manager(smtp, "port"),
            "SMTP_USERNAME": ecs.Secret.from_secrets_manager(smtp, "username"),
            "SMTP_PASSWORD": ecs.Secret.from_secrets_manager(smtp, "password"),
            **self._database_secrets(self.data.greenlight_db),
            **cache_secrets,
        }
        return environment, secrets

    def _greenlight_container(
        self, task: ecs.TaskDefinition, log_group: logs.ILogGroup, size: Container, *, command: list[str],
        extra_environment: dict[str, str] | None = None, extra_secrets: dict[str, ecs.Secret] | None = None,
    ) -> ecs.ContainerDefinition:
        environment, secrets = self._greenlight_settings()
        container = task.add_container(
            "greenlight", container_name="greenlight", image=ecs.ContainerImage.from_registry(size.image),
            cpu=size.cpu, memory_limit_mib=size.memory_mib, entry_point=ENTRY_POINT, command=command,
            environment={**environment, **(extra_environment or {})}, secrets={**secrets, **(extra_secrets or {})},
            logging=ecs.LogDrivers.aws_logs(stream_prefix="greenlight", log_group=log_group),
            essential=True,
        )
        acknowledge(task, "ECS2", "Plain environment holds only non-secret settings (host names, ports, flags, "
                    "paths); every password, token and key arrives via Secrets (asserted by the infra tests)")
        return container

    def _scalelite_container(
        self, task: ecs.TaskDefinition, name: str, size: Container, log_group: logs.ILogGroup, *, start: str,
        environment: dict[str, str], mounts: dict[str, bool], loadbalancer_secret: bool = False,
        prepare: str | None = None,
    ) -> ecs.ContainerDefinition:
        cache_env, cache_secrets = self._cache()
        secrets = {
            "SECRET_KEY_BASE": ecs.Secret.from_secrets_manager(self.shared.secrets.scalelite_key_base),
            **self._database_secrets(self.data.scalelite_db),
            **cache_secrets,
        }
        if loadbalancer_secret:
            secrets["LOADBALANCER_SECRET"] = ecs.Secret.from_secrets_manager(
                self.shared.secrets.scalelite_loadbalancer
            )
        container = task.add_container(
            name, container_name=name, image=ecs.ContainerImage.from_registry(size.image),
            cpu=size.cpu, memory_limit_mib=size.memory_mib, entry_point=ENTRY_POINT,
            command=[Prologue(database=True, redis=True).then(f"{prepare}\nexec {start}")] if prepare
            else Prologue(database=True, redis=True).command(start),
            # URL_HOST stays unset on the Rails containers: it turns on Rails' Host check, which rejects the
            # load balancer's health checks (they carry the task's IP as Host).
            environment={"RAILS_LOG_TO_STDOUT": "true", **RECORDING_ENV, **cache_env, **environment},
            secrets=secrets, logging=ecs.LogDrivers.aws_logs(stream_prefix="scalelite", log_group=log_group),
            essential=True,
        )
        self._mount_recordings(task, container, mounts)
        acknowledge(task, "ECS2", "Plain environment holds only non-secret settings (host names, ports, flags, "
                    "paths); every password, token and key arrives via Secrets (asserted by the infra tests)")
        return container

    def _nginx_container(
        self, task: ecs.TaskDefinition, size: Container, log_group: logs.ILogGroup
    ) -> ecs.ContainerDefinition:
        environment = {
            # TLS ends at the load balancer: the proxy template passes its X-Forwarded-Proto on to Rails.
            "NGINX_BEHIND_PROXY": "true",
            "BEHIND_PROXY": "true",  # the same switch in older nginx/start scripts
            "URL_HOST": self.config.names.scalelite,
            "SCALELITE_API_PORT": str(SCALELITE_API_PORT),
        }
        options: dict[str, object] = {}
        if self.cluster.fargate:
            options = {"entry_point": ENTRY_POINT, "command": [NGINX_LOCALHOST_START]}
        nginx = task.add_container(
            "nginx", container_name="nginx", image=ecs.ContainerImage.from_registry(size.image),
            cpu=size.cpu, memory_limit_mib=size.memory_mib, environment=environment,
            logging=ecs.LogDrivers.aws_logs(stream_prefix="scalelite", log_group=log_group), essential=True,
            port_mappings=[ecs.PortMapping(container_port=NGINX_PORT, host_port=self._host_port(NGINX_PORT))],
            **options,  # type: ignore[arg-type]
        )
        self._mount_recordings(task, nginx, {"published": True})  # serves recordings, never writes them
        return nginx

    def _mount_recordings(self, task: ecs.TaskDefinition, container: ecs.ContainerDefinition,
                          mounts: dict[str, bool]) -> None:
        """Mount each named access point at Scalelite's directory (True = read-only), over TLS with IAM."""
        fs = self.data.file_system
        for name, read_only in mounts.items():
            point = self.data.access_points[name]
            volume = f"recordings-{name}"
            if volume not in self._volumes_of(task):
                task.add_volume(name=volume, efs_volume_configuration=ecs.EfsVolumeConfiguration(
                    file_system_id=fs.file_system_id, transit_encryption="ENABLED",
                    authorization_config=ecs.AuthorizationConfig(access_point_id=point.access_point_id, iam="ENABLED"),
                ))
                self._volumes_of(task).add(volume)
            container.add_mount_points(ecs.MountPoint(
                container_path=RECORDING_DIRS[name], source_volume=volume, read_only=read_only
            ))
            actions = ["elasticfilesystem:ClientMount"] + ([] if read_only else ["elasticfilesystem:ClientWrite"])
            task.add_to_task_role_policy(iam.PolicyStatement(
                actions=actions, resources=[fs.file_system_arn],
                conditions={"StringEquals": {"elasticfilesystem:AccessPointArn": point.access_point_arn}},
            ))

    _task_volumes: dict[str, set[str]]

    def _volumes_of(self, task: ecs.TaskDefinition) -> set[str]:
        if not hasattr(self, "_task_volumes"):
            self._task_volumes = {}
        return self._task_volumes.setdefault(task.node.path, set())

    # -- grants ---------------------------------------------------------------------------------------------

    def _allow_data_access(self, name: str, tasks: ec2.Connections, *, efs: bool) -> None:
        # allow_to_default_port puts the ingress rule on the data tier's group into THIS stack, so the data
        # stack never references the frontend (no cycle) and the rule lives with the service that needs it.
        # PostgreSQL: each application reads and writes its own database.
        tasks.allow_to_default_port(self.data.database, f"{name} tasks: PostgreSQL")
        # Redis/Valkey (TLS + AUTH): Greenlight's Action Cable and cache, Scalelite's meeting state.
        tasks.allow_to_default_port(self.data.cache_connections, f"{name} tasks: Redis")
        if efs:  # NFS over TLS: Scalelite reads and writes recordings.
            tasks.allow_to_default_port(self.data.file_system, f"{name} tasks: EFS")

    def _admin(self, greenlight_logs: logs.ILogGroup) -> None:
        fe = self.config.frontend
        task = self.cluster.task_definition(
            self, "GreenlightAdminTask", cpu=fe.greenlight.cpu, memory_mib=fe.greenlight.memory_mib
        )
        self._greenlight_container(
            task, greenlight_logs, fe.greenlight, command=admin_command(),
            extra_environment={"ADMIN_NAME": ADMIN_NAME, "ADMIN_EMAIL": self.config.operator_email},
            extra_secrets={"ADMIN_PASSWORD": ecs.Secret.from_secrets_manager(self.admin_secret)},
        )
        security_group = None
        if self.cluster.fargate:
            security_group = task_security_group(
                self, "GreenlightAdminSecurityGroup", self.cluster.cluster.vpc, "One-off Greenlight admin task"
            )
            self._allow_data_access("Greenlight admin", ec2.Connections(security_groups=[security_group]),
                                    efs=False)
        self.admin = RunTaskOnce(
            self, "GreenlightAdmin", deployment=self.config.deployment, cluster=self.cluster, task_definition=task,
            container_name="greenlight", command=admin_command(), admin_email=self.config.operator_email,
            log_group=greenlight_logs, log_stream_prefix="greenlight", security_group=security_group,
        )
        # Greenlight's own start migrates the database and seeds the roles admin:create needs.
        self.admin.node.add_dependency(self.greenlight.service)


def secret_identifier(scope: Construct, secret: secretsmanager.ISecret) -> str:
    """The secret's name, or its ARN when it lives in another stack under a generated name (both work as
    `--secret-id`): such a name is only known as a split of the ARN, which cfn-lint rejects in an Output
    when the reference is a (weak) cross-stack one."""
    if Stack.of(secret) is Stack.of(scope) or not Token.is_unresolved(secret.secret_name):
        return secret.secret_name
    return secret.secret_arn


def scalelite_api_url(config: Config) -> str:
    return f"https://{config.names.scalelite}/bigbluebutton/api/"


def admin_command() -> list[str]:
    """Create the administrator unless an account with ADMIN_EMAIL exists; never print the password.

    Idempotent by construction: `rails runner` exits 3 if the account exists (done), 4 if not (create it);
    after `admin:create` the account must exist, whatever the rake task printed or returned.
    """
    exists = ("bundle exec rails runner 'exit(User.exists?([\"lower(email) = ?\", "
              "ENV.fetch(\"ADMIN_EMAIL\").downcase]) ? 3 : 4)'")
    script = "\n".join([
        "rc=0",
        f"{exists} || rc=$?",
        'if [ "$rc" -eq 3 ]; then echo "greenlight-admin: $ADMIN_EMAIL already has an account, nothing to do"; '
        "exit 0; fi",
        'if [ "$rc" -ne 4 ]; then echo "greenlight-admin: cannot query the users table (exit $rc)" >&2; '
        "exit 1; fi",
        "rc=0",
        'out=$(bundle exec rake "admin:create[$ADMIN_NAME,$ADMIN_EMAIL,$ADMIN_PASSWORD]" 2>&1) || rc=$?',
        # The task prints the account it made, password included: keep that line out of the log.
        'printf "%s\\n" "$out" | grep -vF -- "$ADMIN_PASSWORD" || true',
        "rc=0",
        f"{exists} || rc=$?",
        'if [ "$rc" -eq 3 ]; then echo "greenlight-admin: created the administrator $ADMIN_EMAIL"; exit 0; fi',
        'echo "greenlight-admin: admin:create did not create $ADMIN_EMAIL (see above)" >&2',
        "exit 1",
    ])
    return [Prologue(database=True, redis=True).then(script)]
