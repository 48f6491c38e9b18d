"""Settings shared by every test: keep the CDK toolchain quiet and offline."""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The CDK's Node is package.json's Node 22 LTS (as scripts/env.sh sets it), whoever started pytest.
os.environ["PATH"] = f"{ROOT / 'node_modules' / '.bin'}{os.pathsep}{os.environ.get('PATH', '')}"
os.environ.setdefault("CDK_DISABLE_CLI_TELEMETRY", "true")
os.environ.setdefault("CDK_DISABLE_VERSION_CHECK", "1")
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


# A skipped test hides a missing piece: the run fails on any skip whose reason does not start with this prefix,
# which a test uses only to document why a platform can never run it (e.g. no non-loopback address at all).
PLATFORM_SKIP = "platform: "


def pytest_sessionfinish(session, exitstatus) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:  # an xdist worker: the controller sees every report
        return
    hidden = [
        report for report in reporter.stats.get("skipped", [])
        if isinstance(report.longrepr, tuple) and not report.longrepr[2].startswith(f"Skipped: {PLATFORM_SKIP}")
    ]
    if hidden:
        reporter.ensure_newline()
        reporter.write_line(f"{len(hidden)} test(s) skipped without a documented platform reason: a failure", red=True)
        for report in hidden:
            reporter.write_line(f"  {report.nodeid}: {report.longrepr[2]}")
        if session.exitstatus == 0:
            session.exitstatus = 1
