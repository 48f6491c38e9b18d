"""bbb/on_boot.sh and bbb/addresses.sh for real under bash: the announced public IPv4 rewritten on a warm-pool
wake, against copies of the files bbb-install v3.0 writes (as its check_nat and SSL steps leave them with
IP=<public> INTERNAL_IP=<private>). IMDSv2 is a local metadata server; only ip, aws and the BBB API are shims.
"""

from __future__ import annotations

import shlex
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.userdata.test_userdata_common_steps import Imds

USERDATA = Path(__file__).resolve().parents[2] / "userdata"
OLD, NEW, PRIVATE = "203.0.113.10", "198.51.100.77", "10.1.0.23"
FQDN = "bbb-0abc123def4567890.bbb.example.com"
BOOT_ID = "6f1c2d6e-2b7a-4d0e-9a51-3c8f0e2b7d41"

PRODUCTION_YML = f"""\
freeswitch:
  ip: {OLD}
  sip_ip: {OLD}
mediasoup:
  webrtc:
    listenIps:
      - ip: 0.0.0.0
        announcedIp: {OLD}
  plainRtp:
    listenIp:
      ip: 0.0.0.0
      announcedIp: {OLD}
"""

VARS_XML = f"""\
<include>
  <X-PRE-PROCESS cmd="set" data="default_password=1234"/>
  <X-PRE-PROCESS cmd="set" data="sound_prefix=$${{sounds_dir}}/en/us/callie"/>
  <X-PRE-PROCESS cmd="set" data="domain=$${{local_ip_v4}}"/>
  <X-PRE-PROCESS cmd="set" data="local_ip_v4={PRIVATE}"/>
  <!-- a neighbour on the same /24, never ours: {OLD}0 -->
  <X-PRE-PROCESS cmd="set" data="external_rtp_ip={OLD}"/>
  <X-PRE-PROCESS cmd="set" data="external_sip_ip={OLD}"/>
  <X-PRE-PROCESS cmd="set" data="hold_music=local_stream://moh"/>
</include>
"""

EXTERNAL_XML = f"""\
<profile name="external">
  <settings>
    <param name="rtp-ip" value="$${{local_ip_v4}}"/>
    <param name="sip-ip" value="$${{local_ip_v4}}"/>
    <param name="ext-rtp-ip" value="$${{external_rtp_ip}}"/>
    <param name="ext-sip-ip" value="$${{external_sip_ip}}"/>
    <param name="ws-binding" value="{OLD}:5066"/>
    <param name="wss-binding" value="{OLD}:7443"/>
  </settings>
</profile>
"""

SIP_NGINX = f"""\
location /ws {{
  proxy_pass http://{OLD}:5066;
  proxy_http_version 1.1;
  proxy_set_header Upgrade $http_upgrade;
  proxy_set_header Connection "Upgrade";
  proxy_read_timeout 6h;
  proxy_send_timeout 6h;
  client_body_timeout 6h;
  send_timeout 6h;
}}
"""

DUMMY_NIC = f"""\
[Unit]
Description=Configure dummy NIC for FreeSWITCH
Before=freeswitch.service
After=network.target

[Service]
ExecStart=/sbin/ip addr add {OLD} dev lo

[Install]
WantedBy=multi-user.target
"""

BBB_WEB_PROPERTIES = f"""\
bigbluebutton.web.serverURL=https://{FQDN}
securitySalt=Ap1Bq2Cr3Ds4Et5Fu6Gv7Hw8Ix9Jy0Kz1La2Mb3N
"""


@pytest.fixture
def imds() -> Iterator[Imds]:
    server = Imds({
        "meta-data/instance-id": "i-0abc123def4567890",
        "meta-data/local-ipv4": PRIVATE,
        "meta-data/public-ipv4": NEW,
        "meta-data/placement/region": "eu-west-1",
    })
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


@pytest.fixture
def host(shell, imds: Imds) -> dict[str, Path]:
    """A stopped-and-started BBB host: bbb-install's files with the old address, params/runtime env."""
    root = shell.root
    files = {
        "production.yml": (root / "etc/bigbluebutton/bbb-webrtc-sfu/production.yml", PRODUCTION_YML),
        "vars.xml": (root / "opt/freeswitch/etc/freeswitch/vars.xml", VARS_XML),
        "external.xml": (root / "opt/freeswitch/etc/freeswitch/sip_profiles/external.xml", EXTERNAL_XML),
        "sip.nginx": (root / "usr/share/bigbluebutton/nginx/sip.nginx", SIP_NGINX),
        "dummy-nic.service": (root / "lib/systemd/system/dummy-nic.service", DUMMY_NIC),
        "bbb-web.properties": (root / "etc/bigbluebutton/bbb-web.properties", BBB_WEB_PROPERTIES),
    }
    for path, text in files.values():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    files["production.yml"][0].chmod(0o644)
    (root / "conf/params.env").write_text(
        f"READY_WAIT_SECONDS=600\nENV_NAME=bbb\nDOMAIN=bbb.example.com\nTURN_SECRET_ARN={TURN_ARN}\n"
        "TURN_CREDENTIAL_TTL=86400\n"
    )
    # The TURN secret version bbb-web issued with before the server slept; the shim answers the current one.
    (root / "state/turn-secret-version").write_text(f"{TURN_V1}@0\n")
    (root / "turn-current").write_text(f"{TURN_V1}\t{TURN_SECRET_1}\n")
    (root / "conf/runtime.env").write_text(
        f"INSTANCE_ID=i-0abc123def4567890\nPUBLIC_IPV4={OLD}\nPRIVATE_IPV4={PRIVATE}\nAWS_REGION=eu-west-1\n"
        f"FQDN={FQDN}\nASG_NAME=bbb-fleet\n"
    )
    (root / "state/bbb-installed").write_text("")
    (root / "boot_id").write_text(BOOT_ID + "\n")
    shell.env.update({
        "IMDS_ENDPOINT": imds.endpoint,
        "BBB_ETC": str(root / "etc/bigbluebutton"),
        "FREESWITCH_CONF": str(root / "opt/freeswitch/etc/freeswitch"),
        "BBB_NGINX_DIR": str(root / "usr/share/bigbluebutton/nginx"),
        "SYSTEMD_LIB_DIR": str(root / "lib/systemd/system"),
        "BOOT_ID_FILE": str(root / "boot_id"),
    })
    shell.shim("ip")
    shell.shim("aws", f'[[ "$1 $2" == "secretsmanager get-secret-value" ]] && cat {root}/turn-current; exit 0')
    shell.shim("systemctl", "exit 3")  # bbb-web is not running yet when the addresses step runs
    return {name: path for name, (path, _text) in files.items()}


TURN_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:bbb-TurnSecret-AbCdEf"
TURN_V1, TURN_V2 = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"
TURN_SECRET_1, TURN_SECRET_2 = "Tq4Wm8Zr2Xc6Vb0Nn3Kk7Jj1Hh5Gg9Ff2Dd6Ss0A", "Uz7Yx3Wv9Ut1Sr5Qp2On8Ml4Kj6Ih0Gf3Ed7Cb1B"


def api_answers(shell, body: str) -> None:
    """curl: the BBB API through nginx answers `body`; everything else (IMDS) is the real curl."""
    shell.shim("curl", f"""
        if [[ " $* " == *"/bigbluebutton/api"* ]]; then printf '%s' {shlex.quote(body)}; exit 0; fi
        exec /usr/bin/curl "$@"
    """, log=False)


def on_boot(shell, mode: str):
    return shell.run(f"bash {shlex.quote(str(USERDATA / 'bbb/on_boot.sh'))} {mode}")


def test_wake_rewrites_every_announced_address_and_nothing_else(shell, host: dict[str, Path]) -> None:
    before = {name: path.read_text() for name, path in host.items()}
    result = on_boot(shell, "addresses")
    assert result.returncode == 0, result.stderr

    sfu = yaml.safe_load(host["production.yml"].read_text())
    assert sfu["freeswitch"] == {"ip": NEW, "sip_ip": NEW}
    assert sfu["mediasoup"]["webrtc"]["listenIps"] == [{"ip": "0.0.0.0", "announcedIp": NEW}]
    assert sfu["mediasoup"]["plainRtp"]["listenIp"] == {"ip": "0.0.0.0", "announcedIp": NEW}
    vars_xml = host["vars.xml"].read_text()
    assert f'data="external_rtp_ip={NEW}"' in vars_xml and f'data="external_sip_ip={NEW}"' in vars_xml
    assert f'<param name="ws-binding" value="{NEW}:5066"/>' in host["external.xml"].read_text()
    assert f'<param name="wss-binding" value="{NEW}:7443"/>' in host["external.xml"].read_text()
    assert f"proxy_pass http://{NEW}:5066;" in host["sip.nginx"].read_text()
    assert f"ExecStart=/sbin/ip addr add {NEW} dev lo" in host["dummy-nic.service"].read_text()
    # Only the old address changed: every other byte is what bbb-install wrote (private IP, a look-alike, names).
    for name, path in host.items():
        assert path.read_text() == before[name].replace(f"{OLD}0", "KEEP").replace(OLD, NEW).replace("KEEP", f"{OLD}0")
    assert OLD + "0" in vars_xml and PRIVATE in vars_xml
    assert host["bbb-web.properties"].read_text() == BBB_WEB_PROPERTIES
    assert oct(host["production.yml"].stat().st_mode & 0o777) == "0o644"
    # FreeSWITCH's loopback copy of the address, the runtime record, and this boot's stamp.
    assert shell.calls("ip") == [["ip", "addr", "del", f"{OLD}/32", "dev", "lo"],
                                 ["ip", "addr", "replace", f"{NEW}/32", "dev", "lo"]]
    assert f"PUBLIC_IPV4={NEW}" in (shell.root / "conf/runtime.env").read_text()
    assert (shell.root / "state/addresses").read_text() == f"{BOOT_ID} {NEW}\n"
    assert f"public IPv4 changed from {OLD} to {NEW}" in result.stderr

    # A second run in the same boot (or a reboot with the same address) changes nothing.
    after = {name: path.read_text() for name, path in host.items()}
    again = on_boot(shell, "addresses")
    assert again.returncode == 0 and f"already announces {NEW}" in again.stderr
    assert {name: path.read_text() for name, path in host.items()} == after


def test_ready_only_after_this_boots_rewrite_and_a_successful_api(shell, host: dict[str, Path]) -> None:
    api_answers(shell, "<response><returncode>SUCCESS</returncode><version>2.0</version></response>")
    (shell.root / "state/addresses").write_text(f"an-earlier-boot-id {OLD}\n")  # last wake's stamp
    refused = on_boot(shell, "ready")
    assert refused.returncode != 0 and "not rewritten in this boot" in refused.stderr
    assert shell.calls("aws") == []

    assert on_boot(shell, "addresses").returncode == 0
    ready = on_boot(shell, "ready")
    assert ready.returncode == 0, ready.stderr
    turn_secret = ["aws", "secretsmanager", "get-secret-value", "--secret-id", TURN_ARN, "--query",
                   "[VersionId,SecretString]", "--output", "text"]
    # The TURN secret is checked in both steps (unchanged here: no tag for it), then the ready tag.
    assert shell.calls("aws") == [turn_secret, turn_secret,
                                  ["aws", "ec2", "create-tags", "--resources", "i-0abc123def4567890", "--tags",
                                   "Key=bbb-on-aws:ready,Value=1700000000"]]


def test_a_secret_rotated_while_asleep_is_applied_before_bbb_web_starts(shell, host: dict[str, Path]) -> None:
    (shell.root / "turn-current").write_text(f"{TURN_V2}\t{TURN_SECRET_2}\n")
    result = on_boot(shell, "addresses")
    assert result.returncode == 0, result.stderr
    xml = (shell.root / "etc/bigbluebutton/turn-stun-servers.xml").read_text()
    assert xml.count(f'value="{TURN_SECRET_2}"') == 3
    assert ["systemctl", "restart", "bbb-web"] not in shell.calls("systemctl")  # not started yet: nothing to restart
    tags = [c[-1] for c in shell.calls("aws") if c[1:3] == ["ec2", "create-tags"]]
    assert tags == [f"Key=bbb-on-aws:turn-secret,Value={TURN_V2}@1700000000"]


def test_an_unreadable_address_stops_the_boot_step_without_a_stamp(shell, host: dict[str, Path]) -> None:
    host["vars.xml"].write_text(VARS_XML.replace(f"external_rtp_ip={OLD}", "external_rtp_ip=stun:stun.example"))
    result = on_boot(shell, "addresses")
    assert result.returncode != 0 and "cannot read the announced address" in result.stderr
    assert not (shell.root / "state/addresses").exists()
    assert f"proxy_pass http://{OLD}:5066;" in host["sip.nginx"].read_text()  # untouched


def test_first_boot_is_left_to_the_bootstrap(shell, host: dict[str, Path]) -> None:
    (shell.root / "state/bbb-installed").unlink()
    result = on_boot(shell, "addresses")
    assert result.returncode == 0 and "first boot" in result.stderr
    assert OLD in host["vars.xml"].read_text() and shell.calls("ip") == []


def test_units_order_the_rewrite_before_bbb_and_the_tag_after_it() -> None:
    units = USERDATA / "bbb/units"
    rewrite = (units / "bbb-on-aws-addresses.service").read_text()
    before = next(line for line in rewrite.splitlines() if line.startswith("Before="))
    for service in ("freeswitch.service", "bbb-webrtc-sfu.service", "nginx.service", "bbb-web.service"):
        assert service in before.split("=", 1)[1].split()
    assert "After=network-online.target dummy-nic.service" in rewrite
    ready = (units / "bbb-on-aws-ready.service").read_text()
    after = next(line for line in ready.splitlines() if line.startswith("After="))
    assert {"bbb-on-aws-addresses.service", "nginx.service", "bbb-web.service"} <= set(after.split("=", 1)[1].split())
    bootstrap = (USERDATA / "bbb/bootstrap.sh").read_text()
    assert "systemctl enable bbb-on-aws-addresses.service bbb-on-aws-ready.service" in bootstrap
