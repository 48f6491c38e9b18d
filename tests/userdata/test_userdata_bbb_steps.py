"""bbb/lib.sh and the BBB timers for real under bash; only AWS, DNS and system commands are shims."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

USERDATA = Path(__file__).resolve().parents[2] / "userdata"
BBB = ("common/lib.sh", "bbb/lib.sh", "bbb/data.sh")
TURN_SECRET = "Tq4Wm8Zr2Xc6Vb0Nn3Kk7Jj1Hh5Gg9Ff2Dd6Ss0A"
API_SECRET = "Ap1Bq2Cr3Ds4Et5Fu6Gv7Hw8Ix9Jy0Kz1La2Mb3N"
FQDN = "bbb-0abc123def4567890.bbb.example.com"

GET_MEETINGS = """<response>
  <returncode>SUCCESS</returncode>
  <meetings>
    <meeting>
      <meetingName>Physics 101</meetingName>
      <meetingID>physics-101</meetingID>
      <internalMeetingID>183f0bf3a0982a127bdb8161e0c44eb696b3e75c-1531240585189</internalMeetingID>
      <createTime>1531240585189</createTime>
      <voiceBridge>70066</voiceBridge>
      <running>true</running>
      <hasUserJoined>true</hasUserJoined>
      <recording>true</recording>
      <participantCount>23</participantCount>
      <listenerCount>4</listenerCount>
      <voiceParticipantCount>12</voiceParticipantCount>
      <videoCount>3</videoCount>
      <moderatorCount>1</moderatorCount>
      <attendees>
        <attendee><userID>w_1</userID><fullName>Ada</fullName><role>MODERATOR</role><clientType>HTML5</clientType></attendee>
      </attendees>
      <metadata><bbb-origin>greenlight</bbb-origin></metadata>
      <isBreakout>false</isBreakout>
      <breakoutRooms><breakout>physics-101-room-1</breakout></breakoutRooms>
    </meeting>
    <meeting>
      <meetingName>Physics 101 (Room 1)</meetingName>
      <meetingID>physics-101-room-1</meetingID>
      <participantCount>5</participantCount>
      <moderatorCount>0</moderatorCount>
      <isBreakout>true</isBreakout>
    </meeting>
    <meeting>
      <meetingName>Staff</meetingName>
      <meetingID>staff</meetingID>
      <participantCount>7</participantCount>
      <moderatorCount>2</moderatorCount>
      <isBreakout>false</isBreakout>
    </meeting>
  </meetings>
</response>
"""

HTML5_NGINX = """location @html5client {
  root /usr/share/bigbluebutton/html5-client;
  try_files $uri /html5client/index.html;
}

location /html5client/locales {
  alias /usr/share/bigbluebutton/html5-client/locales;
  autoindex on;
  autoindex_format json;
}

location = /html5client/index.html {
  alias /usr/share/bigbluebutton/html5-client/index.html;
}

location ~ ^/html5client/(.*\\.(js|css))$ {
  gzip_static on;
  alias /usr/share/bigbluebutton/html5-client/$1;
}

location /html5client {
  alias /usr/share/bigbluebutton/html5-client;
  try_files $uri @html5client;
}
"""


# --- names and DNS ----------------------------------------------------------------------------------------


def test_fqdn_per_role(shell) -> None:
    result = shell.run("bbb_fqdn i-0abc123def4567890 bbb.example.com bbb; bbb_fqdn i-0abc bbb.example.com single",
                       libs=BBB)
    assert result.stdout.split() == [FQDN, "bbb.example.com"]


def dig_shim(shell, answers: list[str]) -> None:
    """Name servers live at example.com; the n-th A query gets answers[min(n, last)]."""
    counter = shell.root / "dig-count"
    counter.write_text("0")
    table = "\n".join(f"answers[{i}]={shlex.quote(a)}" for i, a in enumerate(answers))
    shell.shim("dig", f"""
        if [[ " $* " == *" NS "* ]]; then
          [[ ${{@: -1}} == example.com ]] && printf 'ns-1.awsdns-01.org.\\nns-2.awsdns-02.co.uk.\\n'
          exit 0
        fi
        declare -a answers; {table}
        n=$(cat {counter}); echo $((n + 1)) >{counter}
        last=$(( ${{#answers[@]}} - 1 )); ((n > last)) && n=$last
        [[ -n ${{answers[$n]}} ]] && printf '%s\\n' ${{answers[$n]}}
        exit 0
    """)


def test_dns_wait_succeeds_after_consecutive_agreeing_answers(shell) -> None:
    # Two name servers per round: nothing, nothing, then a stale record on one server, then ours everywhere.
    dig_shim(shell, ["", "", "198.51.100.7", "203.0.113.10"])
    result = shell.run(f"wait_for_dns {FQDN} 203.0.113.10 600 10 3", libs=BBB)
    assert result.returncode == 0, result.stderr
    a_queries = [c for c in shell.calls("dig") if " A " in f" {' '.join(c)} "]
    assert {c[-1] for c in a_queries} == {"@ns-1.awsdns-01.org", "@ns-2.awsdns-02.co.uk"}
    ns_queries = [c[-1] for c in shell.calls("dig") if "NS" in c]
    assert ns_queries[:3] == [FQDN, "bbb.example.com", "example.com"]  # walked up to the zone apex
    assert "answers '198.51.100.7'" in result.stderr
    assert f"{FQDN} resolves to 203.0.113.10" in result.stderr
    # 3 failing rounds (1 query each: the first server already disagrees) then 3 good rounds of 2 queries.
    assert len(a_queries) == 3 + 3 * 2


def test_dns_wait_requires_every_server_to_agree(shell) -> None:
    dig_shim(shell, ["203.0.113.10", "", "203.0.113.10", "203.0.113.10"])
    result = shell.run(f"wait_for_dns {FQDN} 203.0.113.10 600 10 2", libs=BBB)
    assert result.returncode == 0
    assert "ns-2.awsdns-02.co.uk answers ''" in result.stderr


def test_dns_wait_times_out_with_a_clear_message(shell) -> None:
    dig_shim(shell, [""])
    result = shell.run(f"wait_for_dns {FQDN} 203.0.113.10 120 10 3 || echo timed-out", libs=BBB)
    assert result.stdout.strip() == "timed-out"
    assert f"{FQDN} did not resolve to 203.0.113.10 within 120s" in result.stderr
    assert int(shell.clock_file.read_text()) - 1700000000 == 120


def test_dns_wait_rejects_several_addresses(shell) -> None:
    dig_shim(shell, ["203.0.113.10 198.51.100.7"])
    result = shell.run(f"wait_for_dns {FQDN} 203.0.113.10 30 10 1 || echo timed-out", libs=BBB)
    assert result.stdout.strip() == "timed-out"


# --- data volume ------------------------------------------------------------------------------------------


def fake_disks(shell, names: list[str], by_id: dict[str, str]) -> Path:
    dev = shell.root / "dev"
    (dev / "disk" / "by-id").mkdir(parents=True)
    for name in names:
        (dev / name).write_text("")
    for link, target in by_id.items():
        (dev / "disk" / "by-id" / link).symlink_to(f"../../{target}")
    shell.shim("findmnt", f"echo {dev}/nvme0n1p1")
    shell.shim("lsblk", "echo nvme0n1")
    return dev


def test_data_device_on_nitro_is_the_non_root_ebs_namespace(shell) -> None:
    dev = fake_disks(shell, ["nvme0n1", "nvme0n1p1", "nvme1n1", "nvme2n1"], {
        "nvme-Amazon_Elastic_Block_Store_vol0aaaaaaaaaaaaaaaa": "nvme0n1",
        "nvme-Amazon_Elastic_Block_Store_vol0aaaaaaaaaaaaaaaa-part1": "nvme0n1p1",
        "nvme-Amazon_Elastic_Block_Store_vol0bbbbbbbbbbbbbbbb": "nvme1n1",
        "nvme-Amazon_Elastic_Block_Store_vol0bbbbbbbbbbbbbbbb_1": "nvme1n1",
        "nvme-Amazon_EC2_NVMe_Instance_Storage_AWS1234": "nvme2n1",
    })
    result = shell.run("find_data_device", libs=BBB, env={"DEV_DIR": str(dev)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(dev / "nvme1n1")


def test_data_device_by_its_block_device_name(shell) -> None:
    dev = fake_disks(shell, ["xvda", "xvdf"], {})
    (dev / "sdf").symlink_to("xvdf")
    result = shell.run("find_data_device", libs=BBB, env={"DEV_DIR": str(dev)})
    assert result.stdout.strip() == str(dev / "xvdf")


def test_two_data_volumes_are_refused(shell) -> None:
    dev = fake_disks(shell, ["nvme0n1", "nvme1n1", "nvme2n1"], {
        "nvme-Amazon_Elastic_Block_Store_vol0aaaaaaaaaaaaaaaa": "nvme0n1",
        "nvme-Amazon_Elastic_Block_Store_vol0bbbbbbbbbbbbbbbb": "nvme1n1",
        "nvme-Amazon_Elastic_Block_Store_vol0cccccccccccccccc": "nvme2n1",
    })
    result = shell.run("find_data_device || echo none", libs=BBB, env={"DEV_DIR": str(dev)})
    assert result.stdout.strip() == "none"
    assert "several EBS data volumes attached" in result.stderr


def test_prepare_data_volume_formats_once_and_mounts_via_fstab(shell) -> None:
    dev = fake_disks(shell, ["nvme0n1", "nvme1n1"], {
        "nvme-Amazon_Elastic_Block_Store_vol0aaaaaaaaaaaaaaaa": "nvme0n1",
        "nvme-Amazon_Elastic_Block_Store_vol0bbbbbbbbbbbbbbbb": "nvme1n1",
    })
    state = shell.root / "disk-state"
    state.mkdir()
    (dev / "nvme1n1").write_bytes(bytes(2 << 20))  # a never-written volume reads as zeros
    shell.shim("blkid", f"""
        if [[ $1 == -p ]]; then [[ -e {state}/formatted ]] && exit 0; exit 2; fi
        if [[ $* == *TYPE* ]]; then [[ -e {state}/formatted ]] && echo ext4; exit 0; fi
        [[ -e {state}/formatted ]] && echo 5f1c2d3e-aaaa-bbbb-cccc-0123456789ab
    """)
    shell.shim("mkfs.ext4", f"touch {state}/formatted")
    shell.shim("mountpoint", f"[[ -e {state}/mounted ]]")
    shell.shim("mount", f"touch {state}/mounted")
    fstab = shell.root / "fstab"
    fstab.write_text("LABEL=cloudimg-rootfs / ext4 discard,errors=remount-ro 0 1\n")
    env = {"DEV_DIR": str(dev), "FSTAB": str(fstab), "DATA_MOUNT": str(shell.root / "var-bigbluebutton")}
    for _ in range(2):
        result = shell.run("prepare_data_volume", libs=BBB, env=env)
        assert result.returncode == 0, result.stderr
    assert shell.calls("mkfs.ext4") == [["mkfs.ext4", "-q", "-L", "bbbdata", str(dev / "nvme1n1")]]
    assert len(shell.calls("mount")) == 1
    lines = fstab.read_text().splitlines()
    assert lines[1] == (f"UUID=5f1c2d3e-aaaa-bbbb-cccc-0123456789ab {shell.root}/var-bigbluebutton ext4 "
                        "defaults,nofail,x-systemd.device-timeout=30s 0 2")
    assert len(lines) == 2


def test_missing_data_volume_fails_after_the_wait(shell) -> None:
    dev = fake_disks(shell, ["nvme0n1"], {"nvme-Amazon_Elastic_Block_Store_vol0aaaaaaaaaaaaaaaa": "nvme0n1"})
    result = shell.run("prepare_data_volume", libs=BBB, env={"DEV_DIR": str(dev), "DATA_DEVICE_TIMEOUT": "30"})
    assert result.returncode == 1
    assert "no data volume appeared for /var/bigbluebutton after 30s" in result.stderr


# --- bbb-install, secrets, TURN configuration -------------------------------------------------------------


def bbb_install_shim(shell, exit_code: int = 0) -> Path:
    record = shell.root / "bbb-install-run"
    fake = shell.root / "fake-bbb-install.sh"
    fake.write_text(f'printf "%s\\n" "$@" >{record}; echo "IP=$IP INTERNAL_IP=$INTERNAL_IP" >>{record}\n'
                    "echo '+ SECRET_KEY_BASE=0123generatedbygreenlight'; echo 'bbb-install says hello'\n"
                    f"echo \"bbb-install: Let's Encrypt SSL request did not succeed - exiting\"; exit {exit_code}\n")
    shell.shim("curl", f'while [[ $# -gt 0 ]]; do [[ $1 == -o ]] && cp {fake} "$2"; shift; done')
    return record


@pytest.mark.parametrize("single", [0, 1])
def test_bbb_install_uses_our_turn_fleet_without_the_secret_on_its_command_line(shell, single: int) -> None:
    record = bbb_install_shim(shell)
    env = {"BBB_INSTALL_URL": "https://example.test/bbb-install.sh", "BBB_VERSION": "jammy-300",
           "PUBLIC_IPV4": "203.0.113.10", "PRIVATE_IPV4": "10.1.0.23"}
    result = shell.run(f"run_bbb_install {FQDN} ops@example.com turn.bbb.example.com {single}", libs=BBB, env=env)
    assert result.returncode == 0, result.stderr
    args = record.read_text().splitlines()
    expected = ["-v", "jammy-300", "-s", FQDN, "-e", "ops@example.com", "-c",
                "turn.bbb.example.com:turn-secret-set-by-bbb-on-aws"] + (["-g"] if single else [])
    assert args[:-1] == expected
    assert args[-1] == "IP=203.0.113.10 INTERNAL_IP=10.1.0.23"
    install_log = shell.root / "log" / "bbb-install.log"
    assert "bbb-install says hello" in install_log.read_text()
    assert oct(install_log.stat().st_mode & 0o777) == "0o600"  # it holds bbb-install's traced secrets
    assert "SECRET_KEY_BASE" not in result.stderr
    assert "is not pinned (sha256" in result.stderr


def test_bbb_install_checks_the_pinned_sha256(shell) -> None:
    bbb_install_shim(shell)
    env = {"BBB_INSTALL_URL": "https://example.test/x.sh", "BBB_VERSION": "jammy-300", "PUBLIC_IPV4": "1.2.3.4",
           "PRIVATE_IPV4": "10.0.0.1", "BBB_INSTALL_SHA256": "0" * 64}
    result = shell.run(f"run_bbb_install {FQDN} ops@example.com turn.bbb.example.com 0", libs=BBB, env=env)
    assert result.returncode == 1
    assert "does not match the pinned SHA-256" in result.stderr
    fake = (shell.root / "fake-bbb-install.sh").read_bytes()
    env["BBB_INSTALL_SHA256"] = hashlib.sha256(fake).hexdigest()
    result = shell.run(f"run_bbb_install {FQDN} ops@example.com turn.bbb.example.com 0", libs=BBB, env=env)
    assert result.returncode == 0, result.stderr


def test_failed_bbb_install_stops_the_bootstrap_with_its_log_tail(shell) -> None:
    bbb_install_shim(shell, exit_code=1)
    env = {"BBB_INSTALL_URL": "https://example.test/x.sh", "BBB_VERSION": "jammy-300", "PUBLIC_IPV4": "1.2.3.4",
           "PRIVATE_IPV4": "10.0.0.1"}
    result = shell.run(f"run_bbb_install {FQDN} ops@example.com turn.bbb.example.com 0", libs=BBB, env=env)
    assert result.returncode == 1
    assert "bbb-install: Let's Encrypt SSL request did not succeed" in result.stderr
    assert "bbb-install failed" in result.stderr
    assert "SECRET_KEY_BASE" not in result.stderr and "says hello" not in result.stderr


def test_fleet_secret_goes_to_bbb_and_to_greenlight_once(shell) -> None:
    properties = shell.root / "bbb-web.properties"
    properties.write_text("securitySalt=randomfrominstall\n")
    # bbb-conf --setsecret rewrites securitySalt, as the real one does.
    shell.shim("bbb-conf", f'sed -i "s/^securitySalt=.*/securitySalt=$2/" {properties}')
    shell.shim("docker")
    greenlight = shell.root / "greenlight-v3"
    greenlight.mkdir()
    (greenlight / ".env").write_text("SECRET_KEY_BASE=abc\nBIGBLUEBUTTON_SECRET=randomfrominstall\n")
    env = {"GREENLIGHT_DIR": str(greenlight), "BBB_SERVLET_PROPERTIES": str(properties),
           "BBB_ETC": str(shell.root / "none")}
    for _ in range(2):  # the second run (a re-run of the bootstrap) changes and restarts nothing
        result = shell.run(f"apply_fleet_secret {API_SECRET}", libs=BBB, env=env)
        assert result.returncode == 0, result.stderr
        assert API_SECRET not in result.stderr
    assert shell.calls("bbb-conf") == [["bbb-conf", "--setsecret", API_SECRET]]
    assert (greenlight / ".env").read_text() == f"SECRET_KEY_BASE=abc\nBIGBLUEBUTTON_SECRET={API_SECRET}\n"
    assert shell.calls("docker") == [["docker", "compose", "-f", f"{greenlight}/docker-compose.yml", "up", "-d",
                                      "--force-recreate"]]


def test_turn_stun_servers_lists_our_relays(shell) -> None:
    etc = shell.root / "etc-bbb"
    etc.mkdir()
    env = {"BBB_ETC": str(etc), "BBB_GROUP": "root"}
    result = shell.run(f"write_turn_stun_servers {TURN_SECRET} bbb.example.com 86400", libs=BBB, env=env)
    assert result.returncode == 0, result.stderr
    path = etc / "turn-stun-servers.xml"
    assert oct(path.stat().st_mode & 0o777) == "0o640"
    ns = {"b": "http://www.springframework.org/schema/beans"}
    root = ET.parse(path).getroot()
    servers = {}
    for bean in root.findall("b:bean[@class='org.bigbluebutton.web.services.turn.TurnServer']", ns):
        args = {a.get("index"): a.get("value") for a in bean.findall("b:constructor-arg", ns)}
        servers[bean.get("id")] = args
    assert sorted(a["1"] for a in servers.values()) == [
        "turn:turn.bbb.example.com:3478", "turn:turn.bbb.example.com:3478?transport=tcp",
        "turns:turns.bbb.example.com:443?transport=tcp"]
    assert {a["0"] for a in servers.values()} == {TURN_SECRET}
    assert {a["2"] for a in servers.values()} == {"86400"}  # BBB's credential lifetime, rendered TURN_CREDENTIAL_TTL
    refs = root.findall("b:bean[@id='stunTurnService']/b:property[@name='turnServers']/b:set/b:ref", ns)
    assert sorted(r.get("bean") for r in refs) == sorted(servers)
    result = shell.run("write_turn_stun_servers 'bad\"secret' bbb.example.com 86400", libs=BBB, env=env)
    assert result.returncode == 1 and "letters and digits only" in result.stderr


# --- recordings to Scalelite ------------------------------------------------------------------------------


def test_efs_utils_from_aws_repository(shell) -> None:
    apt = shell.root / "apt"
    os_release = shell.root / "os-release"
    os_release.write_text('NAME="Ubuntu"\nVERSION_ID="22.04"\n')
    shell.shim("curl", 'while [[ $# -gt 0 ]]; do [[ $1 == -o ]] && echo "-----BEGIN PGP PUBLIC KEY BLOCK-----" >"$2"; '
                       "shift; done")
    shell.shim("gpg", 'while [[ $# -gt 0 ]]; do [[ $1 == -o ]] && echo binary-key >"$2"; shift; done')
    shell.shim("apt-get")
    result = shell.run("install_efs_utils", libs=BBB, env={"APT_ETC": str(apt), "OS_RELEASE": str(os_release)})
    assert result.returncode == 0, result.stderr
    assert (apt / "sources.list.d" / "efs-utils.list").read_text() == (
        f"deb [signed-by={apt}/keyrings/efs-utils.gpg] https://amazon-efs-utils.aws.com/repo/deb/ubuntu/22.04 "
        "22.04 main\n")
    assert (apt / "keyrings" / "efs-utils.gpg").read_text() == "binary-key\n"
    assert shell.calls("curl")[0][-1] == "https://amazon-efs-utils.aws.com/efs-utils.gpg"
    assert shell.calls("apt-get")[-1][-1] == "amazon-efs-utils"


def test_spool_is_mounted_with_tls_through_the_access_point(shell) -> None:
    fstab = shell.root / "fstab"
    fstab.write_text("")
    state = shell.root / "spool-mounted"
    shell.shim("mountpoint", f"[[ -e {state} ]]")
    shell.shim("mount", f"touch {state}")
    env = {"FSTAB": str(fstab), "SPOOL_MOUNT": str(shell.root / "spool")}
    for _ in range(2):
        result = shell.run("mount_spool fs-0123456789abcdef0 fsap-0123456789abcdef0", libs=BBB, env=env)
        assert result.returncode == 0, result.stderr
    assert fstab.read_text() == (f"fs-0123456789abcdef0:/ {shell.root}/spool efs "
                                 "_netdev,nofail,noresvport,tls,iam,accesspoint=fsap-0123456789abcdef0 0 0\n")
    assert shell.calls("mount") == [["mount", f"{shell.root}/spool"]]


def test_scalelite_transfer_script_and_config(shell) -> None:
    shell.shim("curl", 'while [[ $# -gt 0 ]]; do [[ $1 == -o ]] && out=$2; shift; done\n'
                       'printf "#!/usr/bin/ruby\\nspool_dir = props[\\"spool_dir\\"]\\n" >"$out"')
    shell.shim("getent", "exit 2")
    shell.shim("groupadd")
    shell.shim("usermod")
    rap = shell.root / "rap"
    env = {"RAP_SCRIPTS_DIR": str(rap), "DATA_MOUNT": str(shell.root / "data"),
           "SPOOL_MOUNT": "/mnt/scalelite-spool", "BBB_USER": "root", "BBB_GROUP": "root"}
    result = shell.run("install_scalelite_transfer v1.6.5", libs=BBB, env=env)
    assert result.returncode == 0, result.stderr
    assert shell.calls("curl")[0][-1] == (
        "https://raw.githubusercontent.com/blindsidenetworks/scalelite/v1.6.5/bigbluebutton/scalelite_post_publish.rb")
    script = rap / "post_publish" / "scalelite_post_publish.rb"
    assert script.stat().st_mode & 0o777 == 0o755
    config = yaml.safe_load((rap / "scalelite.yml").read_text())
    assert config == {"work_dir": f"{shell.root}/data/recording/scalelite", "spool_dir": "/mnt/scalelite-spool",
                      "extra_rsync_opts": []}
    assert shell.calls("groupadd") == [["groupadd", "-g", "2000", "scalelite-spool"]]
    assert shell.calls("usermod") == [["usermod", "-a", "-G", "scalelite-spool", "root"]]
    assert (shell.root / "data" / "recording" / "scalelite").is_dir()


def test_scalelite_download_that_is_not_the_script_is_refused(shell) -> None:
    shell.shim("curl", 'while [[ $# -gt 0 ]]; do [[ $1 == -o ]] && echo "<html>404</html>" >"$2"; shift; done')
    result = shell.run("install_scalelite_transfer v9.9.9", libs=BBB, env={"RAP_SCRIPTS_DIR": str(shell.root)})
    assert result.returncode == 1
    assert "does not look like the transfer script" in result.stderr


# --- cluster proxy ----------------------------------------------------------------------------------------


def cluster_proxy_tree(shell) -> dict[str, str]:
    etc, nginx, default = (shell.root / d for d in ("etc-bbb", "nginx", "default"))
    for d in (etc, nginx, default):
        d.mkdir()
    (etc / "bbb-web.properties").write_text("securitySalt=abc\ndefaultHTML5ClientUrl=https://old/html5client\n")
    (etc / "bbb-html5.yml").write_text("public:\n  app:\n    appName: My BBB\n  kurento:\n    wsUrl: old\n")
    (nginx / "bbb-html5.nginx").write_text(HTML5_NGINX)
    (default / "bbb-web").write_text('JDK_JAVA_OPTIONS="-Xmx2g"\nOTHER=1\n')
    return {"BBB_ETC": str(etc), "BBB_NGINX_DIR": str(nginx), "DEFAULTS_DIR": str(default)}


def snapshot(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()
            and not p.name.endswith(".log") and "calls" not in p.name}


def test_cluster_proxy_settings_from_seed_001(shell) -> None:
    env = cluster_proxy_tree(shell)
    result = shell.run(f"apply_cluster_proxy bbb-proxy.bbb.example.com {FQDN}", libs=BBB, env=env)
    assert result.returncode == 0, result.stderr
    sid = FQDN.split(".")[0]
    proxy = "https://bbb-proxy.bbb.example.com"
    props = dict(line.split("=", 1) for line in (Path(env["BBB_ETC"]) / "bbb-web.properties").read_text().splitlines())
    assert props == {
        "securitySalt": "abc",
        "defaultHTML5ClientUrl": f"{proxy}/{sid}/html5client",
        "presentationBaseURL": f"https://{FQDN}/bigbluebutton/presentation",
        "accessControlAllowOrigin": proxy,
        "graphqlWebsocketUrl": f"wss://{FQDN}/graphql",
        "graphqlApiUrl": f"https://{FQDN}/api/rest",
    }
    html5 = yaml.safe_load((Path(env["BBB_ETC"]) / "bbb-html5.yml").read_text())["public"]
    assert html5["app"] == {"appName": "My BBB", "basename": f"/{sid}/html5client",
                            "bbbWebBase": f"https://{FQDN}/bigbluebutton",
                            "learningDashboardBase": f"https://{FQDN}/learning-dashboard"}
    assert html5["kurento"]["wsUrl"] == f"wss://{FQDN}/bbb-webrtc-sfu"
    assert html5["media"] == {"stunTurnServersFetchAddress": f"https://{FQDN}/bigbluebutton/api/stuns",
                              "sip_ws_host": FQDN}
    assert html5["pads"]["url"] == f"https://{FQDN}/pad"
    assert html5["presentation"]["uploadEndpoint"] == f"https://{FQDN}/bigbluebutton/presentation/upload"
    middleware = yaml.safe_load((Path(env["BBB_ETC"]) / "bbb-graphql-middleware.yml").read_text())
    assert middleware == {"server": {"authorized_cross_origin": "bbb-proxy.bbb.example.com"}}
    assert json.loads((Path(env["BBB_ETC"]) / "etherpad.json").read_text()) == {"cluster_proxies": [proxy]}
    override = (shell.root / "systemd" / "bbb-html5.service.d" / "cluster.conf").read_text()
    assert f"Environment=ROOT_URL=https://127.0.0.1/{sid}/html5client" in override
    assert f"Environment=DDP_DEFAULT_CONNECTION_URL=https://{FQDN}/{sid}/html5client" in override
    default = (Path(env["DEFAULTS_DIR"]) / "bbb-web").read_text()
    assert default == ("OTHER=1\nJDK_JAVA_OPTIONS=\"-Dgrails.cors.enabled=true -Dgrails.cors.allowCredentials=true "
                       f'-Dgrails.cors.allowedOrigins={proxy},https://{FQDN}"\n')
    graphql = (Path(env["DEFAULTS_DIR"]) / "bbb-graphql-server").read_text()
    assert graphql == f'HASURA_GRAPHQL_CORS_DOMAIN="{proxy}"\n'

    nginx = (Path(env["BBB_NGINX_DIR"]) / "bbb-html5.nginx").read_text()
    locations = [line.strip() for line in nginx.splitlines() if line.startswith("location")]
    assert locations == [
        "location @html5client {",
        f"location /{sid}/html5client/locales {{",
        f"location = /{sid}/html5client/index.html {{",
        f"location ~ ^/{sid}/html5client/(.*\\.(js|css))$ {{",
        f"location /{sid}/html5client {{",
        "location =/html5client/locale { # bbb-on-aws: guest lobby locales come from this server",
    ]
    assert f"return 301 /{sid}$request_uri;" in nginx


def test_cluster_proxy_settings_are_idempotent(shell) -> None:
    env = cluster_proxy_tree(shell)
    shell.run(f"apply_cluster_proxy bbb-proxy.bbb.example.com {FQDN}", libs=BBB, env=env)
    first = snapshot(shell.root)
    result = shell.run(f"apply_cluster_proxy bbb-proxy.bbb.example.com {FQDN}", libs=BBB, env=env)
    assert result.returncode == 0, result.stderr
    assert snapshot(shell.root) == first


# --- restart, readiness and metrics -----------------------------------------------------------------------


def test_bigbluebutton_is_restarted_only_before_it_is_ready(shell) -> None:
    shell.shim("systemctl")
    shell.shim("bbb-conf")
    shell.run("restart_bigbluebutton_once", libs=BBB)
    assert shell.calls("bbb-conf") == [["bbb-conf", "--restart"]]
    (shell.root / "state" / "ready").write_text("1700000000\n")
    result = shell.run("restart_bigbluebutton_once", libs=BBB)
    assert result.returncode == 0
    assert len(shell.calls("bbb-conf")) == 1
    assert "already serving meetings: not restarting" in result.stderr


def api_shim(shell, bodies: list[str]) -> None:
    counter = shell.root / "curl-count"
    counter.write_text("0")
    table = "\n".join(f"bodies[{i}]={shlex.quote(b)}" for i, b in enumerate(bodies))
    shell.shim("curl", f"""
        declare -a bodies; {table}
        n=$(cat {counter}); echo $((n + 1)) >{counter}
        last=$(( ${{#bodies[@]}} - 1 )); ((n > last)) && n=$last
        [[ ${{bodies[$n]}} == fail ]] && exit 7
        printf '%s' "${{bodies[$n]}}"
    """)


def test_ready_tag_only_after_the_api_answers_success(shell) -> None:
    api_shim(shell, ["fail", "<response><returncode>FAILED</returncode></response>",
                     "<response><returncode>SUCCESS</returncode><version>2.0</version></response>"])
    shell.shim("aws")
    result = shell.run(f"INSTANCE_ID=i-0abc; become_ready {FQDN} 600 10", libs=BBB)
    assert result.returncode == 0, result.stderr
    assert len(shell.calls("curl")) == 3
    assert all(["--resolve", f"{FQDN}:443:127.0.0.1"] == c[c.index("--resolve"):c.index("--resolve") + 2]
               for c in shell.calls("curl"))
    assert shell.calls("curl")[0][-1] == f"https://{FQDN}/bigbluebutton/api"
    assert shell.calls("aws") == [["aws", "ec2", "create-tags", "--resources", "i-0abc", "--tags",
                                   "Key=bbb-on-aws:ready,Value=1700000020"]]


def test_no_ready_tag_when_the_api_never_answers(shell) -> None:
    api_shim(shell, ["<response><returncode>FAILED</returncode></response>"])
    shell.shim("aws")
    result = shell.run(f"INSTANCE_ID=i-0abc; become_ready {FQDN} 300 10 || echo not-ready", libs=BBB)
    assert result.stdout.strip() == "not-ready"
    assert shell.calls("aws") == []
    assert not (shell.root / "state" / "ready").exists()
    assert "did not answer SUCCESS within 300s" in result.stderr


def test_meetings_metrics_from_get_meetings(shell) -> None:
    conf = shell.root / "conf"
    (conf / "params.env").write_text("METRICS_NAMESPACE=BBBOnAWS/bbb\nROLE=bbb\n"
                                     "LOAD_WEIGHTS='{\"participant\":1,\"voice\":1,"
                                     "\"listener\":0.5,\"webcam\":2,\"webcamViewer\":0.1,\"screenShareViewer\":0.05}'\n")
    (conf / "runtime.env").write_text(f"FQDN={FQDN}\nASG_NAME=bbb-BbbFleet-1A2B3C\nINSTANCE_ID=i-0abc\n")
    servlet = shell.root / "bigbluebutton.properties"
    servlet.write_text("securitySalt=packaged-default\n")
    etc = shell.root / "etc-bbb"
    etc.mkdir()
    (etc / "bbb-web.properties").write_text(f"securitySalt={API_SECRET}\n")
    checksum = hashlib.sha256(f"getMeetings{API_SECRET}".encode()).hexdigest()
    (shell.root / "get-meetings.xml").write_text(GET_MEETINGS)
    shell.shim("curl", f"""
        [[ ${{@: -1}} == "https://{FQDN}/bigbluebutton/api/getMeetings?checksum={checksum}" ]] || exit 22
        cat {shell.root}/get-meetings.xml
    """)
    shell.shim("aws")
    # One recording published and waiting for the transfer to Scalelite, one tarball not yet in the spool,
    # and a spool whose oldest tarball arrived 300 s ago.
    data_mount = shell.root / "bbb-data"
    status = data_mount / "recording" / "status"
    for marker in ("archived/r1.done", "sanity/r1.done", "published/r1-presentation.done"):
        (status / marker).parent.mkdir(parents=True, exist_ok=True)
        (status / marker).touch()
    (data_mount / "recording" / "scalelite").mkdir(parents=True)
    (data_mount / "recording" / "scalelite" / "r0.tar").touch()
    spool = shell.root / "spool"
    spool.mkdir()
    (spool / "r9.tar").touch()
    old = time.time() - 300
    os.utime(spool / "r9.tar", (old, old))
    # The server's Let's Encrypt certificate, valid for 45 more days.
    live = shell.root / "letsencrypt" / FQDN
    live.mkdir(parents=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(live / "privkey.pem"), "-out", str(live / "fullchain.pem"),
                    "-days", "45", "-subj", f"/CN={FQDN}"], check=True, capture_output=True)
    env = {"BBB_SERVLET_PROPERTIES": str(servlet), "BBB_ETC": str(etc), "DATA_MOUNT": str(data_mount),
           "SPOOL_MOUNT": str(spool), "LETSENCRYPT_LIVE": str(shell.root / "letsencrypt")}
    result = shell.run(f"bash {USERDATA}/bbb/publish_meetings.sh", env=env)
    assert result.returncode == 0, result.stderr
    call, _load = shell.calls("aws")  # the load figure follows: tests/userdata/test_userdata_load_figure.py
    assert call[:5] == ["aws", "cloudwatch", "put-metric-data", "--namespace", "BBBOnAWS/bbb"]
    data = json.loads(call[call.index("--metric-data") + 1])
    group = [{"Name": "AutoScalingGroupName", "Value": "bbb-BbbFleet-1A2B3C"}]
    server = [*group, {"Name": "InstanceId", "Value": "i-0abc"}]
    by_key = {(d["MetricName"], len(d["Dimensions"])): d for d in data}
    assert len(by_key) == len(data) == 9
    assert by_key["Meetings", 1] == {"MetricName": "Meetings", "Unit": "Count", "Value": 2, "Dimensions": group}
    assert by_key["Participants", 2] == {"MetricName": "Participants", "Unit": "Count", "Value": 30,
                                         "Dimensions": server}
    assert by_key["VideoStreams", 1]["Value"] == 3
    assert by_key["RecordingsWaiting", 1]["Value"] == 2
    assert by_key["RecordingsFailed", 1]["Value"] == 0
    spool_age = by_key["RecordingSpoolAge", 1]
    assert spool_age["Unit"] == "Seconds" and 300 <= spool_age["Value"] < 360
    assert 44.9 <= by_key["CertificateDaysLeft", 1]["Value"] <= 45.0
    assert API_SECRET not in " ".join(" ".join(c) for c in shell.calls())


def test_meetings_metrics_fail_loudly_when_bbb_refuses(shell) -> None:
    conf = shell.root / "conf"
    (conf / "params.env").write_text("METRICS_NAMESPACE=BBBOnAWS/bbb\nROLE=bbb\n")
    (conf / "runtime.env").write_text(f"FQDN={FQDN}\nASG_NAME=asg\nINSTANCE_ID=i-0abc\n")
    props = shell.root / "p.properties"
    props.write_text(f"securitySalt={API_SECRET}\n")
    shell.shim("curl", "echo '<response><returncode>FAILED</returncode><messageKey>checksumError</messageKey>"
                       "<message>Checksums do not match</message></response>'")
    shell.shim("aws")
    result = shell.run(f"bash {USERDATA}/bbb/publish_meetings.sh",
                       env={"BBB_SERVLET_PROPERTIES": str(props), "BBB_ETC": str(shell.root)})
    assert result.returncode == 1
    assert "getMeetings failed: Checksums do not match" in result.stderr
    assert shell.calls("aws") == []
