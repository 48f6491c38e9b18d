"""One dashboard and the operator alarms of a deployment (see README.md)."""

from cdk_constructs.monitoring.alarms import OperatorAlarms
from cdk_constructs.monitoring.dashboard import OperationsDashboard
from cdk_constructs.monitoring.watched import DataTier, Fleet, Frontend, TurnEdge, Watched

__all__ = ["DataTier", "Fleet", "Frontend", "OperationsDashboard", "OperatorAlarms", "TurnEdge", "Watched"]
