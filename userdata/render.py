"""User data for the BBB and TURN hosts: a small stub plus a bootstrap bundle shipped as a CDK asset.

EC2 caps user data at 16 KB, and the bootstraps (scripts, unit files, helpers) are several times that, so
the user data is a stub that writes the host's parameters to /etc/bbb-on-aws/params.env, downloads the
bundle from S3, checks it against the SHA-256 computed here at synth time and runs it. The bundle is an
uncompressed tar with fixed metadata, so the same sources always give the same bytes and the same user data
(no launch template change, hence no instance refresh, unless a script changed).

A stack uses it like this::

    bundle = s3_assets.Asset(self, "BbbBootstrap", path=str(write_bundle("bbb", outdir)))
    user_data = render_bbb_user_data(BbbParams(..., bootstrap_bundle=S3Object(bundle.s3_bucket_name,
                                                                              bundle.s3_object_key), ...))
    ec2.UserData.custom(user_data)

Parameters may be CDK tokens (`${Token[...]}`): they are shell-quoted like any value and resolved by
CloudFormation. Nothing secret is ever a parameter, only Secrets Manager ARNs.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import shlex
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import tomllib

import contract

Role = Literal["bbb", "turn", "proxy"]

USERDATA_DIR = Path(__file__).resolve().parent
REPO_DIR = USERDATA_DIR.parent

# EC2 rejects user data above 16 KB; the stub must stay far below, tokens resolved.
USER_DATA_LIMIT = 16 * 1024
# What one unresolved token may grow to once CloudFormation substitutes it (an ARN, a bucket name...).
TOKEN_ALLOWANCE = 256

# bbb-install has no release tags, only release branches; pin with bbb_install_sha256 after reviewing it.
BBB_INSTALL_URL = "https://raw.githubusercontent.com/bigbluebutton/bbb-install/v3.0.x-release/bbb-install.sh"
# Scalelite release whose bigbluebutton/scalelite_post_publish.rb is installed (match the stack's images).
SCALELITE_REF = "v1.6.5"
# Signing key of AWS's CloudWatch agent packages (CloudWatch user guide, "Verify the signature").
CLOUDWATCH_AGENT_KEY_FINGERPRINT = "937616F3450B7D806CBD9725D58167303B789C72"
# The relay's active-allocations gauge on /metrics (relay/ops/metrics.py).
ALLOCATIONS_METRIC = "turn_allocations"

_TOKEN = re.compile(r"\$\{Token\[[^\]]+\]\}")
_PATTERNS = {
    "environment": (r"[a-z][a-z0-9-]{1,18}[a-z0-9]", "3-20 lowercase letters, digits or '-'"),
    "dns": (r"(?=.{4,200}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}", "a lowercase DNS name"),
    "region": (r"[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d", "an AWS region such as eu-west-1"),
    "secret_arn": (
        r"arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+",
        "a Secrets Manager secret ARN",
    ),
    "bucket": (r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", "an S3 bucket name"),
    "key": (r"[A-Za-z0-9._/-]{1,1024}", "an S3 object key of letters, digits, '.', '_', '/' or '-'"),
    "log_group": (r"[A-Za-z0-9_/.#-]{1,512}", "a CloudWatch Logs group name"),
    "email": (r"[^@\s'\"]+@[^@\s'\"]+\.[a-z]{2,}", "an e-mail address"),
    "fingerprint": (r"[0-9A-F]{40}", "40 upper-case hex digits"),
    "sha256": (r"[0-9a-f]{64}", "64 lower-case hex digits"),
    "https_url": (r"https://[A-Za-z0-9._~:/?#@!$&()*+,;=%-]+", "an https:// URL"),
    "bbb_version": (r"jammy-30\d", "a BigBlueButton 3.0 version such as jammy-300 (bbb-install v3.0)"),
    "git_ref": (r"[A-Za-z0-9._-]{1,64}", "a git tag such as v1.6.5"),
    "file_system": (r"fs-[0-9a-f]{8,40}", "an EFS file system id"),
    "access_point": (r"fsap-[0-9a-f]{8,40}", "an EFS access point id"),
    "wheel": (
        r"bbb_turn_relay-[A-Za-z0-9_.+!]+-[A-Za-z0-9_.]+-[A-Za-z0-9_.]+-[A-Za-z0-9_.]+\.whl",
        "the relay wheel's file name, e.g. bbb_turn_relay-0.1.0-cp310-abi3-linux_x86_64.whl",
    ),
    "metric": (r"[a-zA-Z_:][a-zA-Z0-9_:]*", "a Prometheus metric name"),
}


class UserDataError(ValueError):
    """Invalid parameters; the message lists every problem, one per line."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid user-data parameters:\n" + "\n".join(f"  - {p}" for p in problems))


@dataclass(frozen=True)
class S3Object:
    bucket: str
    key: str


@dataclass(frozen=True)
class EfsSpool:
    """The Scalelite recordings spool: EFS file system and its spool access point."""

    file_system_id: str
    access_point_id: str


@dataclass(frozen=True, kw_only=True)
class HostParams:
    environment: str  # environment.name, also the metrics namespace BBBOnAWS/<environment>
    domain: str  # domain.name
    region: str
    bootstrap_bundle: S3Object  # the asset made from write_bundle(role, ...)
    system_log_group: str
    application_log_group: str
    cloudwatch_agent_key_fingerprint: str = CLOUDWATCH_AGENT_KEY_FINGERPRINT
    ready_wait_seconds: int = 1800  # after the install, until the host answers; then the bootstrap fails


@dataclass(frozen=True, kw_only=True)
class BbbParams(HostParams):
    turn_secret_arn: str
    turn_credential_ttl: int = contract.TURN_CREDENTIAL_TTL_SECONDS
    operator_email: str  # Let's Encrypt
    bbb_secret_arn: str  # the fleet-wide BBB API secret
    single: bool = False  # the single shape: this host is <domain> and runs Greenlight (bbb-install -g)
    spool: EfsSpool | None = None  # required for the scalable fleet, absent for single
    cluster_proxy: bool = False  # apply seed 001's BBB-side settings for bbb-proxy.<domain>
    bbb_install_url: str = BBB_INSTALL_URL
    bbb_install_sha256: str | None = None
    bbb_version: str = "jammy-300"
    scalelite_ref: str = SCALELITE_REF
    dns_wait_seconds: int = 1200  # until <fqdn> resolves to this host on the zone's name servers
    load_weights: str | None = None  # JSON of bbb.loadWeights for bbb/load_figure.py (LOAD_WEIGHTS)
    # The fleet's wildcard certificate (cdk_constructs/certificates): installed instead of bbb-install's Let's
    # Encrypt request. None: bbb-install asks Let's Encrypt (the single host).
    certificate_secret_arn: str | None = None


@dataclass(frozen=True, kw_only=True)
class TurnParams(HostParams):
    turn_secret_arn: str
    turn_credential_ttl: int = contract.TURN_CREDENTIAL_TTL_SECONDS
    relay_wheel: S3Object  # the wheel asset
    relay_wheel_filename: str  # e.g. bbb_turn_relay-0.1.0-cp310-abi3-linux_x86_64.whl (the asset key loses it)
    min_port: int = 49152
    max_port: int = 65535
    total_quota: int = 0
    user_quota: int = 0
    max_bps: int = 0
    drain_timeout_seconds: int = 3600
    allocations_metric: str = ALLOCATIONS_METRIC
    ready_wait_seconds: int = 600


@dataclass(frozen=True, kw_only=True)
class ProxyParams(HostParams):
    """The optional cluster proxy host (seed 001), behind the load balancer bbb-proxy.<domain> points to."""

    ready_wait_seconds: int = 600


# --- The bundle -------------------------------------------------------------------------------------------


def relay_constraints(repo: Path = REPO_DIR) -> str:
    """pip constraints pinning the relay's runtime dependencies to requirements-dev.txt's versions."""
    project = tomllib.loads((repo / "relay" / "pyproject.toml").read_text())["project"]
    wanted = list(project.get("dependencies", [])) + list(project.get("optional-dependencies", {}).get("fast", []))
    pins: dict[str, str] = {}
    for line in (repo / "requirements-dev.txt").read_text().splitlines():
        match = re.match(r"^\s*([A-Za-z0-9._-]+)(\[[^\]]*\])?==([^\s;#]+)", line)
        if match:
            pins[_normalise(match.group(1))] = match.group(3)
    lines, problems = [], []
    for requirement in wanted:
        name = _normalise(re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0])
        if name in pins:
            lines.append(f"{name}=={pins[name]}")
        else:
            problems.append(f"relay dependency {name!r} has no pin in requirements-dev.txt; add {name}==<version>")
    if problems:
        raise UserDataError(problems)
    return "# Generated by userdata/render.py from requirements-dev.txt.\n" + "\n".join(sorted(lines)) + "\n"


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _bundle_files(role: Role) -> Iterator[tuple[str, bytes, int]]:
    for folder in ("common", role):
        for path in sorted((USERDATA_DIR / folder).rglob("*")):
            if path.is_dir() or "__pycache__" in path.parts or path.suffix == ".pyc":
                continue
            mode = 0o755 if path.stat().st_mode & 0o100 else 0o644
            yield path.relative_to(USERDATA_DIR).as_posix(), path.read_bytes(), mode
    if role == "turn":
        yield "turn/relay-constraints.txt", relay_constraints().encode(), 0o644


def bundle_bytes(role: Role) -> bytes:
    """The bootstrap bundle: common/ and <role>/ as a tar with fixed owners, modes and times."""
    if role not in ("bbb", "turn", "proxy"):
        raise UserDataError([f"bundle role must be 'bbb', 'turn' or 'proxy', not {role!r}"])
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        directories: set[str] = set()
        for name, data, mode in sorted(_bundle_files(role)):
            parts = name.split("/")
            for depth in range(1, len(parts)):
                directory = "/".join(parts[:depth])
                if directory not in directories:
                    directories.add(directory)
                    tar.addfile(_tar_info(directory, tarfile.DIRTYPE, 0o755, 0))
            tar.addfile(_tar_info(name, tarfile.REGTYPE, mode, len(data)), io.BytesIO(data))
    return buffer.getvalue()


def _tar_info(name: str, kind: bytes, mode: int, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size = kind, mode, size
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "root", "root"
    return info


def bundle_sha256(role: Role) -> str:
    return hashlib.sha256(bundle_bytes(role)).hexdigest()


def write_bundle(role: Role, directory: Path | str) -> Path:
    """Write the bundle for `role` into `directory` (named by its hash) and return its path."""
    data = bundle_bytes(role)
    path = Path(directory) / f"bbb-on-aws-{role}-{hashlib.sha256(data).hexdigest()[:16]}.tar"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_bytes() != data:
        path.write_bytes(data)
    return path


# --- Validation -------------------------------------------------------------------------------------------


def _is_token(value: str) -> bool:
    return bool(_TOKEN.search(value))


def _check(problems: list[str], name: str, value: str, kind: str) -> None:
    pattern, meaning = _PATTERNS[kind]
    if not isinstance(value, str):
        problems.append(f"{name} must be a string ({meaning}), got {type(value).__name__}")
    elif "\n" in value or "\r" in value or "\0" in value:
        problems.append(f"{name} must be a single line")
    elif not _is_token(value) and not re.fullmatch(pattern, value):
        problems.append(f"{name}={value!r} is not {meaning}")


def _json_object(text: str) -> bool:
    try:
        return "\n" not in text and isinstance(json.loads(text), dict)
    except ValueError:
        return False


def _check_int(problems: list[str], name: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        problems.append(f"{name}={value!r} must be a whole number from {low} to {high}")


def _check_common(problems: list[str], params: HostParams) -> None:
    _check(problems, "environment", params.environment, "environment")
    _check(problems, "domain", params.domain, "dns")
    _check(problems, "region", params.region, "region")
    _check(problems, "bootstrap_bundle.bucket", params.bootstrap_bundle.bucket, "bucket")
    _check(problems, "bootstrap_bundle.key", params.bootstrap_bundle.key, "key")
    _check(problems, "system_log_group", params.system_log_group, "log_group")
    _check(problems, "application_log_group", params.application_log_group, "log_group")
    _check(problems, "cloudwatch_agent_key_fingerprint", params.cloudwatch_agent_key_fingerprint, "fingerprint")
    _check_int(problems, "ready_wait_seconds", params.ready_wait_seconds, 60, 7200)


def local_port_range(min_port: int, max_port: int) -> tuple[int, int]:
    """Ephemeral ports for the TURN host, outside the relay range (contract.ephemeral_port_range)."""
    window = contract.ephemeral_port_range(min_port, max_port)
    if window is None:
        raise UserDataError([
            f"relay ports {min_port}-{max_port} leave fewer than {contract.EPHEMERAL_PORTS_MINIMUM} ephemeral "
            "ports for the host; narrow deployment.turn.relayPorts (e.g. 49152-65535)"
        ])
    return window


# --- Rendering --------------------------------------------------------------------------------------------

_STUB = """#!/bin/bash
# bbb-on-aws user data: {what}.
# Fetches the bootstrap bundle (a CDK asset), checks its SHA-256 and runs it.
# Below are parameters only: no secret is ever here, the host reads them from Secrets Manager by ARN.
set -euo pipefail
umask 022
mkdir -p /var/log/bbb-on-aws /etc/bbb-on-aws /opt/bbb-on-aws
exec > >(tee -a /var/log/bbb-on-aws/bootstrap.log) 2>&1
cat >/etc/bbb-on-aws/params.env <<'BBB_ON_AWS_PARAMS'
{params}
BBB_ON_AWS_PARAMS
# shellcheck source=/dev/null
source /etc/bbb-on-aws/params.env
export PATH="$PATH:/snap/bin" AWS_REGION AWS_DEFAULT_REGION="$AWS_REGION"
for attempt in 1 2 3 4 5; do
  command -v aws >/dev/null && break
  echo "installing the AWS CLI (attempt $attempt)"
  if command -v snap >/dev/null; then
    snap wait system seed.loaded || true
    snap install aws-cli --classic && continue
  fi
  if ! {{ apt-get -o DPkg::Lock::Timeout=600 update -q &&
    apt-get -o DPkg::Lock::Timeout=600 install -y -q awscli; }}; then
    sleep $((attempt * 10))
  fi
done
bundle=/opt/bbb-on-aws/bundle.tar
for attempt in 1 2 3 4 5; do
  aws s3 cp --only-show-errors "s3://$BUNDLE_BUCKET/$BUNDLE_KEY" "$bundle" && break
  echo "bundle download failed (attempt $attempt)"
  sleep $((attempt * 5))
done
if ! echo "{sha256}  $bundle" | sha256sum --check --quiet -; then
  echo "ERROR: s3://$BUNDLE_BUCKET/$BUNDLE_KEY is missing or is not the bundle this user data was made for"
  exit 1
fi
tar -xf "$bundle" -C /opt/bbb-on-aws --no-same-owner
exec /opt/bbb-on-aws/{folder}/bootstrap.sh
"""


def _params_block(values: dict[str, str | int]) -> str:
    lines = []
    for name, value in values.items():
        text = str(value)
        lines.append(f"{name}={shlex.quote(text)}")
    return "\n".join(lines)


def _render(what: str, folder: str, role: Role, values: dict[str, str | int]) -> str:
    text = _STUB.format(what=what, folder=folder, sha256=bundle_sha256(role), params=_params_block(values))
    check_size(text)
    return text


def resolved_size_bound(user_data: str) -> int:
    """Upper bound of the user data's size once CloudFormation has substituted every token."""
    tokens = _TOKEN.findall(user_data)
    return len(user_data.encode()) - sum(len(t) for t in tokens) + TOKEN_ALLOWANCE * len(tokens)


def check_size(user_data: str) -> None:
    """EC2's 16 KB limit applies to the raw user data; stay under it even counted base64-encoded."""
    bound = resolved_size_bound(user_data)
    encoded = len(base64.b64encode(b"x" * bound))
    if encoded > USER_DATA_LIMIT:
        raise UserDataError([f"user data would be {encoded} bytes base64-encoded, above EC2's {USER_DATA_LIMIT}"])


def _common_values(params: HostParams, role: str) -> dict[str, str | int]:
    return {
        "ROLE": role,
        "ENV_NAME": params.environment,
        "DOMAIN": params.domain,
        "AWS_REGION": params.region,
        "BUNDLE_BUCKET": params.bootstrap_bundle.bucket,
        "BUNDLE_KEY": params.bootstrap_bundle.key,
        "SYSTEM_LOG_GROUP": params.system_log_group,
        "APPLICATION_LOG_GROUP": params.application_log_group,
        "METRICS_NAMESPACE": contract.metric_namespace(params.environment),
        "CW_AGENT_KEY_FINGERPRINT": params.cloudwatch_agent_key_fingerprint,
        "READY_WAIT_SECONDS": params.ready_wait_seconds,
    }


def render_bbb_user_data(params: BbbParams) -> str:
    """User data of a BBB host: the scalable fleet, or the single-shape host when `params.single`."""
    if not isinstance(params, BbbParams):
        raise UserDataError([f"render_bbb_user_data takes BbbParams, not {type(params).__name__}"])
    problems: list[str] = []
    _check_common(problems, params)
    _check(problems, "turn_secret_arn", params.turn_secret_arn, "secret_arn")
    _check_int(problems, "turn_credential_ttl", params.turn_credential_ttl, 60, 7 * 86400)
    _check(problems, "operator_email", params.operator_email, "email")
    _check(problems, "bbb_secret_arn", params.bbb_secret_arn, "secret_arn")
    _check(problems, "bbb_install_url", params.bbb_install_url, "https_url")
    if params.bbb_install_sha256 is not None:
        _check(problems, "bbb_install_sha256", params.bbb_install_sha256, "sha256")
    _check(problems, "bbb_version", params.bbb_version, "bbb_version")
    _check_int(problems, "dns_wait_seconds", params.dns_wait_seconds, 60, 7200)
    if params.load_weights is not None and not _json_object(params.load_weights):
        problems.append(f"load_weights={params.load_weights!r} must be a JSON object on one line")
    if params.certificate_secret_arn is not None:
        _check(problems, "certificate_secret_arn", params.certificate_secret_arn, "secret_arn")
        if params.single:
            problems.append("certificate_secret_arn is for the fleet's servers; the single host keeps its own "
                            "Let's Encrypt certificate (it is <domain>, which the fleet's wildcard does not name)")
    if params.single:
        if params.spool is not None:
            problems.append("spool must be None for the single shape (it has no Scalelite)")
        if params.cluster_proxy:
            problems.append("cluster_proxy needs the scalable shape (one server needs no proxy)")
    elif params.spool is None:
        problems.append("spool (EfsSpool) is required for the scalable fleet: recordings go to Scalelite")
    else:
        _check(problems, "spool.file_system_id", params.spool.file_system_id, "file_system")
        _check(problems, "spool.access_point_id", params.spool.access_point_id, "access_point")
        _check(problems, "scalelite_ref", params.scalelite_ref, "git_ref")
    if problems:
        raise UserDataError(problems)

    values = _common_values(params, "single" if params.single else "bbb")
    values |= {
        "TURN_SECRET_ARN": params.turn_secret_arn,
        "TURN_CREDENTIAL_TTL": params.turn_credential_ttl,
        "OPERATOR_EMAIL": params.operator_email,
        "BBB_SECRET_ARN": params.bbb_secret_arn,
        "BBB_INSTALL_URL": params.bbb_install_url,
        "BBB_INSTALL_SHA256": params.bbb_install_sha256 or "",
        "BBB_VERSION": params.bbb_version,
        "DNS_WAIT_SECONDS": params.dns_wait_seconds,
        "CLUSTER_PROXY": int(params.cluster_proxy),
    }
    if params.load_weights is not None:
        values["LOAD_WEIGHTS"] = params.load_weights
    if not params.single:
        # The fleet's servers are bbb-<id>.fleet.<domain>, under the name their wildcard certificate covers.
        values["BBB_HOST_DOMAIN"] = f"{contract.BBB_FLEET_PREFIX}{params.domain}"
    if params.certificate_secret_arn is not None:
        values["CERTIFICATE_SECRET_ARN"] = params.certificate_secret_arn
    if params.spool is not None:
        values |= {
            "SPOOL_FILE_SYSTEM_ID": params.spool.file_system_id,
            "SPOOL_ACCESS_POINT_ID": params.spool.access_point_id,
            "SCALELITE_REF": params.scalelite_ref,
        }
    what = "single BigBlueButton host with Greenlight" if params.single else "BigBlueButton fleet server"
    return _render(what, "bbb", "bbb", values)


def relay_listeners() -> dict[str, str]:
    """The relay's listeners as params.env values, from contract.py: turn/lib.sh has no defaults of its own."""
    return {
        "LISTEN_PORT": str(contract.TURN_PORT),
        "PROXY_PORT": str(contract.PROXY_PORT),
        "ADMIN_LISTEN": contract.admin_listen(),
    }


def render_turn_user_data(params: TurnParams) -> str:
    """User data of a TURN host running the relay wheel."""
    if not isinstance(params, TurnParams):
        raise UserDataError([f"render_turn_user_data takes TurnParams, not {type(params).__name__}"])
    problems: list[str] = []
    _check_common(problems, params)
    _check(problems, "turn_secret_arn", params.turn_secret_arn, "secret_arn")
    _check_int(problems, "turn_credential_ttl", params.turn_credential_ttl, 60, 7 * 86400)
    _check(problems, "relay_wheel.bucket", params.relay_wheel.bucket, "bucket")
    _check(problems, "relay_wheel.key", params.relay_wheel.key, "key")
    _check(problems, "relay_wheel_filename", params.relay_wheel_filename, "wheel")
    _check(problems, "allocations_metric", params.allocations_metric, "metric")
    # Bounds only: the relay port rule (listeners, size, ephemeral ports) is settings/rules.py's, which names
    # the cdk.json key; what reaches here has passed it.
    _check_int(problems, "min_port", params.min_port, contract.RELAY_PORT_FLOOR, contract.RELAY_PORT_CEILING)
    _check_int(problems, "max_port", params.max_port, contract.RELAY_PORT_FLOOR, contract.RELAY_PORT_CEILING)
    for name in ("total_quota", "user_quota", "max_bps"):
        _check_int(problems, name, getattr(params, name), 0, 10**12)
    _check_int(problems, "drain_timeout_seconds", params.drain_timeout_seconds, 0, 172800)
    if not problems and params.min_port > params.max_port:
        problems.append(f"min_port {params.min_port} is above max_port {params.max_port}")
    if problems:
        raise UserDataError(problems)
    low, high = local_port_range(params.min_port, params.max_port)

    values = _common_values(params, "turn")
    values |= {
        "TURN_SECRET_ARN": params.turn_secret_arn,
        "TURN_CREDENTIAL_TTL": params.turn_credential_ttl,
        "RELAY_WHEEL_BUCKET": params.relay_wheel.bucket,
        "RELAY_WHEEL_KEY": params.relay_wheel.key,
        "RELAY_WHEEL_FILENAME": params.relay_wheel_filename,
        **relay_listeners(),
        "MIN_PORT": params.min_port,
        "MAX_PORT": params.max_port,
        "LOCAL_PORT_RANGE": f"{low} {high}",
        "TOTAL_QUOTA": params.total_quota,
        "USER_QUOTA": params.user_quota,
        "MAX_BPS": params.max_bps,
        "DRAIN_TIMEOUT_SECONDS": params.drain_timeout_seconds,
        "ALLOCATIONS_METRIC": params.allocations_metric,
    }
    return _render("TURN relay host", "turn", "turn", values)


def render_proxy_user_data(params: ProxyParams) -> str:
    """User data of the optional cluster proxy host."""
    if not isinstance(params, ProxyParams):
        raise UserDataError([f"render_proxy_user_data takes ProxyParams, not {type(params).__name__}"])
    problems: list[str] = []
    _check_common(problems, params)
    if problems:
        raise UserDataError(problems)
    values = _common_values(params, "proxy") | {"BBB_HOST_DOMAIN": f"{contract.BBB_FLEET_PREFIX}{params.domain}"}
    return _render("cluster proxy host", "proxy", "proxy", values)


__all__ = [
    "BBB_INSTALL_URL",
    "CLOUDWATCH_AGENT_KEY_FINGERPRINT",
    "SCALELITE_REF",
    "USER_DATA_LIMIT",
    "BbbParams",
    "EfsSpool",
    "HostParams",
    "ProxyParams",
    "S3Object",
    "TurnParams",
    "UserDataError",
    "bundle_bytes",
    "bundle_sha256",
    "check_size",
    "local_port_range",
    "relay_constraints",
    "relay_listeners",
    "render_bbb_user_data",
    "render_proxy_user_data",
    "render_turn_user_data",
    "write_bundle",
]
