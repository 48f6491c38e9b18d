"""What the relay's unit must grant: an unprivileged user (nobody) with exactly CAP_BPF, CAP_NET_ADMIN and
CAP_PERFMON loads the program, attaches it (to lo of a throwaway network namespace) and edits its maps;
with fewer capabilities the loader says which ones are missing before the kernel is asked. (Without
CAP_PERFMON the verifier walks every speculative path and the FINGERPRINT loop exceeds its budget.)
The probe runs on the system Python (the shared
virtualenv is not readable by nobody) on a world-readable copy of the package: the loader needs only
the standard library and libbpf."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from relay.server.kernel import loader

RELAY_DIR = Path(__file__).resolve().parents[3] / "relay"
SYSTEM_PYTHON = "/usr/bin/python3"
PROBE = """
import sys
from relay.server.kernel.loader import KernelOffloadUnavailable, TcRelay
try:
    program = TcRelay(open(sys.argv[1], "rb").read())
except KernelOffloadUnavailable as error:
    print("unavailable:", error)
    raise SystemExit(0)
program.attach("lo")
program.configure(enabled=True, mtu=1500)
program.add_permission(("198.51.100.7", 5), ("10.0.0.5", 3478), ("10.0.0.5", 49170), "203.0.113.9")
print("ok", program.permission_counters(("198.51.100.7", 5), ("10.0.0.5", 3478), "203.0.113.9"))
program.close()
"""


@pytest.fixture(scope="module")
def world_readable(bpf_object: bytes) -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="relay-caps-"))
    try:
        shutil.copytree(RELAY_DIR, folder / "relay", ignore=shutil.ignore_patterns("__pycache__", "tests"))
        (folder / loader.OBJECT_NAME).write_bytes(bpf_object)
        (folder / "probe.py").write_text(PROBE)
        for path in [folder, *folder.rglob("*")]:
            path.chmod(path.stat().st_mode | stat.S_IROTH | (stat.S_IXOTH if path.is_dir() else 0))
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _probe_as_nobody(folder: Path, capabilities: str) -> str:
    namespace = f"ktcaps{os.getpid()}"
    subprocess.run(["ip", "netns", "add", namespace], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", namespace, "ip", "link", "set", "lo", "up"], check=True)
        drop = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"]
        if capabilities:
            drop += ["--inh-caps", capabilities, "--ambient-caps", capabilities]
        command = ["ip", "netns", "exec", namespace, *drop, "env", f"PYTHONPATH={folder}", SYSTEM_PYTHON]
        run = subprocess.run(
            [*command, str(folder / "probe.py"), str(folder / loader.OBJECT_NAME)],
            capture_output=True,
            text=True,
            check=False,
            cwd=folder,
        )
    finally:
        subprocess.run(["ip", "netns", "del", namespace], check=False)
    assert run.returncode == 0, run.stderr
    return run.stdout.strip()


def test_cap_bpf_cap_net_admin_and_cap_perfmon_are_enough(world_readable: Path) -> None:
    assert _probe_as_nobody(world_readable, "+bpf,+net_admin,+perfmon") == "ok Counters(packets=0, bytes=0)"


@pytest.mark.parametrize(
    ("capabilities", "missing"),
    [
        ("", "CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON"),
        ("+bpf,+net_admin", "CAP_PERFMON"),
        ("+net_admin,+perfmon", "CAP_BPF"),
        ("+bpf,+perfmon", "CAP_NET_ADMIN"),
    ],
)
def test_without_them_the_loader_names_what_is_missing(world_readable: Path, capabilities: str, missing: str) -> None:
    assert _probe_as_nobody(world_readable, capabilities) == (
        "unavailable: loading the BPF program needs CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON "
        f"(missing: {missing}): AmbientCapabilities= in the relay's systemd unit"
    )


SKIP_CHECK = "import relay.server.kernel.loader as L\nL.missing_capabilities = lambda: []\n"


def test_the_kernel_agrees_that_cap_perfmon_is_needed(world_readable: Path) -> None:
    """The check above is not guesswork: skipping it, the kernel refuses the program without CAP_PERFMON."""
    probe = world_readable / "probe.py"
    original = probe.read_text()
    try:
        probe.write_text(SKIP_CHECK + original)
        refused = _probe_as_nobody(world_readable, "+bpf,+net_admin")
        assert refused.startswith("unavailable: the kernel refused the BPF program")
    finally:
        probe.write_text(original)
