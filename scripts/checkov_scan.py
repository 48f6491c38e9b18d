"""Scan the synthesized CloudFormation templates with checkov; fail on any finding outside the by-design list.

    .venv/bin/python scripts/checkov_scan.py            # every shape x stage, synthesized here
    .venv/bin/python scripts/checkov_scan.py DIR...      # cdk.out directories synthesized already

checkov runs from its own virtualenv (.venv-checkov, created from requirements-checkov.txt on first use):
its pins (boto3/botocore 1.35, packaging 23.2, ...) conflict with the project's, so it cannot live in .venv.

scripts/checkov_by_design.toml lists what checkov flags on purpose: a check id, a regular expression over the
resources it applies to (`<file>:<Type>.<LogicalId>`), and the reason. A finding matched by no entry fails the
scan; so does an entry that matches no finding in any variant (a stale reason must not outlive its cause).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv-checkov"
REQUIREMENTS = ROOT / "requirements-checkov.txt"
BY_DESIGN = ROOT / "scripts" / "checkov_by_design.toml"


@dataclass(frozen=True)
class Finding:
    check: str
    resource: str  # <template file name>:<Type>.<LogicalId>
    title: str

    def __str__(self) -> str:
        return f"{self.check} {self.resource}: {self.title}"


@dataclass(frozen=True)
class ByDesign:
    check: str
    resources: re.Pattern[str]
    reason: str


def by_design(path: Path = BY_DESIGN) -> list[ByDesign]:
    entries = []
    for n, raw in enumerate(tomllib.loads(path.read_text())["by_design"], 1):
        reason = str(raw.get("reason", "")).strip()
        if len(reason) < 30:
            raise ValueError(f"{path} entry {n} ({raw.get('check')}) needs a real reason, not {reason!r}")
        entries.append(ByDesign(str(raw["check"]), re.compile(str(raw["resources"])), reason))
    return entries


def checkov() -> Path:
    """The pinned checkov, installed into its own virtualenv when missing or of another version."""
    binary = VENV / "bin" / "checkov"
    wanted = next(line.split("==")[1] for line in REQUIREMENTS.read_text().splitlines() if line.startswith("checkov=="))
    if binary.exists():
        version = subprocess.run([str(binary), "--version"], capture_output=True, text=True, check=False).stdout
        if version.strip() == wanted:
            return binary
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run(
        [
            str(VENV / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
            str(REQUIREMENTS),
        ],
        check=True,
    )
    return binary


def scan(templates: Iterable[Path]) -> list[Finding]:
    files = sorted(templates)
    if not files:
        raise ValueError("no *.template.json to scan: synthesize first")
    command = [str(checkov()), "--framework", "cloudformation", "--output", "json", "--quiet", "--compact"]
    for file in files:
        command += ["--file", str(file)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode not in (0, 1):  # 1: findings
        raise RuntimeError(f"checkov failed ({result.returncode}): {result.stderr[-2000:]}")
    reports = json.loads(result.stdout)
    findings = []
    for report in reports if isinstance(reports, list) else [reports]:
        if report.get("summary", {}).get("parsing_errors"):
            raise RuntimeError(f"checkov could not parse some templates: {report['summary']}")
        for failed in report.get("results", {}).get("failed_checks", []):
            name = Path(failed["file_path"]).name
            findings.append(Finding(failed["check_id"], f"{name}:{failed['resource']}", failed["check_name"]))
    return findings


def compare(findings: list[Finding], entries: list[ByDesign]) -> tuple[list[Finding], list[ByDesign]]:
    """(findings no entry explains, entries that explain no finding)."""
    used: set[int] = set()
    unexplained = []
    for finding in findings:
        matches = [
            i for i, e in enumerate(entries) if e.check == finding.check and e.resources.search(finding.resource)
        ]
        used.update(matches)
        if not matches:
            unexplained.append(finding)
    return unexplained, [e for i, e in enumerate(entries) if i not in used]


def synthesize_every_variant(parent: Path) -> list[Path]:
    sys.path.insert(0, str(ROOT))
    from stacks.deployment import build_app, cdk_json_context

    outdirs = []
    for shape in ("scalable", "single"):
        for stage in ("dev", "stage", "prod"):
            section = json.loads(json.dumps(cdk_json_context()["deployment"]))
            section.setdefault("environment", {}).update({"type": shape, "stage": stage})
            outdir = parent / f"{shape}-{stage}"
            app, _ = build_app(context={"deployment": section}, outdir=str(outdir))
            app.synth()
            outdirs.append(outdir)
    return outdirs


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory(prefix="checkov-") as tmp:
        outdirs = [Path(a) for a in argv] or synthesize_every_variant(Path(tmp))
        findings = [f for outdir in outdirs for f in scan(outdir.glob("*.template.json"))]
    unexplained, stale = compare(findings, by_design())
    for finding in sorted(set(unexplained), key=str):
        print(f"NOT BY DESIGN: {finding}")
    for entry in stale:
        print(f"STALE BY-DESIGN ENTRY: {entry.check} {entry.resources.pattern} (matches no finding)")
    print(
        f"checkov: {len(findings)} findings over {len(outdirs)} synth(s), {len(unexplained)} not by design, "
        f"{len(stale)} stale entries"
    )
    return 1 if unexplained or stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
