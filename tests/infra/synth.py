"""One synthesis per deployment variant, shared by all infra tests (each synth costs several seconds).

cdk-nag runs in every synth; its failure is recorded instead of raised so that template tests still read
the templates (CDK writes them before validating) while test_nag reports the findings.
"""

from __future__ import annotations

import copy
import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from settings import Config
from stacks.deployment import build_app, cdk_json_context

SHAPES = ("scalable", "single")
STAGES = ("dev", "stage", "prod")
VARIANTS = [(shape, stage) for shape in SHAPES for stage in STAGES]


@dataclass
class Synth:
    outdir: Path
    config: Config
    error: str | None

    def stack_names(self) -> list[str]:
        manifest = json.loads((self.outdir / "manifest.json").read_text())
        return sorted(k for k, v in manifest["artifacts"].items() if v["type"] == "aws:cloudformation:stack")

    def template(self, part: str) -> dict[str, Any]:
        """The template of stack `<env>-<part>`."""
        return json.loads((self.outdir / f"{self.config.prefix}-{part}.template.json").read_text())

    def templates(self) -> dict[str, dict[str, Any]]:
        return {name: json.loads((self.outdir / f"{name}.template.json").read_text()) for name in self.stack_names()}

    def report(self) -> dict[str, Any]:
        path = self.outdir / "validation-report.json"
        return json.loads(path.read_text()) if path.exists() else {"pluginReports": []}


_cache: dict[str, Synth] = {}


def deployment(**changes: Any) -> dict[str, Any]:
    """cdk.json's deployment section with dotted-path changes, e.g. deployment(**{"environment.stage": "prod"})."""
    section = copy.deepcopy(cdk_json_context()["deployment"])
    for path, value in changes.items():
        node = section
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return section


def synth(shape: str = "scalable", stage: str = "dev", **changes: Any) -> Synth:
    section = deployment(**{"environment.type": shape, "environment.stage": stage, **changes})
    key = json.dumps(section, sort_keys=True)
    if key not in _cache:
        outdir = Path(tempfile.mkdtemp(prefix=f"synth-{shape}-{stage}-"))
        app, config = build_app(context={"deployment": section}, outdir=str(outdir))
        error = None
        try:
            app.synth()
        except RuntimeError as exc:  # cdk-nag findings: ValidationFailed
            error = str(exc)
        _cache[key] = Synth(outdir=outdir, config=config, error=error)
    return _cache[key]


HASH = re.compile(r"[0-9a-f]{64}")


def normalized(template: dict[str, Any]) -> dict[str, Any]:
    """Asset hashes change with any edit of Lambda or relay code; snapshots compare everything else.

    CDK orders some lists (e.g. a policy's asset ARNs) by the hash itself, so lists made only of
    hash-bearing items are put in a canonical order once the hashes are masked.
    """
    return _canonical(json.loads(HASH.sub("<HASH>", json.dumps(template))))


def _canonical(node: Any) -> Any:
    if isinstance(node, dict):
        return {key: _canonical(value) for key, value in node.items()}
    if isinstance(node, list):
        items = [_canonical(item) for item in node]
        texts = [json.dumps(item, sort_keys=True) for item in items]
        if len(items) > 1 and all("<HASH>" in text for text in texts):
            return [item for _, item in sorted(zip(texts, items, strict=True), key=lambda pair: pair[0])]
        return items
    return node
