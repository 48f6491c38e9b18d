"""The hosts' side of the TURN secret rotation for real under bash, AWS and systemd replaced by shims:
refresh_relay_secrets (turn/lib.sh: which versions the relay accepts) and refresh_turn_secret (bbb/lib.sh:
which version bbb-web issues with, switched only without meetings)."""

from __future__ import annotations

import importlib.util
import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.userdata.turn_secret_support import Aws

ROOT = Path(__file__).resolve().parents[2]

USERDATA = ROOT / "userdata"
TURN = ("common/lib.sh", "turn/lib.sh")
BBB = ("common/lib.sh", "bbb/lib.sh")
A, B = "Aq4Wm8Zr2Xc6Vb0Nn3Kk7Jj1Hh5Gg9Ff2Dd6Ss0A", "Bz7Yx3Wv9Ut1Sr5Qp2On8Ml4Kj6Ih0Gf3Ed7Cb1A"
V1, V2 = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"
TTL = 86400
NOW = 1700000000  # the harness's virtual clock


@pytest.fixture
def turn(shell) -> tuple[Aws, Path]:
    aws = Aws(shell)
    etc = shell.root / "relay-etc"
    etc.mkdir()
    shell.shim("systemctl", "exit 0")
    shell.env |= {"RELAY_ETC": str(etc), "RELAY_USER": "root", "RELAY_GROUP": "root"}
    return aws, etc / "secret"


def refresh_relay(shell):
    return shell.run(f"refresh_relay_secrets arn:secret prod {TTL}", libs=TURN)


def relay_reloads(shell) -> int:
    return sum(1 for c in shell.calls("systemctl") if c[1:] == ["reload", "bbb-turn-relay"])


def value_fetches(shell) -> int:
    return sum(1 for c in shell.calls("aws") if c[1:3] == ["secretsmanager", "get-secret-value"])


def test_the_relay_accepts_every_version_in_use_through_a_rotation(shell, turn) -> None:
    aws, secret_file = turn
    aws.secret({V1: ["AWSCURRENT"]}, {V1: A})
    aws.servers(f"{V1}@0")
    assert refresh_relay(shell).returncode == 0
    assert secret_file.read_text() == f"{A}\n"
    assert oct(secret_file.stat().st_mode & 0o777) == "0o600"

    refresh_relay(shell)  # nothing changed: labels and tags are read, no value, no reload
    assert value_fetches(shell) == 1 and relay_reloads(shell) == 1

    aws.secret({V1: ["AWSCURRENT"], V2: ["AWSPENDING"]}, {V1: A, V2: B})  # createSecret
    refresh_relay(shell)
    assert secret_file.read_text() == f"{A}\n{B}\n"
    assert relay_reloads(shell) == 2

    aws.secret({V1: ["AWSPREVIOUS"], V2: ["AWSCURRENT", "AWSPENDING"]}, {V1: A, V2: B})  # finishSecret
    refresh_relay(shell)
    assert secret_file.read_text() == f"{B}\n{A}\n"  # the BBB server still issues with V1

    aws.servers(f"{V2}@{NOW}")  # it switched just now: its last V1 credentials live another TTL
    (shell.clock_file).write_text(f"{NOW + TTL - 1}\n")
    refresh_relay(shell)
    assert secret_file.read_text() == f"{B}\n{A}\n"
    (shell.clock_file).write_text(f"{NOW + TTL}\n")
    result = refresh_relay(shell)
    assert secret_file.read_text() == f"{B}\n"
    assert "AWSPREVIOUS" in result.stderr and "retired" in result.stderr
    assert relay_reloads(shell) == 4
    everything = result.stderr + " ".join(" ".join(c) for c in shell.calls())
    assert A not in everything and B not in everything  # values never reach a log or a command line


@pytest.mark.parametrize("tag", [None, f"{V1}@0", "not-a-version-tag"])
def test_previous_is_kept_while_a_server_may_still_issue_with_it(shell, turn, tag: str | None) -> None:
    aws, secret_file = turn
    aws.secret({V1: ["AWSPREVIOUS"], V2: ["AWSCURRENT"]}, {V1: A, V2: B})
    aws.servers(f"{V2}@0", tag)
    (shell.clock_file).write_text(f"{NOW + 10 * TTL}\n")
    assert refresh_relay(shell).returncode == 0
    assert secret_file.read_text() == f"{B}\n{A}\n"


def test_an_api_error_keeps_the_secrets_the_relay_has(shell, turn) -> None:
    aws, secret_file = turn
    aws.secret({V1: ["AWSCURRENT"]}, {V1: A})
    aws.servers(f"{V1}@0")
    refresh_relay(shell)
    aws.secret({V1: ["AWSCURRENT"], V2: ["AWSPENDING"]}, {V1: A, V2: B})
    aws.fail()
    result = refresh_relay(shell)
    assert result.returncode == 1 and "the relay keeps its secrets" in result.stderr
    assert secret_file.read_text() == f"{A}\n"
    aws.fail(False)
    (aws.dir / "values" / V2).write_text("not a secret!\n")  # a malformed value is never written either
    result = refresh_relay(shell)
    assert result.returncode == 1 and f"version {V2}" in result.stderr
    assert secret_file.read_text() == f"{A}\n"
    assert relay_reloads(shell) == 1


def test_a_pending_version_without_a_value_is_skipped_until_it_has_one(shell, turn) -> None:
    """RotateSecret labels the new version before createSecret writes it (and a refused createSecret leaves it)."""
    aws, secret_file = turn
    aws.secret({V1: ["AWSCURRENT"]}, {V1: A})
    aws.servers(f"{V1}@0")
    refresh_relay(shell)
    (aws.dir / "describe.json").write_text(json.dumps({"VersionIdsToStages": {V1: ["AWSCURRENT"], V2: ["AWSPENDING"]}}))
    result = refresh_relay(shell)
    assert result.returncode == 0 and f"version {V2} (AWSPENDING) has no value yet" in result.stderr
    assert secret_file.read_text() == f"{A}\n"
    aws.secret({V1: ["AWSCURRENT"], V2: ["AWSPENDING"]}, {V1: A, V2: B})  # createSecret wrote it
    refresh_relay(shell)
    assert secret_file.read_text() == f"{A}\n{B}\n"


def test_the_bootstrap_seed_never_overwrites_a_refreshed_secret_file(shell, turn) -> None:
    aws, secret_file = turn
    aws.secret({V1: ["AWSPREVIOUS"], V2: ["AWSCURRENT"]}, {V1: A, V2: B})
    aws.servers(f"{V1}@0")
    result = shell.run(
        f"write_relay_secrets {B}; refresh_relay_secrets arn:secret prod {TTL}; write_relay_secrets {B}", libs=TURN
    )
    assert result.returncode == 0, result.stderr
    assert secret_file.read_text() == f"{B}\n{A}\n"
    nonce = (secret_file.parent / "nonce-secret").read_text()
    shell.run(f"write_relay_secrets {A}", libs=TURN)
    assert (secret_file.parent / "nonce-secret").read_text() == nonce  # the relay cannot reload it


# --- BBB ---------------------------------------------------------------------------------------------------

FQDN = "bbb-0abc.bbb.example.com"
MEETING = (
    "<response><returncode>SUCCESS</returncode><meetings><meeting><meetingID>m</meetingID></meeting>"
    "</meetings></response>"
)
IDLE = "<response><returncode>SUCCESS</returncode><messageKey>noMeetings</messageKey></response>"


@pytest.fixture
def bbb(shell) -> tuple[Aws, Path]:
    aws = Aws(shell)
    etc = shell.root / "etc-bbb"
    etc.mkdir()
    (etc / "bbb-web.properties").write_text("securitySalt=apisecret0123456789\n")
    answer = shell.root / "getmeetings"
    answer.write_text(IDLE)
    shell.shim("curl", f"cat {answer}")
    shell.shim(
        "systemctl", f"[[ $1 == is-active ]] && exit $(cat {shell.root}/bbb-web-active 2>/dev/null || echo 0)\nexit 0"
    )
    shell.env |= {
        "BBB_ETC": str(etc),
        "BBB_GROUP": "root",
        "INSTANCE_ID": "i-0abc",
        "BBB_SERVLET_PROPERTIES": str(shell.root / "none"),
    }
    return aws, etc / "turn-stun-servers.xml"


def refresh_bbb(shell):
    return shell.run(f"refresh_turn_secret arn:secret bbb.example.com {TTL} {FQDN}", libs=BBB)


def issued(xml: Path) -> set[tuple[str, str]]:
    ns = {"b": "http://www.springframework.org/schema/beans"}
    beans = ET.parse(xml).getroot().findall("b:bean[@class='org.bigbluebutton.web.services.turn.TurnServer']", ns)
    return {(a[0].get("value"), a[2].get("value")) for a in (b.findall("b:constructor-arg", ns) for b in beans)}


def tags(shell) -> list[str]:
    return [c[-1] for c in shell.calls("aws") if c[1:3] == ["ec2", "create-tags"]]


def restarts(shell) -> int:
    return sum(1 for c in shell.calls("systemctl") if c[1:] == ["restart", "bbb-web"])


def test_bbb_web_switches_only_when_no_meeting_runs(shell, bbb) -> None:
    aws, xml = bbb
    aws.secret({V1: ["AWSCURRENT"]}, {V1: A})
    result = refresh_bbb(shell)  # the bootstrap's run: first write, no restart, tag "never issued another"
    assert result.returncode == 0, result.stderr
    assert issued(xml) == {(A, str(TTL))}
    assert tags(shell) == [f"Key=bbb-on-aws:turn-secret,Value={V1}@0"]
    assert restarts(shell) == 0

    aws.secret({V1: ["AWSPREVIOUS"], V2: ["AWSCURRENT"]}, {V1: A, V2: B})
    (shell.root / "getmeetings").write_text(MEETING)
    result = refresh_bbb(shell)
    assert result.returncode == 0 and "waits until this server runs no meeting" in result.stderr
    assert issued(xml) == {(A, str(TTL))} and restarts(shell) == 0 and len(tags(shell)) == 1

    (shell.root / "getmeetings").write_text(IDLE)
    (shell.clock_file).write_text(f"{NOW + 500}\n")
    assert refresh_bbb(shell).returncode == 0
    assert issued(xml) == {(B, str(TTL))}
    assert restarts(shell) == 1
    assert tags(shell)[-1] == f"Key=bbb-on-aws:turn-secret,Value={V2}@{NOW + 500}"
    refresh_bbb(shell)  # nothing new: no restart, no tag
    assert restarts(shell) == 1 and len(tags(shell)) == 2
    everything = " ".join(" ".join(c) for c in shell.calls())
    assert A not in everything and B not in everything


def test_a_failing_get_meetings_counts_as_busy(shell, bbb) -> None:
    aws, xml = bbb
    aws.secret({V1: ["AWSCURRENT"]}, {V1: A})
    refresh_bbb(shell)
    aws.secret({V1: ["AWSPREVIOUS"], V2: ["AWSCURRENT"]}, {V1: A, V2: B})
    shell.shim("curl", "exit 22")
    assert refresh_bbb(shell).returncode == 0
    assert issued(xml) == {(A, str(TTL))} and restarts(shell) == 0


def test_a_stopped_bbb_web_switches_without_a_restart(shell, bbb) -> None:
    aws, xml = bbb
    aws.secret({V1: ["AWSCURRENT"]}, {V1: A})
    refresh_bbb(shell)
    aws.secret({V1: ["AWSPREVIOUS"], V2: ["AWSCURRENT"]}, {V1: A, V2: B})
    (shell.root / "bbb-web-active").write_text("3")
    (shell.root / "getmeetings").write_text(MEETING)  # not asked: bbb-web is not running
    refresh_bbb(shell)
    assert issued(xml) == {(B, str(TTL))} and restarts(shell) == 0
    assert tags(shell)[-1] == f"Key=bbb-on-aws:turn-secret,Value={V2}@{NOW}"


def test_an_api_error_changes_nothing_on_the_bbb_server(shell, bbb) -> None:
    aws, xml = bbb
    aws.secret({V1: ["AWSCURRENT"]}, {V1: A})
    refresh_bbb(shell)
    aws.fail()
    result = refresh_bbb(shell)
    assert result.returncode == 1 and "bbb-web keeps its credentials" in result.stderr
    assert issued(xml) == {(A, str(TTL))}


# --- one rule on both sides --------------------------------------------------------------------------------


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[name] = module
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


HANDOFF_CASES = [
    ([], 1000, True),
    ([["i-1", "v2@0"]], 1000, True),
    ([["i-1", "v2@500"]], 1000, False),
    ([["i-1", "v2@500"]], 1500, True),
    ([["i-1", "v2@0"], ["i-2", "v1@0"]], 5000, False),
    ([["i-1", "v2@0"], ["i-2", None]], 5000, False),
    ([["i-1", "v2@0"], ["i-2", "v2@x"]], 5000, False),
    ([["i-1", "v2@0"], ["i-2", "v2@4500"]], 5000, False),
]


@pytest.mark.parametrize(("servers", "now", "done"), HANDOFF_CASES)
def test_the_hosts_and_the_rotation_lambda_apply_one_handoff_rule(servers, now: int, done: bool) -> None:
    host = _load(USERDATA / "turn" / "secret_versions.py", "turn_secret_versions")
    lam = _load(ROOT / "lambdas" / "turn_secret_rotation" / "handoff.py", "turn_secret_handoff")
    assert host.previous_retired("v2", servers, 1000, now)[0] is done
    assert lam.handoff("v2", [tuple(s) for s in servers], 1000, now).done is done
