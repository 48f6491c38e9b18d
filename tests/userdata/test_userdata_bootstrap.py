"""Each role's bootstrap.sh end to end: main() runs for real from the shipped bundle with the rendered
parameters, against a local IMDSv2, a local /readyz and a real STUN answer; only AWS, apt, systemd and the
package tools are shims. Asserted: the AWS calls each role makes (which secret, which parameters), the
services it starts, and the files it leaves with their modes.

The step tests (test_userdata_*_steps.py) cover each function's branches; these catch the wiring between them
(a step dropped from main(), a secret fetched by the wrong ARN, a parameter the renderer never writes).
"""

from __future__ import annotations

import io
import re
import shlex
import stat
import sys
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.userdata.test_userdata_common_steps import Imds
from tests.userdata.test_userdata_turn_steps import Readyz, ReadyzHandler
from userdata.render import (
    BBB_INSTALL_URL,
    BbbParams,
    EfsSpool,
    ProxyParams,
    S3Object,
    TurnParams,
    bundle_bytes,
    render_bbb_user_data,
    render_proxy_user_data,
    render_turn_user_data,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lambdas" / "support"))
from lc_stun_responder import StunResponder

TURN_SECRET = "Tq4Wm8Zr2Xc6Vb0Nn3Kk7Jj1Hh5Gg9Ff2Dd6Ss0A"
TURN_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:bbb-TurnSecret-AbCdEf"
TURN_VERSION = "11111111-2222-4333-8444-555555555555"
INSTANCE = "i-0abc123def4567890"
COMMON = {
    "environment": "bbb",
    "domain": "bbb.example.com",
    "region": "eu-west-1",
    "system_log_group": "/bbb-on-aws/bbb/system",
    "application_log_group": "/bbb-on-aws/bbb/application",
}

pytestmark = pytest.mark.slow


def params_env(user_data: str) -> str:
    """The parameters block the user-data stub writes into params.env."""
    match = re.search(r"<<'BBB_ON_AWS_PARAMS'\n(.*?)\nBBB_ON_AWS_PARAMS\n", user_data, re.DOTALL)
    assert match, "the user data has no params.env block"
    return match.group(1) + "\n"


def unpack(role: str, into: Path) -> Path:
    with tarfile.open(fileobj=io.BytesIO(bundle_bytes(role))) as tar:  # type: ignore[arg-type]
        tar.extractall(into, filter="data")
    return into


def listing(root: Path) -> dict[str, str]:
    """Every file under `root` as relative path -> octal mode."""
    return {
        p.relative_to(root).as_posix(): oct(stat.S_IMODE(p.stat().st_mode))
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def imds() -> Iterator[Imds]:
    server = Imds({
        "meta-data/instance-id": INSTANCE,
        "meta-data/local-ipv4": "127.0.0.1",  # the relay's readiness STUN check goes to the private address
        "meta-data/public-ipv4": "203.0.113.10",
        "meta-data/tags/instance/aws:autoscaling:groupName": "bbb-TurnFleet-ASG",
    })  # fmt: skip
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


@pytest.fixture
def readyz() -> Iterator[Readyz]:
    server = Readyz(("127.0.0.1", 0), ReadyzHandler)
    server.status = 200
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


@pytest.fixture
def stun() -> Iterator[StunResponder]:
    responder = StunResponder().start()
    yield responder
    responder.stop()


def host(shell, role: str, user_data: str, imds: Imds) -> dict[str, str]:
    """The scratch host: the bundle unpacked, params.env as the stub writes it, every system path moved."""
    bundle = unpack(role, shell.root / "opt")
    (shell.root / "conf" / "params.env").write_text(params_env(user_data))
    for sub in ("logrotate", "cw-agent/bin", "cw-agent/etc"):
        (shell.root / sub).mkdir(parents=True)
    shell.shim("amazon-cloudwatch-agent-ctl")  # the agent is installed: its download is skipped
    (shell.bin / "amazon-cloudwatch-agent-ctl").rename(shell.root / "cw-agent/bin/amazon-cloudwatch-agent-ctl")
    for name in ("apt-get", "systemctl", "sysctl"):
        shell.shim(name)
    return {
        "BBB_ON_AWS_DIR": str(bundle),
        "IMDS_ENDPOINT": imds.endpoint,
        "LOGROTATE_DIR": str(shell.root / "logrotate"),
        "CW_AGENT_DIR": str(shell.root / "cw-agent"),
    }


def bootstrap(shell, role_dir: str, env: dict[str, str]):
    return shell.run(f"bash {shlex.quote(env['BBB_ON_AWS_DIR'])}/{role_dir}/bootstrap.sh", libs=(), env=env,
                     timeout=120)


# --- TURN ---------------------------------------------------------------------------------------------------


def turn_params() -> TurnParams:
    return TurnParams(
        **COMMON, bootstrap_bundle=S3Object("assets-bucket", "turn-bundle.tar"), turn_secret_arn=TURN_ARN,
        relay_wheel=S3Object("assets-bucket", "0123abcd.whl"),
        relay_wheel_filename="bbb_turn_relay-0.1.0-py3-none-any.whl", min_port=49152, max_port=65535,
        total_quota=10000, user_quota=16,
    )  # fmt: skip


@pytest.fixture
def turn_host(shell, imds: Imds, readyz: Readyz, stun: StunResponder) -> dict[str, str]:
    env = host(shell, "turn", render_turn_user_data(turn_params()), imds)
    # The ports come from params.env (the contract's values): point them at the test's STUN and readyz servers.
    params = shell.root / "conf" / "params.env"
    lines = params.read_text().splitlines()
    moved = {"LISTEN_PORT": str(stun.port), "ADMIN_LISTEN": f"127.0.0.1:{readyz.server_address[1]}"}
    assert {line.split("=", 1)[0] for line in lines} >= set(moved), "params.env lacks the relay's ports"
    params.write_text("".join(
        f"{key}={shlex.quote(moved[key])}\n" if (key := line.split("=", 1)[0]) in moved else line + "\n"
        for line in lines
    ))
    venv, etc = shell.root / "venv", shell.root / "relay-etc"
    (shell.root / "sysctl").mkdir()
    # `python3 -m venv`: a venv whose python logs `pip install` (as a "pip" call) and installs the command.
    shell.shim("pip", f"touch {venv}/bin/bbb-turn-relay; chmod +x {venv}/bin/bbb-turn-relay")
    shell.shim("fake-python3", f"mkdir -p {venv}/bin; cp {shell.bin}/pip {venv}/bin/python", log=False)
    # Two describe-instances: the BBB servers' TURN secret tags (JSON) and the allowed peers (text).
    shell.shim("aws", f"""
        case "$1 $2 ${{@: -1}}" in
          "secretsmanager get-secret-value "*) echo {TURN_SECRET} ;;
          "secretsmanager describe-secret "*) echo '{{"VersionIdsToStages": {{"{TURN_VERSION}": ["AWSCURRENT"]}}}}' ;;
          "s3 cp "*) echo wheel >"$5" ;;
          "ec2 describe-instances json") echo '[["i-0bbb000000000000a", "{TURN_VERSION}@0"]]' ;;
          "ec2 describe-instances text") printf '203.0.113.21\\t10.1.16.5\\n203.0.113.22\\t10.1.32.6\\n' ;;
          "ec2 create-tags "*) ;;
          *) echo "unexpected aws call: $*" >&2; exit 255 ;;
        esac""")  # fmt: skip
    return env | {
        "RELAY_ETC": str(etc), "RELAY_VENV": str(venv), "RELAY_PYTHON": str(shell.bin / "fake-python3"),
        "RELAY_USER": "root", "RELAY_GROUP": "root", "SYSCTL_DIR": str(shell.root / "sysctl"),
    }  # fmt: skip


def test_turn_bootstrap_end_to_end(shell, turn_host: dict[str, str]) -> None:
    result = bootstrap(shell, "turn", turn_host)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "bootstrap finished: the relay serves turn.bbb.example.com from 203.0.113.10" in result.stderr

    state = shell.root / "state"
    assert shell.calls("aws") == [
        ["aws", "secretsmanager", "get-secret-value", "--secret-id", TURN_ARN, "--query", "SecretString",
         "--output", "text"],
        # Every version in use (the rotation): labels, the BBB servers' tags, then each value by version id.
        ["aws", "secretsmanager", "describe-secret", "--secret-id", TURN_ARN, "--output", "json"],
        ["aws", "ec2", "describe-instances", "--filters", "Name=tag:bbb-on-aws:environment,Values=bbb",
         "Name=tag:bbb-on-aws:role,Values=bbb,single", "Name=instance-state-name,Values=pending,running",
         "--query", "Reservations[].Instances[].[InstanceId, Tags[?Key==`bbb-on-aws:turn-secret`].Value | [0]]",
         "--output", "json"],
        ["aws", "secretsmanager", "get-secret-value", "--secret-id", TURN_ARN, "--version-id", TURN_VERSION,
         "--query", "SecretString", "--output", "text"],
        ["aws", "s3", "cp", "--only-show-errors", "s3://assets-bucket/0123abcd.whl",
         f"{state}/bbb_turn_relay-0.1.0-py3-none-any.whl"],
        ["aws", "ec2", "describe-instances", "--filters", "Name=tag:bbb-on-aws:environment,Values=bbb",
         "Name=tag:bbb-on-aws:role,Values=bbb,single", "Name=instance-state-name,Values=pending,running",
         "--query", "Reservations[].Instances[].[PublicIpAddress,PrivateIpAddress]", "--output", "text"],
        ["aws", "ec2", "create-tags", "--resources", INSTANCE, "--tags", "Key=bbb-on-aws:ready,Value=1700000000"],
    ]  # fmt: skip
    [install] = [argv for argv in shell.calls("apt-get") if "install" in argv]
    assert install[-5:] == ["python3-venv", "curl", "gnupg", "ca-certificates", "libbpf0"]  # libbpf: kernel-offload
    [pip] = shell.calls("pip")
    assert pip[-1] == f"{state}/bbb_turn_relay-0.1.0-py3-none-any.whl[fast]"
    assert pip[pip.index("--constraint") + 1] == turn_host["BBB_ON_AWS_DIR"] + "/turn/relay-constraints.txt"
    systemctl = [c[1:] for c in shell.calls("systemctl")]
    assert ["restart", "bbb-turn-relay.service"] in systemctl
    assert ["enable", "--now", "bbb-turn-relay-peers.timer", "bbb-turn-relay-secrets.timer",
            "bbb-on-aws-allocations-metric.timer"] in systemctl

    etc = Path(turn_host["RELAY_ETC"])
    assert listing(etc) == {"allowed-peers.conf": "0o644", "nonce-secret": "0o600", "relay.conf": "0o640",
                            "secret": "0o600"}  # fmt: skip
    assert (etc / "secret").read_text() == TURN_SECRET + "\n"
    assert (etc / "allowed-peers.conf").read_text() == "10.1.16.5\n10.1.32.6\n203.0.113.21\n203.0.113.22\n"
    conf = (etc / "relay.conf").read_text()
    for line in ("realm=turn.bbb.example.com", "listening-ip=127.0.0.1", "external-ip=203.0.113.10",
                 "min-port=49152", "max-port=65535", "total-quota=10000", "user-quota=16", "drain-timeout=3600",
                 "kernel-offload=auto"):
        assert f"\n{line}\n" in conf, line
    runtime = (shell.root / "conf" / "runtime.env").read_text()
    assert runtime == (f"INSTANCE_ID={INSTANCE}\nPUBLIC_IPV4=203.0.113.10\nPRIVATE_IPV4=127.0.0.1\n"
                       "AWS_REGION=eu-west-1\nASG_NAME=bbb-TurnFleet-ASG\n")  # fmt: skip
    assert "net.ipv4.ip_local_reserved_ports = 49152-65535\n" in (
        shell.root / "sysctl" / "60-bbb-turn-relay.conf").read_text()
    assert listing(shell.root / "systemd") == {
        "bbb-on-aws-allocations-metric.service": "0o644", "bbb-on-aws-allocations-metric.timer": "0o644",
        "bbb-on-aws-journal-export.service": "0o644", "bbb-turn-relay-peers.service": "0o644",
        "bbb-turn-relay-peers.timer": "0o644", "bbb-turn-relay.service": "0o644",
        "bbb-turn-relay-secrets.service": "0o644", "bbb-turn-relay-secrets.timer": "0o644",
        "bbb-on-aws-relay-address.service": "0o644", "bbb-on-aws-relay-ready.service": "0o644",
    }  # fmt: skip
    assert (state / "turn-secret-versions").read_text() == f"{TURN_VERSION} AWSCURRENT\n"
    assert listing(shell.root / "conf") == {"journal-export.env": "0o644", "params.env": "0o644",
                                            "runtime.env": "0o644"}  # fmt: skip
    assert listing(shell.root / "cw-agent" / "etc") == {"bbb-on-aws.json": "0o644"}
    assert (state / "ready").read_text() == "1700000000\n"
    # The relay's own gauge name, written here (not imported): the host publishes what the relay serves.
    assert "\nALLOCATIONS_METRIC=turn_allocations\n" in (shell.root / "conf" / "params.env").read_text()


def test_turn_bootstrap_without_its_secret_stops_before_starting_the_relay(shell, turn_host) -> None:
    """Negative control: a secret fetch that fails (wrong ARN, no permission) ends the bootstrap."""
    shell.shim("aws", '[[ "$1 $2" == "secretsmanager get-secret-value" ]] && { echo AccessDenied >&2; exit 255; }')
    result = bootstrap(shell, "turn", turn_host)
    assert result.returncode == 1
    assert f"cannot read secret {TURN_ARN}" in result.stderr
    assert not (Path(turn_host["RELAY_ETC"]) / "secret").exists()
    assert not any(c[1:2] == ["restart"] for c in shell.calls("systemctl"))


# --- cluster proxy ------------------------------------------------------------------------------------------


def test_proxy_bootstrap_end_to_end(shell, imds: Imds) -> None:
    del imds.items["meta-data/public-ipv4"]  # a private subnet
    params = ProxyParams(**COMMON, bootstrap_bundle=S3Object("assets-bucket", "proxy-bundle.tar"))
    env = host(shell, "proxy", render_proxy_user_data(params), imds)
    nginx = shell.root / "nginx"
    for sub in ("sites-available", "sites-enabled"):
        (nginx / sub).mkdir(parents=True)
    (nginx / "sites-enabled" / "default").write_text("default site\n")
    shell.shim("nginx")
    # nginx's own /healthz on port 80 answers; everything else (IMDS) goes to the real curl.
    shell.shim("curl", 'for a; do [[ $a == http://127.0.0.1/healthz ]] && exit 0; done; exec /usr/bin/curl "$@"')
    shell.shim("aws", """
        case "$1 $2" in
          "ec2 describe-instances") printf 'i-0bbbbbbbbbbbbbbbb\\ti-0aaaaaaaaaaaaaaaa\\n' ;;
          "ec2 create-tags") ;;
          *) echo "unexpected aws call: $*" >&2; exit 255 ;;
        esac""")  # fmt: skip
    result = bootstrap(shell, "proxy", env | {"NGINX_DIR": str(nginx)})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "bootstrap finished: the cluster proxy serves bbb-proxy.bbb.example.com" in result.stderr

    assert shell.calls("aws") == [
        ["aws", "ec2", "describe-instances", "--filters", "Name=tag:bbb-on-aws:environment,Values=bbb",
         "Name=tag:bbb-on-aws:role,Values=bbb", "Name=tag-key,Values=bbb-on-aws:ready",
         "Name=instance-state-name,Values=running", "--query", "Reservations[].Instances[].InstanceId",
         "--output", "text"],
        ["aws", "ec2", "create-tags", "--resources", INSTANCE, "--tags", "Key=bbb-on-aws:ready,Value=1700000000"],
    ]  # fmt: skip
    assert not any("secretsmanager" in call for call in shell.calls("aws"))  # the proxy holds no secret
    systemctl = [c[1:] for c in shell.calls("systemctl")]
    assert ["restart", "nginx"] in systemctl and ["reload", "nginx"] in systemctl
    assert ["enable", "--now", "bbb-on-aws-proxy-sync.timer"] in systemctl
    assert listing(nginx) == {"bbb-on-aws/locations.conf": "0o644", "sites-available/bbb-proxy": "0o644",
                              "sites-enabled/bbb-proxy": "0o644"}  # fmt: skip
    assert (nginx / "sites-enabled" / "bbb-proxy").resolve() == nginx / "sites-available" / "bbb-proxy"
    site = (nginx / "sites-available" / "bbb-proxy").read_text()
    assert "server_name bbb-proxy.bbb.example.com;" in site and f"include {nginx}/bbb-on-aws/*.conf;" in site
    locations = (nginx / "bbb-on-aws" / "locations.conf").read_text()
    assert re.findall(r"^location (\S+) \{$", locations, re.MULTILINE) == [
        "/bbb-0bbbbbbbbbbbbbbbb/html5client/", "/bbb-0bbbbbbbbbbbbbbbb/bigbluebutton/api",
        "/bbb-0aaaaaaaaaaaaaaaa/html5client/", "/bbb-0aaaaaaaaaaaaaaaa/bigbluebutton/api",
    ] or sorted(re.findall(r"^location (\S+) \{$", locations, re.MULTILINE))
    runtime = (shell.root / "conf" / "runtime.env").read_text()
    assert runtime == (f"INSTANCE_ID={INSTANCE}\nPRIVATE_IPV4=127.0.0.1\nAWS_REGION=eu-west-1\n"
                       "ASG_NAME=bbb-TurnFleet-ASG\n")
    assert listing(shell.root / "logrotate") == {"bbb-on-aws": "0o644"}
    assert (shell.root / "state" / "ready").read_text() == "1700000000\n"


# --- BigBlueButton: a fleet server (role bbb) and the single host (role single) ------------------------------

BBB_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:bbb-BbbApiSecret-GhIjKl"
API_SECRET = "Ap1Bq2Cr3Ds4Et5Fu6Gv7Hw8Ix9Jy0Kz1La2Mb3N"
SCALELITE_REF_PINNED = "v1.6.5"  # written here, not imported: a changed pin must show up in this test
SCALELITE_URL = (
    "https://raw.githubusercontent.com/blindsidenetworks/scalelite/{ref}/bigbluebutton/scalelite_post_publish.rb"
)


def bbb_params(single: bool) -> BbbParams:
    return BbbParams(
        **COMMON, bootstrap_bundle=S3Object("assets-bucket", "bbb-bundle.tar"), turn_secret_arn=TURN_ARN,
        operator_email="ops@example.com", bbb_secret_arn=BBB_ARN, single=single,
        spool=None if single else EfsSpool("fs-0123456789abcdef0", "fsap-0123456789abcdef0"),
        load_weights='{"participant":1.0,"voice":1.0,"listener":0.5,"webcam":2.0,"webcamViewer":0.1,'
                     '"screenShareViewer":0.05}',
    )  # fmt: skip


@pytest.fixture
def bbb_host(shell, imds: Imds) -> dict[str, str]:
    """Disks, DNS, bbb-install, bbb-conf and the API as shims; every BBB path in the scratch directory."""
    imds.items["meta-data/tags/instance/aws:autoscaling:groupName"] = "bbb-BbbFleet-ASG"
    root = shell.root
    for sub in ("dev", "etc-bbb", "nginx", "defaults", "apt", "rap", "greenlight", "data", "spool", "srv-data"):
        (root / sub).mkdir()
    (root / "dev" / "sdf").write_bytes(bytes(2 << 20))  # a never-written volume reads as zeros
    (root / "fstab").write_text("# static file system information\n")
    (root / "os-release").write_text('VERSION_ID="22.04"\n')
    formatted = root / "formatted"
    shell.shim("blkid", f"""
        [[ $1 == -p ]] && {{ [[ -e {formatted} ]] && exit 0; exit 2; }}
        [[ $* == *TYPE* ]] && {{ [[ -e {formatted} ]] && echo ext4; exit 0; }}; echo 1b2c3d4e-uuid""")
    shell.shim("mkfs.ext4", f"touch {formatted}")
    for name in ("mount", "groupadd", "usermod", "docker", "mount.efs"):
        shell.shim(name)
    shell.shim("mountpoint", "exit 1")
    shell.shim("getent", "exit 2")
    shell.shim("dig", '[[ " $* " == *" NS "* ]] && echo "ns-1.awsdns-01.org." || echo 203.0.113.10')
    shell.shim("bbb-conf")
    # bbb-install logs its arguments; with -g (Greenlight) it leaves Greenlight's .env as the real one does.
    (root / "bbb-install.sh").write_text(
        f'printf "%s" bbb-install >>{shell.calls_file}; printf " %q" "$@" >>{shell.calls_file}; '
        f'echo >>{shell.calls_file}\n'
        f'[[ " $* " == *" -g "* ]] && printf "BIGBLUEBUTTON_SECRET=random\\n" >{root}/greenlight/.env\nexit 0\n'
    )  # fmt: skip
    scalelite = SCALELITE_URL.format(ref=SCALELITE_REF_PINNED)
    shell.shim("curl", f"""
        out=""; url=""; prev=""
        for a; do [[ $prev == -o ]] && out=$a; [[ $a == http* ]] && url=$a; prev=$a; done
        case "$url" in
          {BBB_INSTALL_URL}) cp {root}/bbb-install.sh "$out" ;;
          {scalelite}) echo "spool_dir = '/var/bigbluebutton/spool'" >"$out" ;;
          https://*/bigbluebutton/api) echo "<response><returncode>SUCCESS</returncode></response>" ;;
          *) exec /usr/bin/curl "$@" ;;
        esac""")  # fmt: skip
    shell.shim("aws", f"""
        case "$1 $2 $4" in
          "secretsmanager get-secret-value {TURN_ARN}") printf '%s\\t%s\\n' {TURN_VERSION} {TURN_SECRET} ;;
          "secretsmanager get-secret-value {BBB_ARN}") echo {API_SECRET} ;;
          "ec2 create-tags "*) ;;
          *) echo "unexpected aws call: $*" >&2; exit 255 ;;
        esac""")  # fmt: skip
    return {
        "DEV_DIR": str(root / "dev"), "FSTAB": str(root / "fstab"), "DATA_MOUNT": str(root / "data"),
        "SPOOL_MOUNT": str(root / "spool"), "RAP_SCRIPTS_DIR": str(root / "rap"),
        "GREENLIGHT_DIR": str(root / "greenlight"), "BBB_ETC": str(root / "etc-bbb"),
        "BBB_NGINX_DIR": str(root / "nginx"), "DEFAULTS_DIR": str(root / "defaults"), "APT_ETC": str(root / "apt"),
        "OS_RELEASE": str(root / "os-release"), "BBB_SERVLET_PROPERTIES": str(root / "bigbluebutton.properties"),
        "BBB_USER": "root", "BBB_GROUP": "root", "SINGLE_DATA_MOUNT": str(root / "srv-data"),
        "LETSENCRYPT_DIR": str(root / "letsencrypt"),
    }  # fmt: skip


@pytest.mark.parametrize("role", ["bbb", "single"])
def test_bbb_bootstrap_end_to_end(shell, imds: Imds, bbb_host: dict[str, str], role: str) -> None:
    single = role == "single"
    env = host(shell, "bbb", render_bbb_user_data(bbb_params(single)), imds) | bbb_host
    result = bootstrap(shell, "bbb", env)
    assert result.returncode == 0, result.stderr[-3000:]
    fqdn = "bbb.example.com" if single else "bbb-0abc123def4567890.fleet.bbb.example.com"  # fleet.<domain>
    assert f"bootstrap finished: https://{fqdn} is ready" in result.stderr

    # Both secrets, each by its own ARN, and the ready tag on this instance only: nothing else reaches AWS.
    assert shell.calls("aws") == [
        ["aws", "secretsmanager", "get-secret-value", "--secret-id", BBB_ARN, "--query", "SecretString",
         "--output", "text"],
        # The TURN secret with its version: bbb-web issues with it, and the server says so (the rotation).
        ["aws", "secretsmanager", "get-secret-value", "--secret-id", TURN_ARN, "--query", "[VersionId,SecretString]",
         "--output", "text"],
        ["aws", "ec2", "create-tags", "--resources", INSTANCE, "--tags",
         f"Key=bbb-on-aws:turn-secret,Value={TURN_VERSION}@0"],
        # The virtual clock: DNS is checked 3 times in a row, 10 s apart, before the install.
        ["aws", "ec2", "create-tags", "--resources", INSTANCE, "--tags", "Key=bbb-on-aws:ready,Value=1700000020"],
    ]  # fmt: skip
    [install] = shell.calls("bbb-install")
    expected = ["-v", "jammy-300", "-s", fqdn, "-e", "ops@example.com", "-c",
                "turn.bbb.example.com:turn-secret-set-by-bbb-on-aws"] + (["-g"] if single else [])  # fmt: skip
    assert install[1:] == expected
    assert ["bbb-conf", "--setsecret", API_SECRET] in shell.calls("bbb-conf")
    assert ["bbb-conf", "--restart"] in shell.calls("bbb-conf")
    mounts = [c[1:] for c in shell.calls("mount")]
    # single: the data volume, then its directories bound where BBB, Greenlight and certbot expect them
    single_mounts = [[bbb_host[k]] for k in ("SINGLE_DATA_MOUNT", "DATA_MOUNT", "GREENLIGHT_DIR", "LETSENCRYPT_DIR")]
    assert mounts == (single_mounts if single else [[bbb_host["DATA_MOUNT"]], [bbb_host["SPOOL_MOUNT"]]])
    assert len(shell.calls("mkfs.ext4")) == 1

    root = shell.root
    turn_xml = (root / "etc-bbb" / "turn-stun-servers.xml").read_text()
    assert turn_xml.count(f'value="{TURN_SECRET}"') == 3 and API_SECRET not in turn_xml
    assert listing(root / "etc-bbb") == {"turn-stun-servers.xml": "0o640"}
    fstab = (root / "fstab").read_text().splitlines()
    data_mount = bbb_host["SINGLE_DATA_MOUNT" if single else "DATA_MOUNT"]
    data_line = f"UUID=1b2c3d4e-uuid {data_mount} ext4 defaults,nofail,x-systemd.device-timeout=30s 0 2"
    assert fstab[1] == data_line
    runtime = (root / "conf" / "runtime.env").read_text()
    assert runtime == (f"INSTANCE_ID={INSTANCE}\nPUBLIC_IPV4=203.0.113.10\nPRIVATE_IPV4=127.0.0.1\n"
                       f"AWS_REGION=eu-west-1\nFQDN={fqdn}\nASG_NAME=bbb-BbbFleet-ASG\n")  # fmt: skip
    assert listing(root / "systemd") == {
        "bbb-on-aws-journal-export.service": "0o644", "bbb-on-aws-meetings-metric.service": "0o644",
        "bbb-on-aws-meetings-metric.timer": "0o644", "bbb-on-aws-turn-secret.service": "0o644",
        "bbb-on-aws-turn-secret.timer": "0o644", "bbb-on-aws-addresses.service": "0o644",
        "bbb-on-aws-ready.service": "0o644", "bbb-on-aws-certificate.service": "0o644",
        "bbb-on-aws-certificate.timer": "0o644",
    }  # fmt: skip
    assert (root / "state" / "turn-secret-version").read_text() == f"{TURN_VERSION}@0\n"
    assert oct(stat.S_IMODE((root / "log" / "bbb-install.log").stat().st_mode)) == "0o600"
    assert (root / "state" / "bbb-installed").exists() and (root / "state" / "ready").read_text() == "1700000020\n"
    if single:  # Greenlight gets the fleet secret and is recreated; no Scalelite pieces
        assert (root / "greenlight" / ".env").read_text() == f"BIGBLUEBUTTON_SECRET={API_SECRET}\n"
        assert shell.calls("docker")[0][1:3] == ["compose", "-f"]
        assert listing(root / "rap") == {} and "\n" + bbb_host["SPOOL_MOUNT"] not in (root / "fstab").read_text()
    else:  # recordings go to the Scalelite spool through the pinned transfer script
        assert listing(root / "rap") == {"post_publish/scalelite_post_publish.rb": "0o755", "scalelite.yml": "0o644"}
        assert f"spool_dir: {bbb_host['SPOOL_MOUNT']}\n" in (root / "rap" / "scalelite.yml").read_text()
        assert fstab[2] == (f"fs-0123456789abcdef0:/ {bbb_host['SPOOL_MOUNT']} efs "
                            "_netdev,nofail,noresvport,tls,iam,accesspoint=fsap-0123456789abcdef0 0 0")  # fmt: skip
        assert shell.calls("docker") == []
