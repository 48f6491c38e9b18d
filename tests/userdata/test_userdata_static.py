"""Every script file is shellcheck-clean and parses; every unit file passes `systemd-analyze verify`."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

USERDATA = Path(__file__).resolve().parents[2] / "userdata"
SCRIPTS = sorted(USERDATA.rglob("*.sh"))
UNITS = sorted([*USERDATA.rglob("*.service"), *USERDATA.rglob("*.timer")])
EXECUTABLES = {"bootstrap.sh", "on_boot.sh", "peer_sync.sh", "publish_allocations.sh", "publish_meetings.sh", "sync.sh"}


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
                 "PrivateTmp=yes", "CapabilityBoundingSet=\n", "ReadOnlyPaths=/etc/bbb-turn-relay"):
        assert line in unit
    assert "CAP_NET_BIND_SERVICE" not in unit  # every relay port is above 1024


def test_peer_sync_runs_every_20_seconds_and_metrics_every_60() -> None:
    peers = (USERDATA / "turn/units/bbb-turn-relay-peers.timer").read_text()
    assert "OnUnitActiveSec=20s" in peers
    assert "OnUnitActiveSec=30s" in (USERDATA / "proxy/units/bbb-on-aws-proxy-sync.timer").read_text()
    for timer in ("turn/units/bbb-on-aws-allocations-metric.timer", "bbb/units/bbb-on-aws-meetings-metric.timer"):
        assert "OnUnitActiveSec=60s" in (USERDATA / timer).read_text()


def test_tools_are_installed() -> None:
    for tool in ("shellcheck", "systemd-analyze", "bash"):
        assert shutil.which(tool), f"{tool} is needed by these tests (Debian package)"
