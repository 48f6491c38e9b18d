"""The frontend stack as the real app composes it (shared, data and network stacks included), per capacity
and stage, reusing tests/infra/synth.py's cache so the quality gates and these tests share each synthesis.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from settings import Config
from tests.infra.synth import synth


@dataclass
class FrontendSynth:
    outdir: Path
    config: Config
    error: str | None
    stack: str

    @property
    def template_path(self) -> Path:
        return self.outdir / f"{self.stack}.template.json"

    @property
    def template(self) -> dict[str, Any]:
        return json.loads(self.template_path.read_text())

    def findings(self) -> list[str]:
        """Unacknowledged cdk-nag findings on the frontend stack's constructs."""
        path = self.outdir / "validation-report.json"
        report = json.loads(path.read_text()) if path.exists() else {"pluginReports": []}
        return [
            f"{v['ruleName']} at {c['constructPath']}"
            for plugin in report["pluginReports"]
            for v in plugin["violations"]
            for c in v["violatingConstructs"]
            if c["constructPath"].startswith(f"{self.stack}/")
        ]

    def acknowledged(self) -> list[tuple[str, str, str]]:
        path = self.outdir / "validation-report.json"
        report = json.loads(path.read_text()) if path.exists() else {"pluginReports": []}
        return [
            (v["ruleName"], c["constructPath"], (v.get("acknowledgment") or v).get("reason", ""))
            for plugin in report["pluginReports"]
            for v in plugin.get("suppressedViolations", [])
            for c in v.get("violatingConstructs", [])
            if c["constructPath"].startswith(f"{self.stack}/")
        ]


def frontend_synth(capacity: str = "ec2", stage: str = "dev") -> FrontendSynth:
    changes = {} if capacity == "ec2" else {"frontend.capacity": capacity}
    result = synth("scalable", stage, **changes)
    return FrontendSynth(outdir=result.outdir, config=result.config, error=result.error,
                         stack=f"{result.config.prefix}-frontend")


if __name__ == "__main__":  # quick look while developing: python -m tests.infra.frontend_fixtures
    import sys

    result = frontend_synth(*(sys.argv[1:3] or ["ec2"]))
    print(result.outdir, result.error)
    print("\n".join(result.findings()) or "no findings on the frontend stack")
