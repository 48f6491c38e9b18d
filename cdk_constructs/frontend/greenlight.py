"""Greenlight v3 on ECS behind the shared HTTPS load balancer, and its first administrator.

`<domain>` -> Greenlight (port 3000). Every secret reaches the container as an ECS secret; the database and
Redis URLs are composed inside the container (cdk_constructs/container_command.py). The first administrator
is created once at deploy time by a one-off task (RunTaskOnce) with a generated password kept in Secrets
Manager.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from cdk_constructs.container_command import ENTRY_POINT, Prologue
from cdk_constructs.ecs_cluster import FrontendCluster, task_security_group
from cdk_constructs.frontend.tasks import Cache, acknowledge_plain_environment, database_secrets
from cdk_constructs.https_alb import HttpsLoadBalancer
from cdk_constructs.nag import acknowledge
from cdk_constructs.run_task_once import RunTaskOnce
from cdk_constructs.web_service import Exposure, Scaling, WebService
from settings import Container, Deployment
from settings.stage_rules import log_removal_policy, log_retention

GREENLIGHT_PORT = 3000
GREENLIGHT_START = "./bin/start"  # the Greenlight v3 image's entrypoint (WORKDIR /usr/src/app)
ADMIN_NAME = "Administrator"
# Characters left out of the generated admin password: everything a shell, a rake argument list
# (`task[a,b,c]`) or a URL would treat specially. What remains of the punctuation (#%+-.:=@^_~) is all in
# Greenlight's required-symbol class.
ADMIN_PASSWORD_EXCLUDE = " \"'`$\\,;&|<>()[]{}*?!/"


@dataclass(frozen=True, kw_only=True)
class GreenlightEnvironment:
    """What Greenlight's containers are told: where BBB (Scalelite) and SES are, and the secrets."""

    bbb_endpoint: str  # Scalelite's API URL; Greenlight appends API calls to it, so it ends with "/"
    mail_from: str  # sender address inside the SES-verified domain
    key_base: secretsmanager.ISecret  # Rails SECRET_KEY_BASE
    bbb_secret: secretsmanager.ISecret  # Scalelite's LOADBALANCER_SECRET: Greenlight's BBB API secret
    smtp: secretsmanager.ISecret  # JSON {"username", "password", "host", "port"} for SES SMTP
    database: secretsmanager.ISecret  # RDS-shaped: Greenlight's own user and database
    cache: Cache

    def settings(self) -> tuple[dict[str, str], dict[str, ecs.Secret]]:
        """Greenlight v3's environment (config/application.rb, config/environments/production.rb)."""
        mail_domain = self.mail_from.rsplit("@", 1)[-1]
        cache_env, cache_secrets = self.cache.settings()
        environment = {
            # Greenlight appends API calls to this by string concatenation: it must end with "/".
            "BIGBLUEBUTTON_ENDPOINT": self.bbb_endpoint,
            "RELATIVE_URL_ROOT": "/",  # served at the root of <domain>
            "PORT": str(GREENLIGHT_PORT),
            "RAILS_LOG_TO_STDOUT": "true",
            "SMTP_DOMAIN": mail_domain,
            "SMTP_AUTH": "login",
            "SMTP_STARTTLS_AUTO": "true",
            "SMTP_SENDER_EMAIL": self.mail_from,
            "SMTP_SENDER_NAME": "Greenlight",
            # /health_check is the load balancer's probe: a failed SMTP login or an unreachable Scalelite
            # must not make ECS replace every Greenlight task (it would not fix either and drops sessions).
            "SMTP_HEALTH_CHECK_DISABLED": "true",
            "BBB_HEALTH_CHECK_DISABLED": "true",
            **cache_env,
        }
        smtp = self.smtp
        secrets = {
            "SECRET_KEY_BASE": ecs.Secret.from_secrets_manager(self.key_base),
            "BIGBLUEBUTTON_SECRET": ecs.Secret.from_secrets_manager(self.bbb_secret),
            "SMTP_SERVER": ecs.Secret.from_secrets_manager(smtp, "host"),
            "SMTP_PORT": ecs.Secret.from_secrets_manager(smtp, "port"),
            "SMTP_USERNAME": ecs.Secret.from_secrets_manager(smtp, "username"),
            "SMTP_PASSWORD": ecs.Secret.from_secrets_manager(smtp, "password"),
            **database_secrets(self.database),
            **cache_secrets,
        }
        return environment, secrets


class Greenlight:
    """Greenlight's log group, task definition and web service, built into `scope` (see the package doc)."""

    def __init__(
        self,
        scope: Construct,
        *,
        cluster: FrontendCluster,
        load_balancer: HttpsLoadBalancer,
        container: Container,
        tasks: int,
        host: str,
        environment: GreenlightEnvironment,
        deployment: Deployment,
    ) -> None:
        self.scope, self.cluster, self.container, self.environment = scope, cluster, container, environment
        self.log_group = logs.LogGroup(scope, "GreenlightLogs", retention=log_retention(deployment),
                                       removal_policy=log_removal_policy(deployment))
        cluster.allow_task_logs(self.log_group)
        task = cluster.task_definition(scope, "GreenlightTask", cpu=container.cpu, memory_mib=container.memory_mib)
        self._container(task, command=Prologue(database=True, redis=True).command(GREENLIGHT_START))
        task.default_container.add_port_mappings(  # type: ignore[union-attr]
            ecs.PortMapping(container_port=GREENLIGHT_PORT, host_port=cluster.host_port(GREENLIGHT_PORT))
        )
        self.web = WebService(
            scope, "Greenlight", cluster=cluster, load_balancer=load_balancer, task_definition=task,
            description="Greenlight",
            exposure=Exposure(
                host=host, priority=10, container_name="greenlight", container_port=GREENLIGHT_PORT,
                # /health_check with its database and Redis checks; its SMTP and BBB checks are switched off
                # (GreenlightEnvironment) so that SES or Scalelite trouble does not make ECS replace healthy
                # Greenlight tasks in a loop.
                health_check_path="/health_check",
                # bin/start waits for the database, migrates and precompiles assets before it listens.
                grace_period=Duration.minutes(10),
            ),
            scaling=Scaling(min_tasks=tasks, max_tasks=min(tasks * 3, 20)),
        )

    @property
    def service(self) -> ecs.BaseService:
        return self.web.service

    def add_first_admin(
        self, *, operator_email: str, deployment: Deployment,
        allow_data_access: Callable[[str, ec2.Connections], None],
    ) -> RunTaskOnce:
        """The administrator `operator_email`, created once by a one-off task after Greenlight's own start has
        migrated the database; `allow_data_access` opens the data tier to the task (Fargate only)."""
        scope, cluster = self.scope, self.cluster
        self.admin_secret = secretsmanager.Secret(
            scope, "GreenlightAdminPassword",
            description=f"Greenlight administrator {operator_email}: password (created once at deploy)",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=24, require_each_included_type=True, exclude_characters=ADMIN_PASSWORD_EXCLUDE,
            ),
        )
        acknowledge(
            self.admin_secret, "SMG4",
            "The administrator's login password: Greenlight stores its own hash at creation, so rotating this "
            "secret would not change the login; the operator changes it in Greenlight",
        )
        task = cluster.task_definition(
            scope, "GreenlightAdminTask", cpu=self.container.cpu, memory_mib=self.container.memory_mib
        )
        self._container(
            task, command=admin_command(),
            extra_environment={"ADMIN_NAME": ADMIN_NAME, "ADMIN_EMAIL": operator_email},
            extra_secrets={"ADMIN_PASSWORD": ecs.Secret.from_secrets_manager(self.admin_secret)},
        )
        security_group = None
        if cluster.fargate:
            security_group = task_security_group(
                scope, "GreenlightAdminSecurityGroup", cluster.cluster.vpc, "One-off Greenlight admin task"
            )
            allow_data_access("Greenlight admin", ec2.Connections(security_groups=[security_group]))
        admin = RunTaskOnce(
            scope, "GreenlightAdmin", deployment=deployment, cluster=cluster, task_definition=task,
            container_name="greenlight", command=admin_command(), admin_email=operator_email,
            log_group=self.log_group, log_stream_prefix="greenlight", security_group=security_group,
        )
        # Greenlight's own start migrates the database and seeds the roles admin:create needs.
        admin.node.add_dependency(self.service)
        return admin

    def _container(
        self, task: ecs.TaskDefinition, *, command: list[str], extra_environment: dict[str, str] | None = None,
        extra_secrets: dict[str, ecs.Secret] | None = None,
    ) -> ecs.ContainerDefinition:
        environment, secrets = self.environment.settings()
        size = self.container
        container = task.add_container(
            "greenlight", container_name="greenlight", image=ecs.ContainerImage.from_registry(size.image),
            cpu=size.cpu, memory_limit_mib=size.memory_mib, entry_point=ENTRY_POINT, command=command,
            environment={**environment, **(extra_environment or {})}, secrets={**secrets, **(extra_secrets or {})},
            logging=ecs.LogDrivers.aws_logs(stream_prefix="greenlight", log_group=self.log_group),
            essential=True,
        )
        acknowledge_plain_environment(task)
        return container


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
