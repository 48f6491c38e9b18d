"""The warm-pool transition table (lambdas/common/transitions.py) case by case: every route AWS documents
("Warm pool example events and patterns"), the events without Origin/Destination, and what the reconciler
recovers from a lifecycle state alone. The end-to-end flows are in test_lc_warm_pool.py."""

from __future__ import annotations

import pytest
from common import transitions
from common.transitions import DRAIN, LAUNCH, PARK, PREWARM, RETIRE, WAKE, classify, recovered

EC2, GROUP, POOL = "EC2", "AutoScalingGroup", "WarmPool"


@pytest.mark.parametrize(
    ("kind", "origin", "destination", "expected"),
    [
        ("launch", EC2, GROUP, LAUNCH),
        ("launch", EC2, POOL, PREWARM),
        ("launch", POOL, GROUP, WAKE),
        ("drain", GROUP, POOL, PARK),
        ("drain", GROUP, EC2, DRAIN),
        ("drain", POOL, EC2, RETIRE),
        ("launch", None, None, LAUNCH),  # a group without a warm pool, or an older delivery
        ("drain", None, None, DRAIN),
        ("launch", GROUP, EC2, None),  # not a route AWS documents for a launch
        ("drain", EC2, GROUP, None),
        ("launch", None, GROUP, None),  # only one of the two: not a documented event
        ("drain", GROUP, None, None),
    ],
)
def test_classify(kind: str, origin: str | None, destination: str | None, expected: object) -> None:
    assert classify(kind, origin, destination) is expected


@pytest.mark.parametrize(
    ("state", "prepared", "expected"),
    [
        ("Pending:Wait", False, LAUNCH),
        ("Pending:Wait", True, WAKE),
        ("Warmed:Pending:Wait", False, PREWARM),
        ("Warmed:Pending:Wait", True, PARK),
        ("Warmed:Terminating:Wait", False, RETIRE),
        ("Warmed:Terminating:Wait", True, RETIRE),
        ("Terminating:Wait", False, DRAIN),
        ("Terminating:Wait", True, DRAIN),
        ("InService", True, None),
        ("Pending", False, None),  # not waiting in a hook
        ("Warmed:Stopped", True, None),
        ("Terminating:Proceed", False, None),
    ],
)
def test_recovered(state: str, prepared: bool, expected: object) -> None:
    assert recovered(state, prepared) is expected


def test_only_wake_and_park_happen_on_every_start() -> None:
    """Their execution names carry the LaunchTime; the others happen once per instance."""
    assert {t.name for t in transitions.BY_NAME.values() if t.per_start} == {"wake", "park"}
    assert {t.name: t.machine for t in transitions.BY_NAME.values()} == {
        "launch": "launch",
        "prewarm": "launch",
        "wake": "launch",
        "park": "drain",
        "drain": "drain",
        "retire": "drain",
    }


@pytest.mark.parametrize(
    ("transition", "state", "accepted"),
    [
        (LAUNCH, "Pending:Wait", True),
        (LAUNCH, "InService", True),
        (LAUNCH, "Terminating:Wait", False),
        (PREWARM, "Warmed:Pending:Wait", True),
        (PREWARM, "Pending:Wait", False),
        (WAKE, "Pending:Wait", True),
        (WAKE, "Warmed:Pending:Wait", False),
        (PARK, "Warmed:Pending:Wait", True),
        (PARK, "Terminating:Wait", True),
        (RETIRE, "Warmed:Terminating:Wait", True),
        (RETIRE, "InService", False),
        (DRAIN, "InService", True),  # a termination cannot be refused
        (DRAIN, None, True),
        (LAUNCH, None, False),  # the instance left the group
    ],
)
def test_accepts(transition: transitions.Transition, state: str | None, accepted: bool) -> None:
    assert transition.accepts(state) is accepted
