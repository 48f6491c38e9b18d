"""common/lib.sh for real: IMDSv2 against a local metadata server, secrets, tags, files, the stub itself."""

from __future__ import annotations

import http.server
import io
import shlex
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from userdata.render import BbbParams, EfsSpool, S3Object, bundle_bytes, render_bbb_user_data

SECRET = "Zq8Tn3Lw0Pv6Xr2Ka9Mc5Hb1Jd7Fs4Gy0Ue3Wi2O"


class Imds(http.server.ThreadingHTTPServer):
    """IMDSv2 as EC2 enforces it: GETs need a token from PUT /latest/api/token, IMDSv1 gets 401."""

    def __init__(self, items: dict[str, str]) -> None:
        super().__init__(("127.0.0.1", 0), ImdsHandler)
        self.items = items
        self.tokens: set[str] = set()
        self.issued = 0
        self.requests: list[tuple[str, str, bool]] = []

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class ImdsHandler(http.server.BaseHTTPRequestHandler):
    server: Imds

    def log_message(self, *args: object) -> None:  # keep pytest output clean
        pass

    def _send(self, code: int, body: str = "") -> None:
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def do_PUT(self) -> None:
        ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
        self.server.requests.append(("PUT", self.path, bool(ttl)))
        if self.path != "/latest/api/token" or not ttl:
            return self._send(400)
        self.server.issued += 1
        token = f"token-{self.server.issued}"
        self.server.tokens.add(token)
        return self._send(200, token)

    def do_GET(self) -> None:
        token = self.headers.get("X-aws-ec2-metadata-token")
        self.server.requests.append(("GET", self.path, token in self.server.tokens))
        if token not in self.server.tokens:
            return self._send(401)
        value = self.server.items.get(self.path.removeprefix("/latest/"))
        return self._send(200, value) if value is not None else self._send(404)


@pytest.fixture
def imds() -> Iterator[Imds]:
    server = Imds({
        "meta-data/instance-id": "i-0abc123def4567890",
        "meta-data/local-ipv4": "10.1.0.23",
        "meta-data/public-ipv4": "203.0.113.10",
        "meta-data/placement/region": "eu-west-1",
    })
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


def test_imdsv2_token_flow_and_identity(shell, imds: Imds) -> None:
    result = shell.run('load_instance_identity public; echo "$INSTANCE_ID $PUBLIC_IPV4 $PRIVATE_IPV4 $AWS_REGION"',
                       env={"IMDS_ENDPOINT": imds.endpoint})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["i-0abc123def4567890", "203.0.113.10", "10.1.0.23", "eu-west-1"]
    assert imds.requests[0] == ("PUT", "/latest/api/token", True)
    assert all(authorised for method, _, authorised in imds.requests if method == "GET")


def test_renewal_after_the_server_drops_the_token(shell, imds: Imds) -> None:
    shell.env["IMDS_ENDPOINT"] = imds.endpoint
    result = shell.run('imds_get meta-data/instance-id >/dev/null; echo "$IMDS_TOKEN"')
    first_token = result.stdout.strip()
    imds.tokens.clear()  # as if the token expired
    result = shell.run(f'IMDS_TOKEN={first_token}; imds_get meta-data/local-ipv4; echo " $IMDS_TOKEN"')
    assert result.returncode == 0, result.stderr
    value, token = result.stdout.split()
    assert value == "10.1.0.23" and token != first_token


def test_no_public_ip_is_a_clear_error(shell, imds: Imds) -> None:
    del imds.items["meta-data/public-ipv4"]
    result = shell.run("load_instance_identity public", env={"IMDS_ENDPOINT": imds.endpoint})
    assert result.returncode == 1
    assert "no public IPv4: launch it in a public subnet" in result.stderr
    result = shell.run('load_instance_identity private-only; echo "[$PUBLIC_IPV4] $PRIVATE_IPV4"',
                       env={"IMDS_ENDPOINT": imds.endpoint})  # the cluster proxy lives in a private subnet
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[] 10.1.0.23"


def test_autoscaling_group_from_imds_tags_or_describe_tags(shell, imds: Imds) -> None:
    shell.shim("aws", 'echo "bbb-BbbFleet-FROMAPI"')
    env = {"IMDS_ENDPOINT": imds.endpoint, "INSTANCE_ID": "i-0abc123def4567890"}
    result = shell.run("autoscaling_group_name", env=env)
    assert result.stdout.strip() == "bbb-BbbFleet-FROMAPI"  # tags not in IMDS: DescribeTags
    assert shell.calls("aws")[0][1:3] == ["ec2", "describe-tags"]
    imds.items["meta-data/tags/instance/aws:autoscaling:groupName"] = "bbb-BbbFleet-FROMIMDS"
    result = shell.run("autoscaling_group_name", env=env)
    assert result.stdout.strip() == "bbb-BbbFleet-FROMIMDS"
    assert len(shell.calls("aws")) == 1


def test_get_secret_returns_the_value_without_logging_it(shell) -> None:
    shell.shim("aws", f'[[ "$*" == *"--secret-id arn:aws:secretsmanager:eu-west-1:1:secret:t"* ]] && echo {SECRET}')
    result = shell.run('v=$(get_secret arn:aws:secretsmanager:eu-west-1:1:secret:t); [[ $v == ' + SECRET + " ]]")
    assert result.returncode == 0, result.stderr
    assert SECRET not in result.stderr + result.stdout


@pytest.mark.parametrize("value", ["", "short", "has space in it 1234567890", "a" * 200])
def test_get_secret_rejects_unusable_values(shell, value: str) -> None:
    shell.shim("aws", f"printf '%s\\n' {shlex.quote(value)}")
    result = shell.run("v=$(get_secret arn:x) || exit 3")
    assert result.returncode == 3
    assert "must be 16-128 letters and digits" in result.stderr


def test_get_secret_reports_api_failures(shell) -> None:
    shell.shim("aws", "echo AccessDeniedException >&2; exit 254")
    result = shell.run("v=$(get_secret arn:x) || exit 3")
    assert result.returncode == 3
    assert "check the instance role's secretsmanager:GetSecretValue" in result.stderr
    assert len(shell.calls("aws")) == 5  # retried


def test_tag_ready_tags_the_instance_itself_once(shell) -> None:
    shell.shim("aws")
    result = shell.run("INSTANCE_ID=i-0abc; tag_ready")
    assert result.returncode == 0, result.stderr
    assert shell.calls("aws") == [["aws", "ec2", "create-tags", "--resources", "i-0abc", "--tags",
                                   "Key=bbb-on-aws:ready,Value=1700000000"]]
    assert (shell.root / "state" / "ready").read_text() == "1700000000\n"


def test_install_if_changed_and_set_kv(shell) -> None:
    target = shell.root / "conf" / "file"
    script = f"""
      printf 'a\\n' >src
      install_if_changed src {target} 0640 root:root && echo first-changed
      install_if_changed src {target} 0640 root:root || echo second-unchanged
      printf 'b=1\\n# c=2\\nkey.name = old\\n' >props
      set_kv props key.name new; set_kv props added 'with "quotes"'
      cat props
    """
    result = shell.run(f"cd {shell.root}\n{script}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[:2] == ["first-changed", "second-unchanged"]
    assert result.stdout.splitlines()[2:] == ["b=1", "# c=2", "key.name=new", 'added=with "quotes"']
    assert oct(target.stat().st_mode & 0o777) == "0o640"


def test_write_runtime_env_round_trips_through_bash(shell) -> None:
    result = shell.run("write_runtime_env 'ASG_NAME=bbb fleet $(x)' FQDN=bbb-1.example.com\n"
                       f'source {shell.root}/conf/runtime.env; printf "%s|%s" "$ASG_NAME" "$FQDN"')
    assert result.returncode == 0, result.stderr
    assert result.stdout == "bbb fleet $(x)|bbb-1.example.com"


def test_require_params_names_what_is_missing(shell) -> None:
    result = shell.run("A=1; B=''; require_params A B C")
    assert result.returncode == 1
    assert "lacks B C: re-render the user data" in result.stderr


def test_retry_gives_up_after_the_attempts(shell) -> None:
    shell.shim("flaky", "exit 1")
    result = shell.run("retry 3 2 flaky")
    assert result.returncode == 1
    assert len(shell.calls("flaky")) == 3
    assert [c[1] for c in shell.calls("sleep")] == ["2", "2"]


def test_the_stub_writes_params_verifies_and_unpacks_the_bundle(shell, tmp_path: Path) -> None:
    """The rendered stub, run for real with its absolute paths moved into the scratch directory."""
    params = BbbParams(environment="bbb", domain="bbb.example.com", region="eu-west-1",
                       bootstrap_bundle=S3Object("assets-bucket", "abc.tar"),
                       turn_secret_arn="arn:aws:secretsmanager:eu-west-1:123456789012:secret:t-AbCdEf",
                       system_log_group="/bbb/system", application_log_group="/bbb/app",
                       operator_email="ops@example.com",
                       bbb_secret_arn="arn:aws:secretsmanager:eu-west-1:123456789012:secret:b-AbCdEf",
                       spool=EfsSpool("fs-0123456789abcdef0", "fsap-0123456789abcdef0"))
    stub = render_bbb_user_data(params)
    root = tmp_path / "host"
    for path in ("/etc/bbb-on-aws", "/opt/bbb-on-aws", "/var/log/bbb-on-aws"):
        stub = stub.replace(path, f"{root}{path}")
    stub = stub.replace(f"exec {root}/opt/bbb-on-aws/bbb/bootstrap.sh", "echo bootstrap-would-start")
    good = tmp_path / "good.tar"
    good.write_bytes(bundle_bytes("bbb"))
    bad = tmp_path / "bad.tar"
    with tarfile.open(bad, "w") as tar:
        tar.addfile(tarfile.TarInfo("bbb/bootstrap.sh"), io.BytesIO(b""))
    (shell.root / "stub.sh").write_text(stub)
    shell.shim("aws", 'cp "$BUNDLE_SOURCE" "${@: -1}"')  # aws s3 cp s3://... <dest>

    result = shell.run(f"bash {shell.root}/stub.sh", env={"BUNDLE_SOURCE": str(good)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "bootstrap-would-start" in result.stdout
    assert shell.calls("aws")[0][1:4] == ["s3", "cp", "--only-show-errors"]
    assert shell.calls("aws")[0][4] == "s3://assets-bucket/abc.tar"
    assert (root / "opt/bbb-on-aws/bbb/bootstrap.sh").stat().st_mode & 0o100
    assert (root / "opt/bbb-on-aws/common/lib.sh").exists()
    sourced = shell.run(f"source {root}/etc/bbb-on-aws/params.env; echo \"$ROLE $SPOOL_ACCESS_POINT_ID\"")
    assert sourced.stdout.strip() == "bbb fsap-0123456789abcdef0"
    assert "bootstrap-would-start" in (root / "var/log/bbb-on-aws/bootstrap.log").read_text()

    result = shell.run(f"bash {shell.root}/stub.sh", env={"BUNDLE_SOURCE": str(bad)})
    assert result.returncode == 1
    assert "is not the bundle this user data was made for" in result.stdout
    assert "bootstrap-would-start" not in result.stdout


# --- CloudWatch agent package verification (real gpg, a throw-away signing key) -------------------------


@pytest.fixture
def signed_agent(tmp_path: Path) -> Iterator[dict[str, str]]:
    home = tmp_path / "signer"
    home.mkdir(mode=0o700)
    gpg = ["gpg", "--batch", "--quiet", "--homedir", str(home), "--passphrase", "", "--pinentry-mode", "loopback"]
    subprocess.run([*gpg, "--quick-gen-key", "Agent Signer <signer@example.com>", "ed25519", "sign", "never"],
                   check=True, capture_output=True)
    listing = subprocess.run([*gpg, "--with-colons", "--fingerprint"], check=True, capture_output=True, text=True)
    fingerprint = next(line.split(":")[9] for line in listing.stdout.splitlines() if line.startswith("fpr"))
    files = tmp_path / "served"
    files.mkdir()
    (files / "agent.deb").write_bytes(b"!<arch>\nnot really a deb, but signed\n")
    subprocess.run([*gpg, "--armor", "--export", "-o", str(files / "agent.gpg")], check=True)
    subprocess.run([*gpg, "--detach-sign", "-o", str(files / "agent.deb.sig"), str(files / "agent.deb")], check=True)
    yield {"fingerprint": fingerprint, "files": str(files)}
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], check=False)


def agent_shims(shell, files: str) -> None:
    shell.shim("dpkg", '[[ $1 == --print-architecture ]] && echo amd64; exit 0')
    shell.shim("curl", f"""
        while [[ $# -gt 0 ]]; do case $1 in -o) out=$2; shift;; *) url=$1;; esac; shift; done
        case $url in
          *.deb.sig) cp {files}/agent.deb.sig "$out";;
          *.deb) cp {files}/agent.deb "$out";;
          *.gpg) cp {files}/agent.gpg "$out";;
          *) exit 22;;
        esac
    """)


def test_cloudwatch_agent_is_installed_only_when_its_signature_verifies(shell, signed_agent) -> None:
    agent_shims(shell, signed_agent["files"])
    result = shell.run(f"install_cloudwatch_agent {signed_agent['fingerprint']}", env={"AWS_REGION": "eu-west-1"})
    assert result.returncode == 0, result.stderr
    urls = [c[-1] for c in shell.calls("curl")]
    assert urls[0] == ("https://amazoncloudwatch-agent-eu-west-1.s3.eu-west-1.amazonaws.com/ubuntu/amd64/latest/"
                       "amazon-cloudwatch-agent.deb")
    assert urls[2] == "https://amazoncloudwatch-agent.s3.amazonaws.com/assets/amazon-cloudwatch-agent.gpg"
    assert shell.calls("dpkg")[-1][:3] == ["dpkg", "-i", "-E"]


def test_cloudwatch_agent_with_another_signing_key_is_refused(shell, signed_agent) -> None:
    agent_shims(shell, signed_agent["files"])
    result = shell.run(f"install_cloudwatch_agent {'A' * 40}", env={"AWS_REGION": "eu-west-1"})
    assert result.returncode == 1
    assert f"fingerprint is {signed_agent['fingerprint']}, expected {'A' * 40}" in result.stderr
    assert "set cloudwatch_agent_key_fingerprint" in result.stderr
    assert not [c for c in shell.calls("dpkg") if "-i" in c]


def test_tampered_cloudwatch_agent_is_refused(shell, signed_agent) -> None:
    with open(Path(signed_agent["files"]) / "agent.deb", "ab") as deb:
        deb.write(b"appended by an attacker\n")
    agent_shims(shell, signed_agent["files"])
    result = shell.run(f"install_cloudwatch_agent {signed_agent['fingerprint']}", env={"AWS_REGION": "eu-west-1"})
    assert result.returncode == 1
    assert "package signature does not verify" in result.stderr
    assert not [c for c in shell.calls("dpkg") if "-i" in c]
