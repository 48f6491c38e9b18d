"""Every script file is shellcheck-clean and parses; every unit file passes `systemd-analyze verify`."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from relay.server.kernel.loader import CAPABILITIES

USERDATA = Path(__file__).resolve().parents[2] / "userdata"
SCRIPTS = sorted(USERDATA.rglob("*.sh"))
UNITS = sorted([*USERDATA.rglob("*.service"), *USERDATA.rglob("*.timer")])
EXECUTABLES = {"bootstrap.sh", "on_boot.sh", "peer_sync.sh", "publish_allocations.sh", "publish_meetings.sh", "sync.sh",
               "secret_sync.sh", "turn_secret_sync.sh", "refresh_certificate.sh"}


def test_the_tree_has_the_expected_scripts_and_units() -> None:
    assert {p.relative_to(USERDATA).as_posix() for p in SCRIPTS} >= {
        "common/lib.sh", "bbb/lib.sh", "bbb/bootstrap.sh", "bbb/publish_meetings.sh",
        "turn/lib.sh", "turn/bootstrap.sh", "turn/peer_sync.sh", "turn/publish_allocations.sh",
        "proxy/lib.sh", "proxy/bootstrap.sh", "proxy/sync.sh",
    }
    assert len(UNITS) >= 10


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.relative_to(USERDATA).as_posix())
def test_shellcheck_finds_nothing(script: Path) -> None:
    result = subprocess.run(["shellcheck", "--external-sources", "--severity=style", script.name],
                            cwd=script.parent, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
    subprocess.run(["bash", "-n", str(script)], check=True)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.relative_to(USERDATA).as_posix())
def test_executables_are_executable_and_libraries_are_not(script: Path) -> None:
    executable = bool(script.stat().st_mode & 0o100)
    assert executable == (script.name in EXECUTABLES)
    if executable:
        assert script.read_text().startswith("#!/bin/bash\n")
        assert "set -euo pipefail" in script.read_text()


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.relative_to(USERDATA).as_posix())
def test_systemd_analyze_verify(unit: Path, tmp_path: Path) -> None:
    """Executables the unit refers to are mapped to stand-ins (they exist only on the host)."""
    text = unit.read_text()
    for path in set(re.findall(r"(?:ExecStart|ExecReload)=(/\S+)", text)):
        if not Path(path).exists():
            stand_in = tmp_path / "bin" / Path(path).name
            stand_in.parent.mkdir(exist_ok=True)
            stand_in.write_text("#!/bin/sh\n")
            stand_in.chmod(0o755)
            text = text.replace(path, str(stand_in))
    copy = tmp_path / unit.name
    copy.write_text(text)
    if unit.suffix == ".timer":
        (tmp_path / unit.with_suffix(".service").name).write_text(
            "[Service]\nType=oneshot\nExecStart=/bin/true\n")
    result = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True)
    output = result.stdout + result.stderr
    assert result.returncode == 0 and output.strip() == "", output


def test_relay_unit_is_hardened_and_matches_the_contract() -> None:
    unit = (USERDATA / "turn/units/bbb-turn-relay.service").read_text()
    for line in ("Type=notify", "ExecStart=/opt/bbb-turn-relay/bin/bbb-turn-relay -c /etc/bbb-turn-relay/relay.conf",
                 "ExecReload=/bin/kill -HUP $MAINPID", "Restart=on-failure", "LimitNOFILE=1048576",
                 "User=bbb-turn-relay", "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes",
                 "PrivateTmp=yes", "ReadOnlyPaths=/etc/bbb-turn-relay",
                 "ExecStopPost=-/opt/bbb-turn-relay/bin/python -m relay.server.kernel detach all"):
        assert line in unit
    # Every relay port is above 1024: the only capabilities are the ones loading the kernel path needs (the
    # loader's own list, which it checks before loading), in both sets, and nothing else.
    wanted = " ".join(CAPABILITIES)
    settings = [line for line in unit.splitlines() if line.startswith(("CapabilityBoundingSet=", "AmbientCap"))]
    assert settings == [f"CapabilityBoundingSet={wanted}", f"AmbientCapabilities={wanted}"]
    assert "CAP_NET_BIND_SERVICE" not in unit and "CAP_SYS_ADMIN" not in unit
    # bpf() alone is added to @system-service (not @privileged), and netlink for attaching the filter
    assert [line for line in unit.splitlines() if line.startswith("SystemCallFilter=")] == [
        "SystemCallFilter=@system-service", "SystemCallFilter=bpf"]
    assert "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK" in unit


def test_peer_sync_runs_every_20_seconds_and_metrics_every_60() -> None:
    peers = (USERDATA / "turn/units/bbb-turn-relay-peers.timer").read_text()
    assert "OnUnitActiveSec=20s" in peers
    assert "OnUnitActiveSec=30s" in (USERDATA / "proxy/units/bbb-on-aws-proxy-sync.timer").read_text()
    for timer in ("turn/units/bbb-on-aws-allocations-metric.timer", "bbb/units/bbb-on-aws-meetings-metric.timer"):
        assert "OnUnitActiveSec=60s" in (USERDATA / timer).read_text()


def test_tools_are_installed() -> None:
    for tool in ("shellcheck", "systemd-analyze", "bash"):
        assert shutil.which(tool), f"{tool} is needed by these tests (Debian package)"


# --- Every variable a script reads is defined: by its role's rendered parameters, runtime.env or the libraries ---

ROLE_SCRIPTS = {
    "bbb/bootstrap.sh": "bbb", "bbb/publish_meetings.sh": "bbb", "turn/bootstrap.sh": "turn",
    "turn/peer_sync.sh": "turn", "turn/publish_allocations.sh": "turn", "proxy/bootstrap.sh": "proxy",
    "proxy/sync.sh": "proxy",
}  # fmt: skip
OUTSIDE = {"HOME", "PATH", "BASH_SOURCE", "VERSION_ID"}  # the shell's own, and /etc/os-release's (install_efs_utils)
_READ = re.compile(r"(?<!\\)\$\{?!?([A-Z_][A-Z0-9_]*)")
_ASSIGNED = re.compile(r"(?:^|[\s;(])([A-Z_][A-Z0-9_]*)\+?=|\$\{([A-Z_][A-Z0-9_]*):?[-=]")


def rendered_parameters(role: str) -> set[str]:
    from tests.userdata.test_userdata_bootstrap import bbb_params, params_env, turn_params
    from userdata.render import (
        ProxyParams,
        S3Object,
        render_bbb_user_data,
        render_proxy_user_data,
        render_turn_user_data,
    )

    if role == "bbb":  # a fleet server: the single host's parameters are a subset (no spool, no Scalelite)
        user_data = render_bbb_user_data(bbb_params(single=False))
    elif role == "turn":
        user_data = render_turn_user_data(turn_params())
    else:
        user_data = render_proxy_user_data(ProxyParams(
            environment="bbb", domain="bbb.example.com", region="eu-west-1", system_log_group="/s",
            application_log_group="/a", bootstrap_bundle=S3Object("bucket", "key")))  # fmt: skip
    return {line.split("=", 1)[0] for line in params_env(user_data).splitlines()}


def _code(path: Path) -> str:
    return "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("#"))


def undefined_variables(script: str, role: str, text: str) -> set[str]:
    """UPPER_CASE names `text` (the script `script` of `role`) reads or requires that nothing defines."""
    libraries = [_code(USERDATA / name) for name in ("common/prologue.sh", "common/lib.sh", f"{role}/lib.sh")]
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    defined = set(OUTSIDE) | rendered_parameters(role)
    for source in (*libraries, code):
        defined |= {a or b for a, b in _ASSIGNED.findall(source)}
    if "with-runtime" in code:  # the timers also read what the bootstrap wrote into runtime.env
        bootstrap = _code(USERDATA / role / "bootstrap.sh")
        call = bootstrap[bootstrap.index("write_runtime_env "):].split("\n\n", 1)[0]
        defined |= set(re.findall(r'"([A-Z_][A-Z0-9_]*)=', call))
    required = {name for args in re.findall(r"require_params ((?:[A-Z_0-9 ]|\\\n)+)", code) for name in args.split()}
    read = set(_READ.findall(code)) | set().union(*(_READ.findall(lib) for lib in libraries))
    return (read - defined) | (required - rendered_parameters(role) - {"\\"})


@pytest.mark.parametrize("script", sorted(ROLE_SCRIPTS))
def test_every_variable_a_script_reads_is_defined(script: str) -> None:
    role = ROLE_SCRIPTS[script]
    assert undefined_variables(script, role, (USERDATA / script).read_text()) == set()


def test_a_variable_no_parameter_defines_is_found() -> None:
    """Negative control: a bootstrap reading (or requiring) a name the renderer never writes is caught."""
    text = (USERDATA / "turn/bootstrap.sh").read_text()
    planted = text.replace('"$TURN_SECRET_ARN"', '"$BBB_SECRET_ARN"').replace("require_params ENV_NAME",
                                                                               "require_params ENV_NAME SPOOL_ID")
    assert undefined_variables("turn/bootstrap.sh", "turn", planted) == {"BBB_SECRET_ARN", "SPOOL_ID"}
