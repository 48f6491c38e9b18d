"""Lifecycle automation of the BBB and TURN fleets (hooks, state machines, reconciler, TURN prober).

FleetLifecycle(scope, id, auto_scaling_group=..., role="bbb"|"turn"|"single", hosted_zone=...,
               domain_name=..., environment_name=..., operator_topic=..., bbb_secret=...,
               scalelite_secret=..., scalelite_api_url=..., timings=LifecycleTimings(...))
"""

from cdk_constructs.lifecycle.fleet import FleetLifecycle
from cdk_constructs.lifecycle.prober import TurnProber
from cdk_constructs.lifecycle.reconciler import Reconciler
from cdk_constructs.lifecycle.timings import LifecycleTimings

__all__ = ["FleetLifecycle", "LifecycleTimings", "Reconciler", "TurnProber"]
