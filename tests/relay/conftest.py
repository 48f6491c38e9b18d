"""Relay tests share `relay_testkit` (request builders, fake relay sockets, a real-socket TURN client)."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))


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
