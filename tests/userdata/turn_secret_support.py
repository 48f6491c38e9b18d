"""The `aws` command of the TURN secret rotation tests: a shim answering from files the test writes (by hand,
or from moto's state in the end-to-end test)."""

from __future__ import annotations

import json
from typing import Any


class Aws:
    """The answers of the `aws` shim, as files the test edits between runs."""

    def __init__(self, shell: Any) -> None:
        self.dir = shell.root / "aws"
        (self.dir / "values").mkdir(parents=True, exist_ok=True)
        d = self.dir
        shell.shim(
            "aws",
            f"""
            [[ -e {d}/fail ]] && {{ echo "An error occurred (ThrottlingException)" >&2; exit 255; }}
            case "$1 $2" in
              "secretsmanager describe-secret") cat {d}/describe.json ;;
              "ec2 describe-instances") cat {d}/servers.json ;;
              "ec2 create-tags") ;;
              "secretsmanager get-secret-value")
                version=""
                while [[ $# -gt 0 ]]; do [[ $1 == --version-id ]] && version=$2; shift; done
                if [[ -n $version ]]; then cat {d}/values/$version; else cat {d}/current.txt; fi ;;
              *) echo "unexpected aws $*" >&2; exit 2 ;;
            esac""",
        )

    def secret(self, stages: dict[str, list[str]], values: dict[str, str]) -> None:
        (self.dir / "describe.json").write_text(json.dumps({"VersionIdsToStages": stages}))
        for version, value in values.items():
            (self.dir / "values" / version).write_text(value + "\n")
        current = next(v for v, labels in stages.items() if "AWSCURRENT" in labels)
        (self.dir / "current.txt").write_text(f"{current}\t{values[current]}\n")

    def servers(self, *tags: str | None) -> None:
        (self.dir / "servers.json").write_text(json.dumps([[f"i-{n:08x}", tag] for n, tag in enumerate(tags)]))

    def fail(self, failing: bool = True) -> None:
        path = self.dir / "fail"
        path.touch() if failing else path.unlink(missing_ok=True)
