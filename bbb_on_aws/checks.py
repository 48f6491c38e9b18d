"""Check results of `probe`: each line a check with pass/fail/skip, its timing, and for a failure the most
likely cause and the fix. Rendered as text lines or as JSON (`--json`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

PASS, FAIL, SKIP = "pass", "fail", "skip"


class Failure(Exception):
    """A check failed for a known reason: what was seen, the most likely cause, and the fix."""

    def __init__(self, detail: str, cause: str, fix: str) -> None:
        super().__init__(detail)
        self.detail, self.cause, self.fix = detail, cause, fix


class Skipped(Exception):
    """A check that cannot run here (a missing input); the message says what would enable it."""


@dataclass
class Check:
    name: str
    status: str
    seconds: float
    detail: str = ""
    cause: str = ""
    fix: str = ""


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)

    @property
    def failed(self) -> list[Check]:
        return [check for check in self.checks if check.status == FAIL]

    def find(self, name: str) -> Check:
        return next(check for check in self.checks if check.name == name)

    async def run(self, name: str, step: Callable[[], Awaitable[Any]], timeout: float | None = None) -> Any:
        """Run one check; its return value (a short string, or (detail, value)) becomes the detail line.
        Returns the step's value, or None when it failed or was skipped."""
        start = time.perf_counter()
        try:
            result = await (asyncio.wait_for(step(), timeout) if timeout else step())
        except Failure as failure:
            self._add(name, FAIL, start, failure.detail, failure.cause, failure.fix)
            return None
        except Skipped as skipped:
            self._add(name, SKIP, start, str(skipped))
            return None
        except (TimeoutError, asyncio.TimeoutError):
            self._add(
                name,
                FAIL,
                start,
                f"no answer within {timeout:g} s",
                "nothing answers: a firewall, security group or network ACL drops the traffic, or no "
                "service listens there",
                "check that the port is open from the internet and the service runs",
            )
            return None
        detail, value = result if isinstance(result, tuple) else (result, result)
        self._add(name, PASS, start, str(detail or ""))
        return value

    def skip(self, name: str, why: str) -> None:
        self.checks.append(Check(name, SKIP, 0.0, why))

    def _add(self, name: str, status: str, start: float, detail: str, cause: str = "", fix: str = "") -> None:
        self.checks.append(Check(name, status, round(time.perf_counter() - start, 4), detail, cause, fix))

    def as_json(self) -> dict[str, Any]:
        return {"ok": not self.failed, "failed": len(self.failed), "checks": [asdict(c) for c in self.checks]}

    def render(self) -> str:
        width = max((len(check.name) for check in self.checks), default=10)
        lines = []
        for check in self.checks:
            lines.append(
                f"{check.status.upper():<4}  {check.name:<{width}}  {check.seconds * 1000:7.1f} ms  {check.detail}"
            )
            if check.status == FAIL:
                lines.append(f"{'':<4}  {'':<{width}}  {'':>10}  cause: {check.cause}")
                lines.append(f"{'':<4}  {'':<{width}}  {'':>10}  fix:   {check.fix}")
        verdict = "all checks passed" if not self.failed else f"{len(self.failed)} check(s) failed"
        return "\n".join([*lines, verdict])
