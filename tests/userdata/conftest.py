"""A harness that runs the host bootstrap's shell functions for real under bash.

Only the commands that reach AWS or the host's system (aws, dig, systemctl, mount, bbb-conf, ...) are
replaced, by small shims on PATH that log every call; files go to a scratch directory through the variables
the libraries expose for that purpose.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
USERDATA = REPO / "userdata"


@dataclass
class Shell:
    root: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    @property
    def calls_file(self) -> Path:
        return self.root / "calls.log"

    @property
    def clock_file(self) -> Path:
        return self.root / "clock"

    def shim(self, name: str, body: str = "", *, log: bool = True) -> None:
        """A command `name` that logs its argv (unless `log` is false), then runs `body` (bash)."""
        calls = shlex.quote(str(self.calls_file))
        record = f'printf "%s" {shlex.quote(name)} >>{calls}\nprintf " %q" "$@" >>{calls}\necho >>{calls}\n'
        script = self.bin / name
        script.write_text("#!/bin/bash\n" + (record if log else "") + textwrap.dedent(body) + "\n")
        script.chmod(0o755)

    def calls(self, name: str | None = None) -> list[list[str]]:
        if not self.calls_file.exists():
            return []
        parsed = [shlex.split(line) for line in self.calls_file.read_text().splitlines() if line.strip()]
        return [argv for argv in parsed if name is None or argv[0] == name]

    def run(self, script: str, *, libs: tuple[str, ...] = ("common/lib.sh",), env: dict[str, str] | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
        sources = "\n".join(f"source {shlex.quote(str(USERDATA / lib))}" for lib in libs)
        full_env = {
            "PATH": f"{self.bin}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            "HOME": str(self.root),
            "TMPDIR": str(self.root / "tmp"),
            "LANG": "C.UTF-8",
            "BBB_ON_AWS_DIR": str(USERDATA),
            "BBB_ON_AWS_CONF": str(self.root / "conf"),
            "BBB_ON_AWS_STATE_DIR": str(self.root / "state"),
            "BBB_ON_AWS_LOG_DIR": str(self.root / "log"),
            "SYSTEMD_DIR": str(self.root / "systemd"),
            **self.env,
            **(env or {}),
        }
        return subprocess.run(
            ["bash", "-c", f"set -euo pipefail\n{sources}\n{script}"],
            env=full_env, capture_output=True, text=True, timeout=timeout, check=False,
        )


@pytest.fixture
def shell(tmp_path: Path) -> Shell:
    for sub in ("bin", "conf", "state", "log", "systemd", "tmp"):
        (tmp_path / sub).mkdir()
    # A virtual clock: `sleep N` advances it and `date +%s` reads it, so wait loops and their timeouts run in
    # milliseconds while their logic stays real.
    harness = Shell(tmp_path)
    harness.clock_file.write_text("1700000000\n")
    clock = shlex.quote(str(harness.clock_file))
    harness.shim("sleep", f"echo $(( $(cat {clock}) + ${{1%%.*}} )) >{clock}")
    harness.shim("date", f'if [[ $# -eq 1 && $1 == +%s ]]; then cat {clock}; else exec /bin/date "$@"; fi', log=False)
    return harness


@pytest.fixture(autouse=True)
def _as_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("the userdata tests set file owners (root:root) like the hosts' bootstrap: run them as root")
