"""The Python helpers the hosts run: metric data, the cluster proxy's YAML/JSON, the agent config, STUN ping."""

from __future__ import annotations

import importlib.util
import ipaddress
import json
import os
import struct
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

USERDATA = Path(__file__).resolve().parents[2] / "userdata"


def load(relative: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(relative.replace("/", "_")[:-3], USERDATA / relative)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


metric_data = load("common/metric_data.py")
cluster_proxy = load("bbb/cluster_proxy.py")
cw_agent_config = load("common/cw_agent_config.py")
stun_ping = load("common/stun_ping.py")

MEETING = ("<meeting><meetingID>{id}</meetingID><participantCount>{n}</participantCount>"
           "<isBreakout>{b}</isBreakout></meeting>")


def meetings_xml(*meetings: tuple[str, str, str]) -> str:
    body = "".join(MEETING.format(id=i, n=n, b=b) for i, n, b in meetings)
    return f"<response><returncode>SUCCESS</returncode><meetings>{body}</meetings></response>"


# --- metric data ------------------------------------------------------------------------------------------


def test_meetings_and_participants_skip_breakout_rooms() -> None:
    xml = meetings_xml(("a", "12", "false"), ("a-1", "4", "true"), ("b", "0", "false"), ("c", "9", "FALSE"))
    assert metric_data.count_meetings(xml) == (3, 21)


def test_no_meetings() -> None:
    xml = ("<response><returncode>SUCCESS</returncode><meetings/><messageKey>noMeetings</messageKey>"
           "<message>no meetings were found on this server</message></response>")
    assert metric_data.count_meetings(xml) == (0, 0)


@pytest.mark.parametrize(("xml", "message"), [
    ("<response><returncode>FAILED</returncode><messageKey>checksumError</messageKey></response>",
     "getMeetings failed: checksumError"),
    ("<html>502 Bad Gateway", "did not return XML"),
    (meetings_xml(("a", "many", "false")), "participantCount 'many' is not a number"),
])
def test_bad_get_meetings_answers(xml: str, message: str) -> None:
    with pytest.raises(metric_data.SourceError, match=message):
        metric_data.count_meetings(xml)


def test_prometheus_gauge_is_summed_over_labels_only_for_the_exact_name() -> None:
    text = ("# HELP turn_allocations active\n# TYPE turn_allocations gauge\n"
            "turn_allocations{transport=\"udp\",af=\"4\"} 7\n"
            "turn_allocations{transport=\"tcp\"} 1.0\nturn_allocations_created_total 99\nturn_allocations_x 5\n")
    assert metric_data.sum_samples(text, "turn_allocations") == 8.0
    assert metric_data.sum_samples("turn_allocations 0\n", "turn_allocations") == 0.0
    with pytest.raises(metric_data.SourceError, match="not found"):
        metric_data.sum_samples("turn_allocations_created_total 3\n", "turn_allocations")
    with pytest.raises(metric_data.SourceError, match="no numeric value"):
        metric_data.sum_samples("turn_allocations abc\n", "turn_allocations")


def test_metric_data_command_line() -> None:
    script = USERDATA / "common" / "metric_data.py"
    result = subprocess.run([sys.executable, str(script), "bbb-meetings", "--asg", "fleet"],
                            input=meetings_xml(("a", "5", "false")), capture_output=True, text=True, check=True)
    assert json.loads(result.stdout)[1] == {"MetricName": "Participants", "Unit": "Count", "Value": 5,
                                            "Dimensions": [{"Name": "AutoScalingGroupName", "Value": "fleet"}]}
    result = subprocess.run([sys.executable, str(script), "bbb-meetings", "--asg", "fleet"], input="nope",
                            capture_output=True, text=True)
    assert result.returncode == 1 and result.stdout == ""
    assert "metric_data: getMeetings did not return XML" in result.stderr


# --- cluster proxy files ----------------------------------------------------------------------------------


def test_cluster_proxy_keeps_existing_settings_and_other_proxies(tmp_path: Path) -> None:
    (tmp_path / "bbb-html5.yml").write_text("public:\n  app:\n    appName: Campus\n    basename: /old\n")
    (tmp_path / "etherpad.json").write_text('{"cluster_proxies": ["https://other.example.com"], "x": 1}')
    assert cluster_proxy.main(["--etc", str(tmp_path), "--proxy", "p.example.com", "--fqdn", "bbb-1.example.com"]) == 0
    assert cluster_proxy.main(["--etc", str(tmp_path), "--proxy", "p.example.com", "--fqdn", "bbb-1.example.com"]) == 0
    etherpad = json.loads((tmp_path / "etherpad.json").read_text())
    assert etherpad == {"cluster_proxies": ["https://other.example.com", "https://p.example.com"], "x": 1}
    html5 = (tmp_path / "bbb-html5.yml").read_text()
    assert "appName: Campus" in html5 and "basename: /bbb-1/html5client" in html5


def test_cluster_proxy_refuses_a_broken_override(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bbb-html5.yml").write_text("- a list\n")
    assert cluster_proxy.main(["--etc", str(tmp_path), "--proxy", "p.example.com", "--fqdn", "b.example.com"]) == 1
    assert "does not hold a YAML mapping" in capsys.readouterr().err


def test_merge_is_deep_and_does_not_mutate() -> None:
    base = {"a": {"b": 1, "c": 2}, "d": 3}
    merged = cluster_proxy.merge(base, {"a": {"c": 9, "e": 5}})
    assert merged == {"a": {"b": 1, "c": 9, "e": 5}, "d": 3}
    assert base == {"a": {"b": 1, "c": 2}, "d": 3}


# --- CloudWatch agent -------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["bbb", "turn", "proxy"])
def test_agent_config_ships_the_role_logs_to_the_stack_groups(role: str) -> None:
    config = cw_agent_config.agent_config(role, "/bbb/system", "/bbb/app", "BBBOnAWS/bbb")
    entries = config["logs"]["logs_collected"]["files"]["collect_list"]
    by_file = {e["file_path"]: e for e in entries}
    assert by_file["/var/log/bbb-on-aws/bootstrap.log"]["log_group_name"] == "/bbb/system"
    assert by_file["/var/log/bbb-on-aws/journal.log"]["log_group_name"] == "/bbb/app"
    assert all(e["log_stream_name"].startswith("{instance_id}/") for e in entries)
    assert len({e["log_stream_name"] for e in entries}) == len(entries)
    assert "/var/log/bbb-on-aws/bbb-install.log" not in by_file  # traced secrets stay on the host
    assert config["metrics"]["namespace"] == "BBBOnAWS/bbb"
    assert config["metrics"]["append_dimensions"] == {"AutoScalingGroupName": "${aws:AutoScalingGroupName}"}
    if role == "bbb":
        for path in ("/var/log/bigbluebutton/bbb-web.log", "/var/log/bbb-apps-akka/bbb-apps-akka.log",
                     "/var/log/bbb-fsesl-akka/bbb-fsesl-akka.log", "/opt/freeswitch/var/log/freeswitch/freeswitch.log",
                     "/var/log/nginx/bigbluebutton.access.log", "/var/log/bigbluebutton/post_publish.log"):
            assert by_file[path]["log_group_name"] == "/bbb/app"
        assert "/var/bigbluebutton" in config["metrics"]["metrics_collected"]["disk"]["resources"]
        assert "--unit=bbb-graphql-*" in cw_agent_config.journal_units("bbb")
    elif role == "turn":
        assert "--unit=bbb-turn-relay" in cw_agent_config.journal_units("turn").split()
    else:
        assert by_file["/var/log/nginx/access.log"]["log_group_name"] == "/bbb/app"
        assert "--unit=nginx" in cw_agent_config.journal_units("proxy").split()


def test_agent_config_command_line() -> None:
    script = USERDATA / "common" / "cw_agent_config.py"
    result = subprocess.run([sys.executable, str(script), "--role", "turn", "--system-log-group", "s",
                             "--application-log-group", "a", "--namespace", "n"], capture_output=True, text=True)
    assert json.loads(result.stdout)["metrics"]["namespace"] == "n"
    result = subprocess.run([sys.executable, str(script), "--role", "turn", "--journal-units"],
                            capture_output=True, text=True, check=True)
    assert result.stdout.startswith("JOURNAL_UNITS=--unit=bbb-turn-relay ")
    result = subprocess.run([sys.executable, str(script), "--role", "turn"], capture_output=True, text=True)
    assert result.returncode == 2 and "are required" in result.stderr
    with pytest.raises(ValueError, match="role must be one of"):
        cw_agent_config.agent_config("gateway", "s", "a", "n")


# --- STUN ping --------------------------------------------------------------------------------------------


def xor_mapped(address: str, port: int, transaction_id: bytes) -> bytes:
    ip = ipaddress.ip_address(address)
    cookie = struct.pack("!I", stun_ping.MAGIC_COOKIE)
    if ip.version == 4:
        value = struct.pack("!BBH", 0, 1, port ^ 0x2112) + bytes(a ^ b for a, b in zip(ip.packed, cookie, strict=True))
    else:
        mask = cookie + transaction_id
        value = struct.pack("!BBH", 0, 2, port ^ 0x2112) + bytes(a ^ b for a, b in zip(ip.packed, mask, strict=True))
    return struct.pack("!HH", 0x0020, len(value)) + value


def response(kind: int, transaction_id: bytes, attributes: bytes) -> bytes:
    return struct.pack("!HHI", kind, len(attributes), stun_ping.MAGIC_COOKIE) + transaction_id + attributes


@pytest.mark.parametrize("address", ["198.51.100.7", "2001:db8::1234"])
def test_xor_mapped_address_is_decoded(address: str) -> None:
    tid = os.urandom(12)
    software = struct.pack("!HH", 0x8022, 5) + b"relay\0\0\0"  # an attribute before, with padding
    packet = response(0x0101, tid, software + xor_mapped(address, 54321, tid))
    assert stun_ping.parse_binding_success(packet, tid) == (address, 54321)


@pytest.mark.parametrize(("packet", "message"), [
    (lambda tid: response(0x0101, os.urandom(12), xor_mapped("1.2.3.4", 1, tid)), "transaction id"),
    (lambda tid: response(0x0111, tid, b""), "not a Binding success"),
    (lambda tid: response(0x0101, tid, b""), "without XOR-MAPPED-ADDRESS"),
    (lambda tid: b"\x01\x01", "shorter than a STUN header"),
])
def test_wrong_answers_are_rejected(packet, message: str) -> None:
    tid = os.urandom(12)
    with pytest.raises(stun_ping.StunError, match=message):
        stun_ping.parse_binding_success(packet(tid), tid)


def test_binding_request_is_well_formed() -> None:
    tid = b"0123456789ab"
    assert stun_ping.binding_request(tid) == bytes.fromhex("000100002112a442") + tid
