"""Timings of the lifecycle automation, validated against Auto Scaling's lifecycle-hook limits."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration

# Auto Scaling: HeartbeatTimeout 30..7200 s; GlobalTimeout = min(100 x HeartbeatTimeout, 48 h), fixed by AWS.
HOOK_GLOBAL_CAP_SECONDS = 48 * 3600
EVENTS_PER_LOOP = 12
HISTORY_BUDGET = 22_000  # of Step Functions' 25,000 events per execution

_ROLE_DEFAULTS = {
    # role: (launch max, drain max, drain poll)
    "bbb": (45 * 60, 4 * 3600, 60),
    "single": (45 * 60, 4 * 3600, 60),
    "turn": (10 * 60, 3600, 30),
}


@dataclass(frozen=True)
class LifecycleTimings:
    """All optional; None means the role's default (BBB: launch 45 min, drain 4 h; TURN: 10 min, 1 h).

    heartbeat_timeout   the hooks' HeartbeatTimeout; the state machines heartbeat every third of it.
    launch_max          give up (ABANDON) if the host is not ready by then (bbb-install takes ~20-40 min).
    drain_max           stop waiting for meetings/allocations; remaining BBB meetings are then ended.
    launch_poll         pause between readiness checks (default 30 s).
    drain_poll          pause between drain checks (default BBB 60 s - Scalelite polls BBB every 60 s -, TURN
                        30 s; longer by default when the maximum is so long that the execution history of
                        25,000 events would not hold all the loops).
    dns_ttl_wait        TURN: wait after withdrawing the weighted record before the relay refuses Allocates
                        (twice the 60 s record TTL).
    unreachable_after   consecutive silent checks before a host counts as unreachable.
    reconcile_every     period of the reconciler.
    """

    heartbeat_timeout: Duration | None = None
    launch_max: Duration | None = None
    drain_max: Duration | None = None
    launch_poll: Duration | None = None
    drain_poll: Duration | None = None
    dns_ttl_wait: Duration | None = None
    unreachable_after: int = 3
    reconcile_every: Duration | None = None

    def resolve(self, role: str) -> ResolvedTimings:
        if role not in _ROLE_DEFAULTS:
            raise ValueError(f"role must be one of {', '.join(_ROLE_DEFAULTS)}, got {role!r}")
        launch_max, drain_max, drain_poll = _ROLE_DEFAULTS[role]

        def seconds(value: Duration | None, default: int) -> int:
            return int(value.to_seconds()) if value is not None else default

        launch_max = seconds(self.launch_max, launch_max)
        drain_max = seconds(self.drain_max, drain_max)
        resolved = ResolvedTimings(
            heartbeat_timeout=seconds(self.heartbeat_timeout, 30 * 60),
            launch_max=launch_max,
            drain_max=drain_max,
            # A long maximum polls less often by default, so one execution's history stays in bounds.
            launch_poll=seconds(self.launch_poll, max(30, _history_poll(launch_max))),
            drain_poll=seconds(self.drain_poll, max(drain_poll, _history_poll(drain_max))),
            dns_ttl_wait=seconds(self.dns_ttl_wait, 120),
            unreachable_after=self.unreachable_after,
            reconcile_every=seconds(self.reconcile_every, 15 * 60),
        )
        resolved.validate()
        return resolved


def _history_poll(maximum: int) -> int:
    """The shortest poll whose loops fit the execution history budget up to `maximum`."""
    return -(-maximum * EVENTS_PER_LOOP // HISTORY_BUDGET)


@dataclass(frozen=True)
class ResolvedTimings:
    heartbeat_timeout: int
    launch_max: int
    drain_max: int
    launch_poll: int
    drain_poll: int
    dns_ttl_wait: int
    unreachable_after: int
    reconcile_every: int

    @property
    def heartbeat_interval(self) -> int:
        return max(30, self.heartbeat_timeout // 3)

    @property
    def hook_global_timeout(self) -> int:
        return min(100 * self.heartbeat_timeout, HOOK_GLOBAL_CAP_SECONDS)

    def validate(self) -> None:
        if not 60 <= self.heartbeat_timeout <= 7200:
            raise ValueError(
                f"heartbeat_timeout={self.heartbeat_timeout}s: Auto Scaling accepts 30-7200 s and the "
                "heartbeats need a margin, so use 60-7200 s (default 1800)"
            )
        for name in ("launch_poll", "drain_poll"):
            value = getattr(self, name)
            if not 5 <= value < self.heartbeat_interval:
                raise ValueError(
                    f"{name}={value}s must be at least 5 s and below the heartbeat interval "
                    f"({self.heartbeat_interval}s, a third of heartbeat_timeout)"
                )
        # The state machine must finish (and complete the action) before AWS gives up on the hook.
        for name in ("launch_max", "drain_max"):
            value = getattr(self, name)
            limit = self.hook_global_timeout - 3600
            if not 60 <= value <= limit:
                raise ValueError(
                    f"{name}={value}s must be between 60 s and {limit}s: a lifecycle hook lasts at most "
                    f"{self.hook_global_timeout}s (100 x heartbeat_timeout, capped at 48 h), minus 1 h margin"
                )
        # A Standard execution keeps at most 25,000 history events; one wait/check/choice loop writes
        # about a dozen (heartbeats add a few more).
        for maximum, poll in (("launch_max", "launch_poll"), ("drain_max", "drain_poll")):
            loops = getattr(self, maximum) // getattr(self, poll)
            if loops * EVENTS_PER_LOOP > HISTORY_BUDGET:
                raise ValueError(
                    f"{maximum}/{poll} = {loops} loops would exceed Step Functions' 25,000-event execution "
                    f"history; poll less often (at most {HISTORY_BUDGET // EVENTS_PER_LOOP} loops)"
                )
        if not 60 <= self.dns_ttl_wait <= 3600:
            raise ValueError(f"dns_ttl_wait={self.dns_ttl_wait}s must be 60-3600 s (at least the 60 s record TTL)")
        if not 1 <= self.unreachable_after <= 60:
            raise ValueError(f"unreachable_after={self.unreachable_after} must be 1-60 checks")
        if not 60 <= self.reconcile_every <= 24 * 3600:
            raise ValueError(f"reconcile_every={self.reconcile_every}s must be between 1 min and 1 day")
