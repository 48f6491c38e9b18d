"""Relay tests share `relay_testkit` (request builders, fake relay sockets, a real-socket TURN client).

The compiled packet path (relay.server._fastpath) is built in place here, as the wheel build does it, when
the shared object is missing or older than its source, so that every relay test (and every relay process a
test starts) runs the path a deployed relay runs. RELAY_PACKET_PATH=python runs them on the pure-Python path.
"""

from __future__ import annotations

import fcntl
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

RELAY_DIR = HERE.parents[1] / "relay"
FASTPATH_SOURCES = (RELAY_DIR / "server" / "_fastpath.c", RELAY_DIR / "server" / "_fastpath_table.h")


def build_fastpath_in_place() -> Path | None:
    """Compile relay/server/_fastpath.c (with the header it includes) next to it, once across xdist workers;
    the .so, or None when this machine cannot (the build leaves relay/server/_fastpath.missing saying why)."""
    (RELAY_DIR / "build").mkdir(exist_ok=True)  # git-ignored, as the wheel build's own
    with open(RELAY_DIR / "build" / ".fastpath.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        built = sorted(FASTPATH_SOURCES[0].parent.glob("_fastpath*.so"))
        if built and built[0].stat().st_mtime >= max(source.stat().st_mtime for source in FASTPATH_SOURCES):
            return built[0]
        for stale in built:  # unlinked, not rewritten: a running relay keeps the copy it mapped
            stale.unlink()
        run = subprocess.run(
            [sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
            cwd=RELAY_DIR,
            capture_output=True,
            text=True,
            check=False,
        )
        output = run.stdout[-3000:] + run.stderr[-3000:]
        assert run.returncode == 0, f"building relay/server/_fastpath.c failed:\n{output}"
        built = sorted(FASTPATH_SOURCES[0].parent.glob("_fastpath*.so"))
        return built[0] if built else None


def pytest_configure(config) -> None:
    build_fastpath_in_place()


def pytest_terminal_summary(terminalreporter) -> None:
    """Report how many inputs the fuzz tests ran (tests record them as `fuzz:<target>` properties, which
    also travel back from xdist workers)."""
    counts: dict[str, int] = {}
    for reports in terminalreporter.stats.values():
        for report in reports:
            if getattr(report, "when", None) != "call":
                continue
            for name, value in getattr(report, "user_properties", ()):
                if isinstance(name, str) and name.startswith("fuzz:"):
                    counts[name[5:]] = counts.get(name[5:], 0) + int(value)
    if counts:
        total = sum(counts.values())
        detail = ", ".join(f"{target}={count}" for target, count in sorted(counts.items()))
        terminalreporter.write_line(f"relay fuzz inputs: {total} ({detail})")
