"""The lifecycle transitions of a fleet with a warm pool, and the one execution that handles each.

Auto Scaling's lifecycle events carry Origin and Destination (EC2 | AutoScalingGroup | WarmPool; AWS's
"Warm pool example events and patterns"). With a warm pool an instance passes the hooks many times, so each
transition has its own name, state machine and accepted lifecycle states:

  EC2 -> AutoScalingGroup   launch   install, register in Scalelite, CONTINUE        (launch machine, once)
  EC2 -> WarmPool           prewarm  install, verify, withdraw DNS, CONTINUE (stopped) (launch machine, once)
  WarmPool -> ASG           wake     new A record, host re-ready, register, CONTINUE (launch machine, per start)
  ASG -> WarmPool           park     the meeting-aware drain, then CONTINUE (stopped)  (drain machine, per start)
  ASG -> EC2                drain    the meeting-aware drain, then CONTINUE            (drain machine, once)
  WarmPool -> EC2           retire   nothing served from the pool: clean up, CONTINUE  (drain machine, once)

Execution names stay derived from the instance alone (so duplicated events, the reconciler and the deploy
bootstrap all ask for the same one); wake and park add the instance's current EC2 LaunchTime, which changes on
every start, so each stop/start cycle has its own pair. An event whose instance is no longer in a state that
transition leads through (a late or out-of-order delivery) starts nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

EC2, GROUP, POOL = "EC2", "AutoScalingGroup", "WarmPool"


@dataclass(frozen=True)
class Transition:
    name: str
    machine: str  # "launch" | "drain"
    per_start: bool  # passed on every start of the instance: the execution name carries the LaunchTime
    states: tuple[str, ...]  # lifecycle-state prefixes the instance may be in while this transition waits

    def accepts(self, lifecycle_state: str | None) -> bool:
        """No states listed: any (a termination cannot be refused). None: the instance left the group."""
        if not self.states:
            return True
        return lifecycle_state is not None and lifecycle_state.startswith(self.states)


LAUNCH = Transition("launch", "launch", False, ("Pending", "InService"))
PREWARM = Transition("prewarm", "launch", False, ("Warmed:Pending",))
WAKE = Transition("wake", "launch", True, ("Pending",))
PARK = Transition("park", "drain", True, ("Warmed:Pending", "Terminating"))
DRAIN = Transition("drain", "drain", False, ())
RETIRE = Transition("retire", "drain", False, ("Warmed:Terminating", "Terminating"))

BY_NAME = {t.name: t for t in (LAUNCH, PREWARM, WAKE, PARK, DRAIN, RETIRE)}
_BY_ROUTE = {
    ("launch", EC2, GROUP): LAUNCH,
    ("launch", EC2, POOL): PREWARM,
    ("launch", POOL, GROUP): WAKE,
    ("drain", GROUP, POOL): PARK,
    ("drain", GROUP, EC2): DRAIN,
    ("drain", POOL, EC2): RETIRE,
}


def classify(kind: str, origin: str | None, destination: str | None) -> Transition | None:
    """The transition of a launch/terminate event; events without Origin/Destination (groups without a warm
    pool, older deliveries) are a plain launch or drain. None for a route AWS does not document."""
    if origin is None and destination is None:
        return LAUNCH if kind == "launch" else DRAIN
    return _BY_ROUTE.get((kind, origin or "", destination or ""))


def recovered(lifecycle_state: str, prepared: bool) -> Transition | None:
    """The transition an instance waiting in a hook is in, for the reconciler (which has no event).

    `prepared`: the host tagged itself ready before. A new instance cannot have (it waits for the A record
    the launch creates), so a waiting, prepared instance comes from the pool (wake) or goes back to it (park);
    a park taken for a prewarm is safe (the drain finds no meeting), the other way round would not be.
    """
    if lifecycle_state == "Pending:Wait":
        return WAKE if prepared else LAUNCH
    if lifecycle_state == "Warmed:Pending:Wait":
        return PARK if prepared else PREWARM
    if lifecycle_state == "Warmed:Terminating:Wait":
        return RETIRE
    if lifecycle_state == "Terminating:Wait":
        return DRAIN
    return None
